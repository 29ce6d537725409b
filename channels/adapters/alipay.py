"""Alipay open platform adapter, ISV mode (channel-protocols.md B; design §6).

One app of ours (the ISV's) signs every gateway call with RSA2 (B.2) and acts for a merchant either
  * through the merchant's ``app_auth_token`` (B.6, merchants with their own 当面付 contract) — sent as a common
    param on every call made for that merchant, or
  * as a 直付通 platform for a secondary merchant ``smid`` (B.7) — sent as ``sub_merchant.merchant_id``.
``SubMerchant.app_auth_token`` decides which: a token means the authorised-merchant mode.

Answers are verified over the raw ``…_response`` substring with the Alipay public key (B.3); an answer that does
not verify, a 5xx, a timeout or a connection error is ChannelUnknown (design §5 rule 2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from channels.adapters import alipay_onboarding as zft
from channels.adapters.alipay_bill import parse_bill_zip
from channels.adapters.alipay_codes import CODES, classify
from channels.adapters.alipay_notify import parse_notify
from channels.adapters.alipay_sign import (
    load_private_key,
    load_public_key,
    request_sign_content,
    response_substring,
    rsa2_sign,
    rsa2_verify,
)
from channels.adapters.alipay_wire import (
    beijing_now,
    beijing_time,
    fen_to_yuan,
    parse_time,
    trade_state,
    yuan_or_none,
)
from channels.adapters.base import (
    BillLine,
    CallbackAck,
    CallbackEvent,
    ChannelAdapter,
    OnboardingResult,
    PaymentRequest,
    PaymentResult,
    RefundRequest,
    RefundResult,
    RefundState,
    SettlementChangeResult,
    SubMerchant,
    TradeRef,
    TradeState,
    alipay_jsapi_pay_params,
)
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.http import channel_request, without_nul

__all__ = ["CODES", "AlipayAdapter", "AlipayConfig", "trade_state"]

logger = logging.getLogger(__name__)

KIND = "alipay"

# Product → (gateway method, product_code) per B.5.
METHODS = {
    "alipay.qr": ("alipay.trade.precreate", "FACE_TO_FACE_PAYMENT"),
    "alipay.jsapi": ("alipay.trade.create", "JSAPI_PAY"),
    "alipay.barcode": ("alipay.trade.pay", "FACE_TO_FACE_PAYMENT"),
    "alipay.wap": ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
    "alipay.app": ("alipay.trade.app.pay", "QUICK_MSECURITY_PAY"),
}

# Barcode refusals that are the payer's (code wrong, no money, risk): the trade failed, nothing to query.
PAYER_REFUSALS = {"auth_code_invalid", "insufficient_balance", "risk_rejected"}

# OAuth hosts of the real platform (§E); anything else (the simulator) serves the page under its base URL.
OAUTH_HOSTS = {
    "https://openapi.alipay.com": "https://openauth.alipay.com",
    "https://openapi-sandbox.dl.alipaydev.com": "https://openauth-sandbox.dl.alipaydev.com",
}


@dataclass(frozen=True)
class AlipayConfig:
    """Our ISV app at the Alipay open platform (B.1, B.6)."""

    app_id: str  # the ISV app's APPID
    app_private_key: str  # PEM (PKCS#8 or PKCS#1): signs our requests (B.2)
    alipay_public_key: str  # PEM: Alipay's key for this app; verifies answers and notifies (B.3, B.4)
    isv_pid: str = ""  # the ISV's own 2088 partner id (bills of its own trades, 直付通 platform)
    sign_type: str = "RSA2"  # only RSA2 is supported; legacy RSA (SHA1) is refused
    aes_key: str = ""  # 接口内容加密 key; reserved: content encryption is not used by this adapter


class AlipayAdapter(ChannelAdapter):
    kind = KIND
    label = "Alipay (ISV, open platform)"
    products = ("alipay.jsapi", "alipay.app", "alipay.wap", "alipay.qr", "alipay.barcode")
    capabilities = frozenset({
        "create_payment", "query_payment", "close_payment", "reverse_payment", "refund", "query_refund",
        "parse_callback", "callback_ack", "download_bill", "onboarding_submit", "onboarding_query",
        "settlement_modify", "settlement_modify_query", "oauth_authorize_url", "oauth_payer_id",
    })
    config_class = AlipayConfig
    CONFIG_SECRET_FIELDS = ("app_private_key", "aes_key")

    def __init__(self, config: AlipayConfig, *, base_url: str, connect_timeout: float | None = None,
                 read_timeout: float | None = None):
        super().__init__(config, base_url=base_url)
        # None = the settings defaults (AGGPAY_CHANNEL_*_TIMEOUT); tests and barcode flows pass shorter ones.
        self.timeouts = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
        if config.sign_type != "RSA2":
            raise ChannelError(f"sign_type {config.sign_type!r} is not supported; use RSA2", code="invalid_params")
        self.gateway_url = self.base_url + "/gateway.do"

    # --- transport (B.1–B.3) --------------------------------------------------------------------------
    def _common_params(self, method: str, *, sub_merchant: SubMerchant | None, notify_url: str = "") -> dict:
        params = {
            "app_id": self.config.app_id, "method": method, "format": "JSON", "charset": "utf-8",
            "sign_type": "RSA2", "timestamp": beijing_now(), "version": "1.0",
        }
        if sub_merchant is not None and sub_merchant.app_auth_token:
            params["app_auth_token"] = sub_merchant.app_auth_token  # B.6: on every call made for the merchant
        if notify_url:
            params["notify_url"] = notify_url
        return params

    def _signed(self, params: dict[str, str]) -> dict[str, str]:
        try:
            key = load_private_key(self.config.app_private_key)
        except (ValueError, TypeError) as exc:
            raise ChannelError(f"the Alipay app private key does not load: {type(exc).__name__}",
                               code="invalid_params") from exc
        return {**params, "sign": rsa2_sign(key, request_sign_content(params))}

    def _call(self, method: str, biz: dict[str, Any] | None = None, *, sub_merchant: SubMerchant | None = None,
              notify_url: str = "", extra: Mapping[str, str] | None = None,
              ok_codes: tuple[str, ...] = ("10000",)) -> dict[str, Any]:
        """One signed gateway call; returns the verified ``…_response`` object or raises a ChannelError."""
        params = self._common_params(method, sub_merchant=sub_merchant, notify_url=notify_url)
        if biz is not None:
            params["biz_content"] = json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        params.update(extra or {})
        body = urlencode(self._signed(params)).encode("ascii")
        response = channel_request(
            "POST", self.gateway_url, kind=KIND, body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, **self.timeouts,
        )
        inner = self._verified(response.status, response.body, method)
        code = str(inner.get("code", ""))
        if code in ok_codes:
            return inner
        if not code and not inner.get("sub_code"):
            # alipay.system.oauth.token answers success without any code (§E); errors always carry one. Any other
            # method's success says code 10000 (B.3): one that says nothing does not say paid or refunded.
            if method == "alipay.system.oauth.token":
                return inner
            raise ChannelUnknown(f"Alipay's {method} answer carries no code", http_status=response.status)
        raise self._error(inner, http_status=response.status)

    def _verified(self, status: int, body: bytes, method: str) -> dict[str, Any]:
        if status >= 500:
            raise ChannelUnknown(f"Alipay answered HTTP {status}", http_status=status)
        if status != 200:
            # The gateway answers 200 for every business outcome (B.3): anything else is not its answer.
            raise ChannelUnknown(f"Alipay answered HTTP {status}", http_status=status)
        try:
            text = body.decode("utf-8")
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ChannelUnknown(f"Alipay's answer is not JSON: {type(exc).__name__}", http_status=status) from exc
        if not isinstance(document, dict):
            raise ChannelUnknown("Alipay's answer is not a JSON object", http_status=status)
        key = method.replace(".", "_") + "_response"
        if key not in document:
            key = "error_response"  # gateway-level errors may use this key (B.3)
        raw_inner = response_substring(text, key)
        sign = document.get("sign")
        if raw_inner is None:
            raise ChannelUnknown(f"Alipay's answer has no {method.replace('.', '_')}_response", http_status=status)
        if not isinstance(sign, str) or not sign:
            raise ChannelUnknown("Alipay's answer is not signed", code="invalid_signature", http_status=status)
        # B.3: verify over the exact raw substring, never a re-serialisation.
        if not rsa2_verify(self._alipay_key(), raw_inner, sign):
            raise ChannelUnknown("Alipay's answer signature does not verify", code="invalid_signature",
                                 http_status=status)
        inner = json.loads(raw_inner)
        if not isinstance(inner, dict):
            raise ChannelUnknown("Alipay's answer is not an object", http_status=status)
        return without_nul(inner)

    def _alipay_key(self):
        try:
            return load_public_key(self.config.alipay_public_key)
        except (ValueError, TypeError) as exc:
            raise ChannelError(f"the Alipay public key does not load: {type(exc).__name__}",
                               code="invalid_params") from exc

    @staticmethod
    def _error(inner: Mapping[str, Any], *, http_status: int | None = None) -> ChannelError:
        code, sub_code = str(inner.get("code", "")), str(inner.get("sub_code", "") or "")
        ours, permanent = classify(code, sub_code)
        # alipay.trade.cancel answers a failure with ``retry_flag`` (B.5, 是否需要重试): Alipay's own word on whether
        # the same cancel may still go through, which outranks our table of sub_codes. Y: not a verdict — unknown,
        # and the reversal is tried again (trades' reverse ladder, design §5 rule 2). N: a definite refusal.
        retry_flag = inner.get("retry_flag")
        if retry_flag == "Y":
            ours = "channel_unknown"
        elif retry_flag == "N":
            permanent = True
            if ours == "channel_unknown":
                ours = "channel_error"
        message = str(inner.get("sub_msg") or inner.get("msg") or "")
        text = f"Alipay refused: {code} {sub_code} {message}".strip()
        kwargs = {"channel_code": sub_code or code, "channel_message": message, "http_status": http_status}
        if ours == "channel_unknown":
            return ChannelUnknown(text, **kwargs)
        return ChannelError(text, permanent=permanent, code=ours, **kwargs)

    @staticmethod
    def _seller(biz: dict[str, Any], sub_merchant: SubMerchant) -> dict[str, Any]:
        # B.7: a 直付通 secondary merchant is named in the trade; an authorised merchant is named by its token.
        if not sub_merchant.app_auth_token and sub_merchant.sub_mchid:
            biz["sub_merchant"] = {"merchant_id": sub_merchant.sub_mchid}
        return biz

    @staticmethod
    def _trade_key(ref: TradeRef) -> dict[str, str]:
        if ref.out_trade_no:
            return {"out_trade_no": ref.out_trade_no}
        return {"trade_no": ref.channel_trade_no}

    # --- payments (B.5) -------------------------------------------------------------------------------
    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        if request.product not in METHODS:
            raise ChannelError(f"{request.product} is not an Alipay product", code="invalid_params")
        method, product_code = METHODS[request.product]
        biz = self._seller({
            "out_trade_no": request.out_trade_no, "total_amount": fen_to_yuan(request.amount),
            "subject": request.subject, "product_code": product_code,
        }, request.sub_merchant)
        if request.product != "alipay.barcode":
            biz["time_expire"] = beijing_time(request.expires_at)
        for ours, theirs in (("store_id", "store_id"), ("terminal_id", "terminal_id")):
            if getattr(request, ours):
                biz[theirs] = getattr(request, ours)
        if request.attach:
            biz["passback_params"] = quote(request.attach, safe="")  # echoed URL-encoded in the notify (B.4)
        if request.product in ("alipay.app", "alipay.wap"):
            return self._client_side_order(request, method, biz)
        if request.product == "alipay.jsapi":
            if not request.payer_id:
                raise ChannelError("alipay.jsapi needs the payer's buyer_id/open_id", code="invalid_params")
            # 2088… is a user_id; newer apps only receive an open_id from auth_base (§E).
            is_user_id = request.payer_id.startswith("2088") and len(request.payer_id) == 16
            biz["buyer_id" if is_user_id else "buyer_open_id"] = request.payer_id
        if request.product == "alipay.barcode":
            return self._barcode_pay(request, method, biz)
        inner = self._call(method, biz, sub_merchant=request.sub_merchant, notify_url=request.notify_url)
        result = PaymentResult(state=TradeState.PENDING, out_trade_no=inner.get("out_trade_no", ""), raw=inner)
        if request.product == "alipay.qr":
            result.pay_params = {"code_url": inner.get("qr_code", "")}
        else:  # alipay.jsapi: the front end calls AlipayJSBridge tradePay with this trade number (B.5)
            result.channel_trade_no = result.wallet_trade_no = inner.get("trade_no", "")
            result.pay_params = alipay_jsapi_pay_params(result.channel_trade_no)
        if not result.pay_params.get("code_url") and not result.pay_params.get("trade_no"):
            raise ChannelUnknown("Alipay accepted the order but returned no pay parameters")
        return result

    def _client_side_order(self, request: PaymentRequest, method: str, biz: dict[str, Any]) -> PaymentResult:
        """APP and WAP orders are not server calls: the signed params go to the app or browser (B.1)."""
        params = self._common_params(method, sub_merchant=request.sub_merchant, notify_url=request.notify_url)
        if request.product == "alipay.wap" and request.return_url:
            params["return_url"] = request.return_url
            biz["quit_url"] = request.return_url
        params["biz_content"] = json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        signed = urlencode(sorted(self._signed(params).items()))
        if request.product == "alipay.app":
            # merchant-api.md "Orders": an `app` object, as for wechat.app; the app SDK's payV2 takes the string.
            pay_params = {"app": {"order_string": signed}}
        else:
            pay_params = {"wap_url": self.gateway_url + "?" + signed}
        return PaymentResult(state=TradeState.PENDING, pay_params=pay_params, out_trade_no=request.out_trade_no)

    def _barcode_pay(self, request: PaymentRequest, method: str, biz: dict[str, Any]) -> PaymentResult:
        if not request.auth_code:
            raise ChannelError("alipay.barcode needs the payer's auth_code", code="invalid_params")
        biz.update({"scene": "bar_code", "auth_code": request.auth_code})
        try:
            # 10003 = 等待用户付款: the payer confirms in the wallet; query until it settles (B.3).
            inner = self._call(method, biz, sub_merchant=request.sub_merchant, notify_url=request.notify_url,
                               ok_codes=("10000", "10003"))
        except ChannelUnknown:
            raise
        except ChannelError as exc:
            if exc.channel_code == "ACQ.TRADE_HAS_SUCCESS":
                # A retried pay of a trade that went through (e.g. after a timeout): report what Alipay holds.
                return self.query_payment(TradeRef(sub_merchant=request.sub_merchant,
                                                   out_trade_no=request.out_trade_no))
            if exc.code not in PAYER_REFUSALS:
                raise
            return PaymentResult(state=TradeState.FAILED, out_trade_no=request.out_trade_no,
                                 failure_code=exc.code, failure_message=exc.channel_message or exc.message)
        if inner.get("code") == "10003":
            return PaymentResult(state=TradeState.USER_PAYING, channel_trade_no=inner.get("trade_no", ""),
                                 wallet_trade_no=inner.get("trade_no", ""),
                                 out_trade_no=inner.get("out_trade_no", request.out_trade_no), raw=inner)
        return self._payment_result(inner, TradeState.SUCCEEDED, paid_at_key="gmt_payment",
                                    sub_mchid=request.sub_merchant.sub_mchid)

    def _payment_result(self, inner: Mapping[str, Any], state: str, *, paid_at_key: str,
                        sub_mchid: str) -> PaymentResult:
        """``sub_mchid``: the merchant the call was made for. alipay.trade.pay / .query answers do not name the
        seller (channel-protocols.md B.5), but a call made with the merchant's app_auth_token (B.6) or naming its
        smid (B.7) only ever sees that merchant's trades: the answer is that merchant's, and says so for the
        cross-check (design §5 rule 4). The notify names it itself (``seller_id``, B.4)."""
        try:
            amount = yuan_or_none(inner.get("total_amount"))
            paid_at = parse_time(inner.get(paid_at_key))
        except ValueError as exc:
            raise ChannelUnknown(f"Alipay's answer has a malformed field: {exc}") from exc
        trade_no = str(inner.get("trade_no", ""))
        return PaymentResult(
            # Alipay's trade_no is the 交易号 the payer's Alipay shows: the wallet's number too.
            state=state, channel_trade_no=trade_no, wallet_trade_no=trade_no, amount=amount,
            paid_at=paid_at if state == TradeState.SUCCEEDED else None,
            payer_id=str(inner.get("buyer_user_id") or inner.get("buyer_open_id") or ""),
            sub_mchid=sub_mchid, out_trade_no=str(inner.get("out_trade_no", "")), raw=dict(inner),
        )

    def query_payment(self, ref: TradeRef) -> PaymentResult:
        """alipay.trade.query. ``not_found`` also covers a precreate QR nobody scanned yet (B.5 note): the
        caller knows it precreated and keeps such an order pending until it expires."""
        try:
            inner = self._call("alipay.trade.query", self._seller(self._trade_key(ref), ref.sub_merchant),
                               sub_merchant=ref.sub_merchant)
        except ChannelError as exc:
            if exc.code == "order_not_found" and not isinstance(exc, ChannelUnknown):
                return PaymentResult(state=TradeState.NOT_FOUND, out_trade_no=ref.out_trade_no,
                                     failure_code=exc.code, failure_message=exc.channel_message or "")
            raise
        paid = bool(inner.get("send_pay_date"))
        try:
            state = trade_state(str(inner.get("trade_status", "")), paid=paid)
        except ValueError as exc:
            raise ChannelUnknown(f"Alipay's answer: {exc}") from exc
        return self._payment_result(inner, state, paid_at_key="send_pay_date", sub_mchid=ref.sub_merchant.sub_mchid)

    def close_payment(self, ref: TradeRef) -> None:
        biz = self._seller(self._trade_key(ref), ref.sub_merchant)
        try:
            self._call("alipay.trade.close", biz, sub_merchant=ref.sub_merchant)
        except ChannelUnknown:
            raise
        except ChannelError as exc:
            if exc.channel_code == "ACQ.TRADE_NOT_EXIST":
                return  # an unscanned precreate: Alipay holds no payable trade (B.5 note)
            if exc.channel_code not in ("ACQ.TRADE_STATUS_ERROR", "ACQ.TRADE_HAS_SUCCESS", "ACQ.TRADE_HAS_CLOSE"):
                raise
            # "Status not allowed": find out whether it is paid (refuse) or already closed (done).
            state = self.query_payment(ref).state
            if state == TradeState.SUCCEEDED:
                raise ChannelError("the trade is already paid", code="order_paid", channel_code=exc.channel_code,
                                   channel_message=exc.channel_message) from exc
            if state != TradeState.CLOSED:
                raise

    def reverse_payment(self, ref: TradeRef) -> PaymentResult:
        """alipay.trade.cancel (B.5): ``action`` close = it was unpaid, refund = it was paid and is refunded.

        ``refund``: the payer had paid, and the cancel gave the money back. The cancel's answer does not say when
        the payment was made, so the trade is asked (alipay.trade.query: TRADE_CLOSED with ``send_pay_date``,
        B.5) and the result carries the payment's facts — ``paid_at``, amount, payer — for the caller to record
        the payment it had not heard of before its reversal (a statement shows both, as Alipay's bill does). If
        that query is not answered the reversal stands without them (``paid_at`` None)."""
        biz = self._seller(self._trade_key(ref), ref.sub_merchant)
        inner = self._call("alipay.trade.cancel", biz, sub_merchant=ref.sub_merchant)
        if inner.get("retry_flag") == "Y":
            raise ChannelUnknown("Alipay asks to retry the cancel (retry_flag=Y)", channel_code="retry_flag")
        result = PaymentResult(state=TradeState.REVERSED, channel_trade_no=str(inner.get("trade_no", "")),
                               wallet_trade_no=str(inner.get("trade_no", "")),
                               out_trade_no=str(inner.get("out_trade_no", ref.out_trade_no)), raw=inner)
        if inner.get("action") != "refund":
            return result
        try:
            paid = self.query_payment(ref)
        except ChannelError as exc:
            logger.warning("Alipay cancelled %s with action=refund; its payment could not be read: %s",
                           ref.out_trade_no, exc.message)
            return result
        if paid.state != TradeState.SUCCEEDED or paid.paid_at is None:
            return result
        return dataclasses.replace(paid, state=TradeState.REVERSED, raw={**inner, "query": paid.raw})

    # --- refunds (B.5) --------------------------------------------------------------------------------
    def refund(self, request: RefundRequest) -> RefundResult:
        ref = request.trade
        biz = self._seller({
            **self._trade_key(ref), "refund_amount": fen_to_yuan(request.amount),
            "out_request_no": request.out_refund_no,  # B.5: retries must reuse it (idempotency at Alipay)
        }, ref.sub_merchant)
        if request.reason:
            biz["refund_reason"] = request.reason
        inner = self._call("alipay.trade.refund", biz, sub_merchant=ref.sub_merchant)
        if inner.get("fund_change") != "Y":
            # N: this call moved no money — a repeat of a done refund, or still in progress: ask (B.5).
            return self.query_refund(trade=ref, out_refund_no=request.out_refund_no)
        try:
            succeeded_at = parse_time(inner.get("gmt_refund_pay"))
        except ValueError:
            succeeded_at = None
        return RefundResult(state=RefundState.SUCCEEDED, out_refund_no=request.out_refund_no,
                            amount=request.amount, succeeded_at=succeeded_at, raw=inner)

    def query_refund(self, *, trade: TradeRef, out_refund_no: str) -> RefundResult:
        biz = self._seller({**self._trade_key(trade), "out_request_no": out_refund_no,
                            "query_options": ["gmt_refund_pay"]}, trade.sub_merchant)
        try:
            inner = self._call("alipay.trade.fastpay.refund.query", biz, sub_merchant=trade.sub_merchant)
        except ChannelError as exc:
            if exc.code == "order_not_found" and not isinstance(exc, ChannelUnknown):
                return RefundResult(state=RefundState.NOT_FOUND, out_refund_no=out_refund_no,
                                    failure_code=exc.code, failure_message=exc.channel_message or "")
            raise
        try:
            amount = yuan_or_none(inner.get("refund_amount"))
            succeeded_at = parse_time(inner.get("gmt_refund_pay"))
        except ValueError as exc:
            raise ChannelUnknown(f"Alipay's answer has a malformed field: {exc}") from exc
        if inner.get("refund_status") == "REFUND_SUCCESS":
            state = RefundState.SUCCEEDED
        elif amount is None and not inner.get("out_request_no"):
            state = RefundState.NOT_FOUND  # B.5: an empty success answer = Alipay has no such refund
        else:
            state = RefundState.PROCESSING  # known but without refund_status: not (yet) done
        return RefundResult(state=state, out_refund_no=out_refund_no, amount=amount,
                            succeeded_at=succeeded_at if state == RefundState.SUCCEEDED else None, raw=inner)

    # --- callbacks (B.4) ------------------------------------------------------------------------------
    def parse_callback(self, *, headers: Mapping[str, str], body: bytes, path: str = "") -> CallbackEvent:
        return parse_notify(body=body, headers=headers, app_id=self.config.app_id,
                            alipay_public_key=self._alipay_key())

    def callback_ack(self, *, ok: bool, message: str = "") -> CallbackAck:
        # B.4: the plain body ``success`` stops the retries; anything else (we send ``fail``) asks for one.
        return CallbackAck(status=200, body=b"success" if ok else b"fail", content_type="text/plain; charset=utf-8")

    # --- bills (B.8) ----------------------------------------------------------------------------------
    def download_bill(self, *, bill_date: dt.date, sub_mchid: str = "", app_auth_token: str = "") -> list[BillLine]:
        """The daily trade bill. For an authorised merchant pass its ``app_auth_token`` (B.8: ISVs call with
        it); for a 直付通 secondary merchant pass its smid as ``sub_mchid``; neither = the ISV's own trades."""
        biz: dict[str, Any] = {"bill_type": "trade", "bill_date": bill_date.strftime("%Y-%m-%d")}
        if sub_mchid and not app_auth_token:
            biz.update({"bill_type": "trade_zft_merchant", "smid": sub_mchid})
        sub_merchant = SubMerchant(sub_mchid=sub_mchid, app_auth_token=app_auth_token)
        inner = self._call("alipay.data.dataservice.bill.downloadurl.query", biz, sub_merchant=sub_merchant)
        url = str(inner.get("bill_download_url", ""))
        if not url.startswith(("http://", "https://")):
            raise ChannelUnknown("Alipay returned no usable bill_download_url")
        response = channel_request("GET", url, kind=KIND, **self.timeouts)
        if response.status != 200:
            # The file URL answers with the zip or not at all (B.8): a status page, 4xx or 5xx carries no Alipay
            # code and says nothing about the bill — unknown, ask again (design §5 rule 2), never a refusal.
            raise ChannelUnknown(f"bill download answered HTTP {response.status}", http_status=response.status)
        return parse_bill_zip(response.body)

    # --- 直付通 onboarding (B.7) -------------------------------------------------------------------------
    # ant.merchant.expand.indirect.image.upload takes ``image_type`` "bmp、jpg、jpeg、png、gif" and ``image_content``
    # "最大为10M" (EXCEED_MAX_SIZE above it; INVALID_IMAGE_FORMAT for content it cannot read as a picture):
    # https://opendocs.alipay.com/solution/d0814d9c_ant.merchant.expand.indirect.image.upload, the same words in the
    # official SDKs' AntMerchantExpandIndirectImageUploadRequest. Whether "10M" means 10 MiB is not stated; either
    # way it is above our 5 MB document limit.
    IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/bmp": "bmp", "image/gif": "gif"}
    IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"BM", "image/bmp"),
                   (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))
    accepted_documents = dict.fromkeys(IMAGE_TYPES, 10 * 1024 * 1024)

    def upload_image(self, *, content: bytes, filename: str) -> str:
        """ant.merchant.expand.indirect.image.upload: a picture → the image id that zft create refers to.

        ``image_type`` and the file part's suffix say what the content is — its first bytes, as merchants/documents.py
        detects ``Document.content_type`` — not what ``filename`` claims: a PNG named ``.jpg`` was declared a JPEG,
        and a name without an extension declared ``jpg`` whatever it held, with no suffix on the part, which Alipay
        answers as a type error (B.7 image upload: "缺少文件名或后缀，会提示为类型错误"). Content that is none of
        Alipay's picture types is refused here, naming the file, instead of being sent for INVALID_IMAGE_FORMAT."""
        content_type = next((kind for magic, kind in self.IMAGE_MAGIC if content.startswith(magic)), None)
        if content_type is None:
            raise ChannelError(f"{filename or 'the file'} is not a JPEG, PNG, BMP or GIF picture, the only kinds "
                               "Alipay's image upload takes (B.7)", code="invalid_params")
        extension = self.IMAGE_TYPES[content_type]
        stem = filename.rsplit(".", 1)[0] if "." in filename else filename
        filename = f"{stem or 'image'}.{extension}"
        params = self._signed({**self._common_params("ant.merchant.expand.indirect.image.upload",
                                                     sub_merchant=None), "image_type": extension})
        boundary = "aggpay" + secrets.token_hex(12)
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in params.items()]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image_content"; filename="{quote(filename)}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        response = channel_request("POST", self.gateway_url, kind=KIND, body=body,
                                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                                   **self.timeouts)
        inner = self._verified(response.status, response.body, "ant.merchant.expand.indirect.image.upload")
        if inner.get("code") != "10000":
            raise self._error(inner, http_status=response.status)
        return str(inner.get("image_id", ""))

    def onboarding_submit(self, *, application: dict[str, Any]) -> OnboardingResult:
        biz = zft.create_biz(application)
        inner = self._call("ant.merchant.expand.indirect.zft.create", biz)
        return OnboardingResult(state=zft.AUDITING, application_id=str(inner.get("order_id", "")), raw=inner)

    def onboarding_query(self, *, application_id: str, business_code: str = "") -> OnboardingResult:
        biz = {"order_id": application_id} if application_id else {"external_id": business_code}
        inner = self._call("ant.merchant.expand.indirect.zftorder.query", biz)
        return zft.onboarding_result(inner, order_id=application_id)

    def settlement_modify(self, *, sub_mchid: str, account: dict[str, Any]) -> SettlementChangeResult:
        inner = self._call("ant.merchant.expand.indirect.zft.modify", zft.modify_biz(sub_mchid, account))
        return SettlementChangeResult(state="auditing", application_no=str(inner.get("order_id", "")), raw=inner)

    def settlement_modify_query(self, *, sub_mchid: str, application_no: str) -> SettlementChangeResult:
        inner = self._call("ant.merchant.expand.indirect.zftorder.query", {"order_id": application_no})
        return zft.settlement_result(inner, order_id=application_no)

    # --- one-code-pay OAuth (§E) -----------------------------------------------------------------------
    def oauth_authorize_url(self, *, redirect_uri: str, state: str) -> str:
        root = OAUTH_HOSTS.get(self.base_url, self.base_url)
        query = urlencode({"app_id": self.config.app_id, "scope": "auth_base", "redirect_uri": redirect_uri,
                           "state": state})
        return f"{root}/oauth2/publicAppAuthorize.htm?{query}"

    def oauth_payer_id(self, *, code: str) -> str:
        """alipay.system.oauth.token: ``grant_type`` and ``code`` are top-level params, not biz_content (§E)."""
        inner = self._call("alipay.system.oauth.token", None,
                           extra={"grant_type": "authorization_code", "code": code})
        payer = str(inner.get("user_id") or inner.get("open_id") or "")
        if not payer:
            raise ChannelUnknown("alipay.system.oauth.token returned neither user_id nor open_id")
        return payer

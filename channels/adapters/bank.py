"""The bank acquirer gateway in indirect mode (间连): WeChat, Alipay and UnionPay acceptance resold by a bank.

The protocol has no public spec; ours is docs/channels/bank.md, and every section cited below is of that page.
One protocol, several accounts (Bank A, Bank B): each ChannelAccount holds a BankConfig with its own org_no and
keys, and the adapter never mixes them — a response must carry our org_no, echo our nonce and verify under that
account's bank key (§3.4), or it is no answer at all (ChannelUnknown, design §5 rule 2).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.exceptions import UnsupportedAlgorithm

from channels.adapters import bank_onboarding
from channels.adapters.bank_bill import parse_bill
from channels.adapters.bank_wire import (
    format_time,
    load_private_key,
    load_public_key,
    new_nonce,
    parse_time,
    sign,
    verify,
)
from channels.adapters.base import (
    BillLine,
    CallbackAck,
    CallbackEvent,
    CallbackKind,
    ChannelAdapter,
    OnboardingResult,
    PaymentRequest,
    PaymentResult,
    RefundRequest,
    RefundResult,
    RefundState,
    SettlementChangeResult,
    TradeRef,
    TradeState,
    alipay_jsapi_pay_params,
)
from channels.adapters.errors import ChannelError, ChannelUnknown, ParseError, SignatureError
from channels.adapters.http import channel_request, without_nul

VERSION = "1.0"
UNIONPAY_USER_AUTH_URL = "https://qr.95516.com/qrcGtwWeb-web/api/userAuth"  # channel-protocols.md C


@dataclass(frozen=True)
class BankConfig:
    """One bank account's credentials (bank.md §3.2). PEM strings so the row can store ``asdict(config)``."""

    org_no: str  # our institution number at this bank (机构号)
    key_id: str  # the id the bank gave our public key
    private_key_pem: str  # ours, PKCS#8 PEM: signs every request
    bank_key_id: str  # the id of the bank's signing key; responses and notifies name it
    bank_public_key_pem: str  # verifies the bank; also encrypts apply fields (§9.2)
    user_auth_url: str = UNIONPAY_USER_AUTH_URL  # UnionPay userAuth page (§10); the simulator serves its own


# bank.md §12: sub_code → (our normalised code, permanent). Anything not listed is a permanent channel_error.
CODES: dict[str, tuple[str, bool]] = {
    "SIGN_ERROR": ("invalid_signature", True),
    "KEY_NOT_FOUND": ("invalid_signature", True),
    "ORG_NOT_EXIST": ("invalid_params", True),
    "PARAM_ERROR": ("invalid_params", True),
    "VERSION_UNSUPPORTED": ("invalid_params", True),
    "REQ_TIME_EXPIRED": ("invalid_params", False),  # our clock or a slow hop; a fresh request may pass
    "NONCE_REPEATED": ("invalid_params", False),
    "RATE_LIMITED": ("rate_limited", False),
    "NO_PERMISSION": ("no_permission", True),
    "MCH_NOT_EXIST": ("merchant_not_found", True),
    "MCH_LIMITED": ("merchant_limited", True),
    "OUT_TRADE_NO_USED": ("invalid_params", True),
    "ORDER_NOT_EXIST": ("order_not_found", True),
    "ORDER_PAID": ("order_paid", True),
    "ORDER_CLOSED": ("order_closed", True),
    "ORDER_REVERSED": ("order_closed", True),
    "USERPAYING": ("user_paying", False),
    "AUTH_CODE_INVALID": ("auth_code_invalid", True),
    "INSUFFICIENT_BALANCE": ("insufficient_balance", True),
    "RISK_REJECTED": ("risk_rejected", True),
    "REVERSE_NOT_ALLOWED": ("channel_error", True),
    "TRADE_NOT_REFUNDABLE": ("channel_error", True),
    "REFUND_EXCEEDED": ("refund_exceeds", True),
    "OUT_REFUND_NO_USED": ("invalid_params", True),
    "REFUND_NOT_EXIST": ("refund_not_found", True),
    "BILL_NOT_READY": ("channel_error", False),  # bills appear the next morning (§8.1); try again later
    "BILL_DATE_INVALID": ("invalid_params", True),
    "FILE_INVALID": ("invalid_params", True),
    "DECRYPT_ERROR": ("invalid_params", True),
    "APPLY_NOT_EXIST": ("channel_error", True),
    "APPLY_IN_REVIEW": ("channel_error", False),
    "APPLY_FINISHED": ("channel_error", True),
    "MODIFY_NOT_EXIST": ("channel_error", True),
    "SETTLE_MODIFY_LIMIT": ("rate_limited", False),
    "USER_AUTH_CODE_INVALID": ("invalid_params", True),
    "SYSTEM_ERROR": ("channel_unknown", False),
}

# bank.md §4: product → (endpoint, pay_channel, trade_type).
ROUTES: dict[str, tuple[str, str, str]] = {
    "wechat.native": ("/api/pay/unified", "WECHAT", "NATIVE"),
    "alipay.qr": ("/api/pay/unified", "ALIPAY", "NATIVE"),
    "unionpay.qr": ("/api/pay/unified", "UNIONPAY", "NATIVE"),
    "wechat.jsapi": ("/api/pay/jsapi", "WECHAT", "JSAPI"),
    "wechat.mini": ("/api/pay/jsapi", "WECHAT", "MINIAPP"),
    "alipay.jsapi": ("/api/pay/jsapi", "ALIPAY", "JSAPI"),
    "wechat.barcode": ("/api/pay/micropay", "WECHAT", "MICROPAY"),
    "alipay.barcode": ("/api/pay/micropay", "ALIPAY", "MICROPAY"),
    "unionpay.barcode": ("/api/pay/micropay", "UNIONPAY", "MICROPAY"),
}
UNIONPAY_JS = ("/api/pay/jsapi", "UNIONPAY", "JSAPI")  # unionpay.qr with a payer id: 银联JS支付 (§6.2)

TRADE_STATES = {
    "NOTPAY": TradeState.PENDING,
    "USERPAYING": TradeState.USER_PAYING,
    "SUCCESS": TradeState.SUCCEEDED,
    "PAYERROR": TradeState.FAILED,
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.REVERSED,
}
REFUND_STATES = {
    "PROCESSING": RefundState.PROCESSING,
    "SUCCESS": RefundState.SUCCEEDED,
    "FAIL": RefundState.FAILED,
    "CLOSED": RefundState.CLOSED,
    "ABNORMAL": RefundState.ABNORMAL,
}
# bank.md §6.3: micropay refusals that leave a PAYERROR trade behind — the payment failed, nothing is unknown.
PAYER_REFUSALS = ("AUTH_CODE_INVALID", "INSUFFICIENT_BALANCE", "RISK_REJECTED")


class _Malformed(ValueError):
    """A verified bank message whose content does not fit bank.md (wrong type, unknown state)."""


class BankAdapter(ChannelAdapter):
    kind = "bank"
    label = "Bank acquirer (indirect)"
    config_class = BankConfig
    products = tuple(ROUTES)
    capabilities = frozenset({
        "create_payment", "query_payment", "close_payment", "reverse_payment", "refund", "query_refund",
        "parse_callback", "callback_ack", "download_bill", "onboarding_submit", "onboarding_query",
        "settlement_modify", "settlement_modify_query", "oauth_authorize_url", "oauth_payer_id", "upload_image",
    })
    CONFIG_SECRET_FIELDS = ("private_key_pem",)
    # bank.md §6.2: a WeChat JSAPI or mini-program trade names the merchant's appid (``sub_appid``) the payer's
    # user_id (openid) belongs to; the bank refuses one without it.
    needs_sub_appid = frozenset(product for product, (path, channel, _) in ROUTES.items()
                                if path == "/api/pay/jsapi" and channel == "WECHAT")

    def __init__(self, config: BankConfig, *, base_url: str, connect_timeout: float | None = None,
                 read_timeout: float | None = None):
        super().__init__(config, base_url=base_url)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    # --- payments (§6) ------------------------------------------------------------------------------------
    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        if request.product not in ROUTES:
            raise ChannelError(f"the bank does not offer {request.product}", code="no_permission")
        path, pay_channel, trade_type = ROUTES[request.product]
        if request.product == "unionpay.qr" and request.payer_id:
            path, pay_channel, trade_type = UNIONPAY_JS
        params: dict[str, Any] = {
            "mch_no": request.sub_merchant.sub_mchid,
            "pay_channel": pay_channel,
            "out_trade_no": request.out_trade_no,
            "total_amount": request.amount,
            "currency": request.currency,
            "subject": request.subject,
            "attach": request.attach,
            "client_ip": request.client_ip,
            "store_id": request.store_id,
            "terminal_id": request.terminal_id,
            "notify_url": request.notify_url,
        }
        if path == "/api/pay/micropay":
            params["auth_code"] = request.auth_code
            data = self._call(path, params, accept=PAYER_REFUSALS)
            if data["code"] == "FAIL":
                return self._refused_payment(request, data)
            return self._payment(data)
        params["time_expire"] = format_time(request.expires_at)
        if path == "/api/pay/jsapi":
            params.update(trade_type=trade_type, user_id=request.payer_id, sub_appid=request.sub_merchant.sub_appid,
                          front_url=request.return_url)
        data = self._call(path, params)
        result = self._payment(data)
        result.pay_params = self._pay_params(data, pay_channel, path)
        return result

    def query_payment(self, ref: TradeRef) -> PaymentResult:
        data = self._call("/api/pay/query", self._trade_params(ref), accept=("ORDER_NOT_EXIST",))
        if data["code"] == "FAIL":
            return PaymentResult(state=TradeState.NOT_FOUND, out_trade_no=ref.out_trade_no, raw=data)
        return self._payment(data)

    def close_payment(self, ref: TradeRef) -> None:
        self._call("/api/pay/close", self._trade_params(ref))

    def reverse_payment(self, ref: TradeRef) -> PaymentResult:
        return self._payment(self._call("/api/pay/reverse", self._trade_params(ref)))

    # --- refunds (§7) -------------------------------------------------------------------------------------
    def refund(self, request: RefundRequest) -> RefundResult:
        params = {
            **self._trade_params(request.trade),
            "out_refund_no": request.out_refund_no,
            "refund_amount": request.amount,
            "total_amount": request.total_amount,
            "refund_reason": request.reason,
            "notify_url": request.notify_url,
        }
        return self._refund(self._call("/api/refund/apply", params))

    def query_refund(self, *, trade: TradeRef, out_refund_no: str) -> RefundResult:
        params = {"mch_no": trade.sub_merchant.sub_mchid, "out_refund_no": out_refund_no}
        data = self._call("/api/refund/query", params, accept=("REFUND_NOT_EXIST",))
        if data["code"] == "FAIL":
            return RefundResult(state=RefundState.NOT_FOUND, out_refund_no=out_refund_no, raw=data)
        return self._refund(data)

    # --- callbacks (§11) ----------------------------------------------------------------------------------
    def parse_callback(self, *, headers: Mapping[str, str], body: bytes, path: str = "") -> CallbackEvent:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ParseError("bank notify is not a UTF-8 JSON document") from None
        if not isinstance(data, dict):
            raise ParseError("bank notify must be a JSON object")
        # §11.2: verify before reading anything else; a notify names the bank key it was signed with.
        if data.get("key_id") != self.config.bank_key_id or not verify(data, self.config.bank_public_key_pem):
            raise SignatureError("bank notify signature did not verify")
        if data.get("org_no") != self.config.org_no:
            raise SignatureError("bank notify is for another org_no")
        data = without_nul(data)  # only once verified: the signature covers the values as sent
        notify_id, notify_type = data.get("notify_id"), data.get("notify_type")
        if not isinstance(notify_id, str) or not notify_id:
            raise ParseError("bank notify has no notify_id")
        try:
            if notify_type == "PAY_RESULT":
                return CallbackEvent(kind=CallbackKind.PAYMENT, event_id=notify_id, payment=self._payment_of(data),
                                     raw=data)
            if notify_type == "REFUND_RESULT":
                # §7.3: the refund object names its trade (mch_no, out_trade_no, trade_no) — passed on as the
                # trade the refund is on, for trades to cross-check against the refund's order (design §5 rule 4).
                trade = PaymentResult(state=TradeState.SUCCEEDED, out_trade_no=_str(data, "out_trade_no"),
                                      channel_trade_no=_str(data, "trade_no"), sub_mchid=_str(data, "mch_no"),
                                      currency="", raw=dict(data))
                return CallbackEvent(kind=CallbackKind.REFUND, event_id=notify_id, refund=self._refund_of(data),
                                     payment=trade, raw=data)
            if notify_type == "MERCHANT_APPLY":
                result = bank_onboarding.onboarding_result(data)
                return CallbackEvent(kind=CallbackKind.ONBOARDING, event_id=notify_id, raw=data, data={
                    "state": result.state, "application_id": result.application_id,
                    "business_code": _str(data, "apply_no"), "sub_mchid": result.sub_mchid,
                    "sign_url": result.sign_url, "message": result.message, "rejections": result.rejections,
                })
        except _Malformed as exc:
            raise ParseError(f"bank notify {notify_type}: {exc}") from None
        raise ParseError(f"bank notify_type {notify_type!r} is not one of bank.md §11.1")

    def callback_ack(self, *, ok: bool, message: str = "") -> CallbackAck:
        # §11.3: exactly SUCCESS stops the retries; anything else (we say FAIL) asks for another attempt.
        if ok:
            return CallbackAck(status=200, body=b"SUCCESS", content_type="text/plain; charset=utf-8")
        return CallbackAck(status=500, body=b"FAIL", content_type="text/plain; charset=utf-8")

    # --- bills (§8) ---------------------------------------------------------------------------------------
    def download_bill(self, *, bill_date: dt.date, sub_mchid: str = "") -> list[BillLine]:
        data = self._call("/api/bill/download", {
            "bill_date": bill_date.strftime("%Y%m%d"), "bill_type": "TRADE", "mch_no": sub_mchid,
        })
        url, digest = data.get("download_url"), data.get("file_sha256")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(digest, str):
            raise ChannelUnknown("bank bill answer lacks download_url/file_sha256")
        resp = channel_request("GET", url, kind=self.kind, connect_timeout=self.connect_timeout,
                               read_timeout=self.read_timeout)
        if resp.status != 200:
            # §3.4 as for the gateway: only a signed HTTP 200 is the bank's answer; the unsigned file URL's 4xx or
            # 5xx page says nothing about the bill — unknown, ask again (design §5 rule 2), never a refusal.
            raise ChannelUnknown(f"bank bill download answered HTTP {resp.status}", http_status=resp.status)
        # §8.2: the file itself is unsigned; its SHA-256 came in the signed answer.
        if hashlib.sha256(resp.body).hexdigest() != digest.lower():
            raise ChannelUnknown("bank bill file does not match the file_sha256 of the signed answer")
        return parse_bill(resp.body)

    # --- onboarding (§9) ----------------------------------------------------------------------------------
    # bank.md §9.1 file upload: JPEG, PNG or PDF, 1 byte to 2 MiB decoded.
    accepted_documents = dict.fromkeys(("image/jpeg", "image/png", "application/pdf"), 2 * 1024 * 1024)

    def upload_image(self, *, filename: str, content: bytes, file_type: str = "OTHER") -> str:
        """§9.1: upload a picture; returns the bank's file id for the apply body."""
        data = self._call("/api/merchant/file/upload", {
            "file_type": file_type,
            "file_name": filename,
            "file_content": base64.b64encode(content).decode("ascii"),
            "file_sha256": hashlib.sha256(content).hexdigest(),
        })
        file_id = data.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise ChannelUnknown("bank upload answer has no file_id")
        return file_id

    def onboarding_submit(self, *, application: dict[str, Any]) -> OnboardingResult:
        self._check_keys()  # the apply body is encrypted under the bank's key before _call would check it
        body = bank_onboarding.apply_body(application, bank_public_key_pem=self.config.bank_public_key_pem)
        return self._onboarding(self._call("/api/merchant/apply", body))

    def onboarding_query(self, *, application_id: str, business_code: str = "") -> OnboardingResult:
        return self._onboarding(self._call("/api/merchant/query", {"apply_id": application_id,
                                                                     "apply_no": business_code}))

    def settlement_modify(self, *, sub_mchid: str, account: dict[str, Any]) -> SettlementChangeResult:
        """§9.6. ``account`` is a base_onboarding.SettlementAccount; an optional ``request_no`` in it is sent as
        modify_no (reuse it to retry idempotently), otherwise one is generated."""
        modify_no = account.get("request_no") or "SM" + dt.datetime.now(dt.UTC).strftime("%Y%m%d") + \
            secrets.token_hex(8).upper()
        self._check_keys()  # the account is encrypted under the bank's key before _call would check it
        enc = bank_onboarding.encryptor(self.config.bank_public_key_pem)
        data = self._call("/api/merchant/settlement/modify", {
            "mch_no": sub_mchid, "modify_no": modify_no,
            "settlement_account": bank_onboarding.settlement_account(account, enc),
        })
        return self._settlement(data)

    def settlement_modify_query(self, *, sub_mchid: str, application_no: str) -> SettlementChangeResult:
        return self._settlement(self._call("/api/merchant/settlement/query",
                                           {"mch_no": sub_mchid, "modify_no": application_no}))

    # --- UnionPay userAuth (§10; channel-protocols.md C, E) -----------------------------------------------
    def oauth_authorize_url(self, *, redirect_uri: str, state: str) -> str:
        # userAuth has no state parameter: it returns to redirectUrl verbatim, so the state rides inside it.
        target = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode({"state": state})
        return f"{self.config.user_auth_url}?version=1.0.0&redirectUrl={quote(target, safe='')}"

    def oauth_payer_id(self, *, code: str) -> str:
        data = self._call("/api/oauth/user_id", {"user_auth_code": code})
        user_id = data.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise ChannelUnknown("bank userAuth answer has no user_id")
        return user_id

    # --- the envelope (§3, §5) ----------------------------------------------------------------------------
    def _check_keys(self) -> None:
        """Both keys load as RSA keys (bank.md §3.2), or nothing is sent. A config stored before the config check
        refused other keys (channels.services.config) fails here as the account's own fault — a ChannelError of
        the config kind (invalid_params), as Alipay's adapter reports a key that does not load — not a ValueError
        at signing (a 500 to the merchant), nor, for the bank's key, an answer we could not verify (unknown,
        after the request went). The keys are parsed once per process (bank_wire's lru_cache)."""
        for name, load in (("private_key_pem", load_private_key), ("bank_public_key_pem", load_public_key)):
            try:
                load(getattr(self.config, name))
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise ChannelError(f"the bank account's {name} is not a usable RSA key: {type(exc).__name__}",
                                   code="invalid_params") from exc

    def _call(self, path: str, params: Mapping[str, Any], *, accept: tuple[str, ...] = ()) -> dict[str, Any]:
        """POST one signed request; return the verified answer if code is SUCCESS (or FAIL with an accepted
        sub_code). Raises ChannelUnknown for no definite answer and ChannelError for a definite refusal."""
        self._check_keys()
        nonce = new_nonce()
        body: dict[str, Any] = {
            "version": VERSION,
            "org_no": self.config.org_no,
            "req_time": format_time(dt.datetime.now(dt.UTC)),
            "nonce": nonce,
            "sign_type": "RSA2",
            "key_id": self.config.key_id,
        }
        body.update({k: v for k, v in params.items() if v not in (None, "", [], {})})
        body["sign"] = sign(body, self.config.private_key_pem)
        resp = channel_request(
            "POST", self.base_url + path, kind=self.kind,
            headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
        )
        if resp.status >= 500:
            raise ChannelUnknown(f"bank answered HTTP {resp.status}", http_status=resp.status)
        if resp.status == 429:
            raise ChannelError("bank answered HTTP 429", code="rate_limited", permanent=False, http_status=429)
        if resp.status != 200:
            # §2: the gateway answers 200 to everything it processed; other statuses (a redirect, a 404 or 413) come
            # from in front of it, unsigned. §3.4: an answer is usable only if it is HTTP 200 and signed — anything
            # else is no answer, "treat like a timeout: unknown, query later" (design §5 rule 2), never a refusal
            # that fails an order or a refund. (429 stays a retryable rate limit, above: it says when to come back.)
            raise ChannelUnknown(f"bank answered HTTP {resp.status}", http_status=resp.status)
        data = self._verified(resp.body, nonce)
        code, sub_code = data.get("code"), data.get("sub_code") or ""
        if code == "SUCCESS":
            return data
        if code == "FAIL" and sub_code in accept:
            return data
        if code == "FAIL" and CODES.get(sub_code, ("", True))[0] != "channel_unknown":
            normalised, permanent = CODES.get(sub_code, ("channel_error", True))
            raise ChannelError(
                f"bank refused {path}: {sub_code} {data.get('sub_msg') or data.get('msg') or ''}".strip(),
                code=normalised, permanent=permanent, channel_code=sub_code,
                channel_message=str(data.get("sub_msg") or data.get("msg") or ""), http_status=200,
            )
        # §5.2: code UNKNOWN (or SYSTEM_ERROR) means the bank itself does not know yet — query later.
        raise ChannelUnknown(f"bank answered code={code!r} sub_code={sub_code!r}", channel_code=sub_code or None,
                             channel_message=str(data.get("sub_msg") or data.get("msg") or ""), http_status=200)

    def _verified(self, raw: bytes, nonce: str) -> dict[str, Any]:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ChannelUnknown("bank answer is not JSON") from None
        if not isinstance(data, dict):
            raise ChannelUnknown("bank answer is not a JSON object")
        # §3.4: unsigned or wrongly signed answers are no answer (the gateway cannot sign for an org it does not
        # know, and anyone on the path could forge an unsigned FAIL).
        if data.get("key_id") != self.config.bank_key_id or not verify(data, self.config.bank_public_key_pem):
            raise ChannelUnknown("bank answer signature did not verify")
        if data.get("nonce") != nonce or data.get("org_no") != self.config.org_no:
            raise ChannelUnknown("bank answer is not for this request (nonce/org_no differ)")
        return without_nul(data)  # only once verified: the signature covers the values as sent

    # --- object mapping -----------------------------------------------------------------------------------
    def _trade_params(self, ref: TradeRef) -> dict[str, Any]:
        return {"mch_no": ref.sub_merchant.sub_mchid, "out_trade_no": ref.out_trade_no,
                "trade_no": ref.channel_trade_no}

    def _payment(self, data: dict[str, Any]) -> PaymentResult:
        try:
            return self._payment_of(data)
        except _Malformed as exc:
            raise ChannelUnknown(f"bank trade answer is malformed: {exc}") from None

    def _refund(self, data: dict[str, Any]) -> RefundResult:
        try:
            return self._refund_of(data)
        except _Malformed as exc:
            raise ChannelUnknown(f"bank refund answer is malformed: {exc}") from None

    def _onboarding(self, data: dict[str, Any]) -> OnboardingResult:
        try:
            return bank_onboarding.onboarding_result(data)
        except ParseError as exc:
            raise ChannelUnknown(f"bank apply answer is malformed: {exc.message}") from None

    @staticmethod
    def _payment_of(data: Mapping[str, Any]) -> PaymentResult:
        state = data.get("trade_state")
        if not isinstance(state, str) or state not in TRADE_STATES:
            raise _Malformed(f"trade_state {state!r} is not one of bank.md §6.5")
        return PaymentResult(
            state=TRADE_STATES[state],
            # §2, §14: we call the bank by its own trade_no; the wallet's number (on the payer's receipt) is the
            # bank's channel_trade_no, present once paid (Alipay JSAPI: from creation, §6.5).
            channel_trade_no=_str(data, "trade_no"),
            wallet_trade_no=_str(data, "channel_trade_no"),
            amount=_int(data, "total_amount"),
            currency=_str(data, "currency") or "CNY",
            paid_at=_time(data, "pay_time"),
            payer_id=_str(data, "user_id"),
            sub_mchid=_str(data, "mch_no"),
            out_trade_no=_str(data, "out_trade_no"),
            failure_code=_str(data, "sub_code"),
            failure_message=_str(data, "trade_state_desc") if state == "PAYERROR" else "",
            raw=dict(data),
        )

    @staticmethod
    def _refund_of(data: Mapping[str, Any]) -> RefundResult:
        state = data.get("refund_state")
        if not isinstance(state, str) or state not in REFUND_STATES:
            raise _Malformed(f"refund_state {state!r} is not one of bank.md §7.3")
        failure_code, failure_message = "", _str(data, "fail_reason")
        if state in ("FAIL", "CLOSED"):
            # Our normalised code (channels.adapters.errors.NORMALISED_CODES), as a refused payment's is
            # (_refused_payment, CODES): §7.3's refund object has no sub_code, only fail_reason, and §12 makes a
            # refusal the table does not name a permanent channel_error showing the bank's words. Bug: the refund's
            # failure.code was the state word "FAIL" (the raw answer keeps it). The bank's words stay the message.
            failure_code = "channel_error"
            failure_message = failure_message or f"the bank answered refund_state {state}"
        elif state == "ABNORMAL":
            # Not a failure: the refund stays pending for a person (refund_apply_result), and no failure reaches the
            # API; the word tells staff which of the bank's states it is.
            failure_code = state
        return RefundResult(
            state=REFUND_STATES[state],
            out_refund_no=_str(data, "out_refund_no"),
            channel_refund_no=_str(data, "refund_no"),
            amount=_int(data, "refund_amount"),
            succeeded_at=_time(data, "success_time"),
            failure_code=failure_code,
            failure_message=failure_message,
            raw=dict(data),
        )

    @staticmethod
    def _settlement(data: Mapping[str, Any]) -> SettlementChangeResult:
        state = data.get("modify_state")
        if not isinstance(state, str) or state not in bank_onboarding.MODIFY_STATES:
            raise ChannelUnknown(f"bank modify_state {state!r} is not one of bank.md §9.6")
        return SettlementChangeResult(state=bank_onboarding.MODIFY_STATES[state],
                                      application_no=str(data.get("modify_no") or ""),
                                      message=str(data.get("fail_reason") or ""), raw=dict(data))

    @staticmethod
    def _pay_params(data: Mapping[str, Any], pay_channel: str, path: str) -> dict[str, Any]:
        """§6.1/§6.2: what the payer's device needs, under the keys the other adapters use."""
        if path == "/api/pay/unified":
            qr = data.get("qr_code")
            if not isinstance(qr, str) or not qr:
                raise ChannelUnknown("bank unified answer has no qr_code")
            return {"code_url": qr}
        info = data.get("pay_info")
        if not isinstance(info, dict):
            raise ChannelUnknown("bank jsapi answer has no pay_info object")
        if pay_channel == "WECHAT" and isinstance(info.get("package"), str):
            return {"prepay_id": info["package"].removeprefix("prepay_id="), "jsapi": info}
        if pay_channel == "ALIPAY" and isinstance(info.get("tradeNO"), str):
            return alipay_jsapi_pay_params(info["tradeNO"])
        if pay_channel == "UNIONPAY" and isinstance(info.get("redirect_url"), str):
            return {"redirect_url": info["redirect_url"]}
        raise ChannelUnknown(f"bank jsapi pay_info does not fit {pay_channel} (bank.md §6.2)")

    @staticmethod
    def _refused_payment(request: PaymentRequest, data: Mapping[str, Any]) -> PaymentResult:
        sub_code = str(data.get("sub_code") or "")
        return PaymentResult(
            state=TradeState.FAILED, out_trade_no=request.out_trade_no, sub_mchid=request.sub_merchant.sub_mchid,
            amount=request.amount, failure_code=CODES.get(sub_code, ("channel_error", True))[0],
            failure_message=str(data.get("sub_msg") or sub_code), raw=dict(data),
        )


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{key} must be a string")
    return value


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{key} must be a non-negative integer of fen")
    return value


def _time(data: Mapping[str, Any], key: str) -> dt.datetime | None:
    value = _str(data, key)
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise _Malformed(str(exc)) from None

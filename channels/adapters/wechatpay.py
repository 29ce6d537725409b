"""WeChat Pay API v3, service-provider (服务商/partner) mode (channel-protocols.md part A; design §6).

Every request is signed (A.2) and every 2xx answer verified (A.3) before anything in it is used: an answer that
does not verify is ``ChannelUnknown`` (it may be forged or garbled, and the call may still have happened).
Keys: public-key mode (``PUB_KEY_ID_…``, A.3 mode 2) when ``wechatpay_public_key_id`` is set, else platform
certificates (A.3 mode 1) from ``platform_certificates`` or fetched from ``/v3/certificates`` and decrypted with
the APIv3 key. Onboarding, complaints and OAuth live in ``wechatpay_merchant``; the bill parser in
``wechatpay_bill``; the crypto in ``wechatpay_crypto``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote, urlencode, urlsplit

from channels.adapters import wechatpay_crypto as wx
from channels.adapters.base import (
    BillLine,
    CallbackAck,
    CallbackEvent,
    CallbackKind,
    ChannelAdapter,
    PaymentRequest,
    PaymentResult,
    RefundRequest,
    RefundResult,
    RefundState,
    TradeRef,
    TradeState,
)
from channels.adapters.errors import ChannelError, ChannelUnknown, ParseError, SignatureError
from channels.adapters.http import channel_request, without_nul
from channels.adapters.wechatpay_bill import parse_trade_bill
from channels.adapters.wechatpay_merchant import WechatPayMerchantVerbs

CST = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
REAL_GATEWAY = "https://api.mch.weixin.qq.com"

# Channel error code → (our normalised code, permanent). A.6, A.10, A.11; codes not listed map to
# ("channel_error", True) for 4xx. 5xx never reaches this table: it is always ChannelUnknown.
CODES: dict[str, tuple[str, bool]] = {
    "PARAM_ERROR": ("invalid_params", True),
    "INVALID_REQUEST": ("invalid_params", True),
    "SIGN_ERROR": ("invalid_signature", True),
    "SYSTEM_ERROR": ("channel_unknown", False),
    "SYSTEMERROR": ("channel_unknown", False),
    "BANK_ERROR": ("channel_unknown", False),
    "FREQUENCY_LIMITED": ("rate_limited", False),
    "APPID_MCHID_NOT_MATCH": ("invalid_params", True),
    "MCH_NOT_EXISTS": ("merchant_not_found", True),
    "ACCOUNT_ERROR": ("merchant_limited", True),
    "NO_AUTH": ("no_permission", True),
    "RULE_LIMIT": ("risk_rejected", True),
    "TRADE_ERROR": ("risk_rejected", True),
    "OUT_TRADE_NO_USED": ("invalid_params", True),
    "ORDER_NOT_EXIST": ("order_not_found", True),
    "ORDERNOTEXIST": ("order_not_found", True),
    "RESOURCE_NOT_EXISTS": ("order_not_found", True),
    "ORDER_CLOSED": ("order_closed", True),
    "ORDERCLOSED": ("order_closed", True),
    "ORDERREVERSED": ("order_closed", True),
    "ORDER_PAID": ("order_paid", True),
    "ORDERPAID": ("order_paid", True),
    "USERPAYING": ("user_paying", False),
    "NOT_ENOUGH": ("insufficient_balance", True),
    "NOTENOUGH": ("insufficient_balance", True),
    "AUTH_CODE_INVALID": ("auth_code_invalid", True),
    "AUTH_CODE_ERROR": ("auth_code_invalid", True),
    "AUTHCODEEXPIRE": ("auth_code_invalid", True),
    "USER_ACCOUNT_ABNORMAL": ("channel_error", True),
    "NO_STATEMENT_EXIST": ("order_not_found", True),
    "STATEMENT_CREATING": ("channel_unknown", False),
}
# Codes that, answering a payment-code charge, are the payer's definite failure rather than our error (A.7).
PAYER_FAILURES = frozenset({"NOT_ENOUGH", "NOTENOUGH", "AUTH_CODE_INVALID", "AUTH_CODE_ERROR", "AUTHCODEEXPIRE"})

TRADE_STATES = {  # A.8 trade_state → TradeState
    "SUCCESS": TradeState.SUCCEEDED,
    "REFUND": TradeState.SUCCEEDED,  # paid, and a refund was started against it
    "NOTPAY": TradeState.PENDING,
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.REVERSED,
    "USERPAYING": TradeState.USER_PAYING,
    "ACCEPT": TradeState.USER_PAYING,  # accepted, awaiting debit: query again
    "PAYERROR": TradeState.FAILED,
}
REFUND_STATES = {  # A.10 status / refund_status → RefundState
    "SUCCESS": RefundState.SUCCEEDED,
    "PROCESSING": RefundState.PROCESSING,
    "CLOSED": RefundState.CLOSED,
    "ABNORMAL": RefundState.ABNORMAL,
}
PREPAY_PATHS = {
    "wechat.jsapi": "/v3/pay/partner/transactions/jsapi",
    "wechat.mini": "/v3/pay/partner/transactions/jsapi",  # A.7: mini programs use the JSAPI prepay
    "wechat.app": "/v3/pay/partner/transactions/app",
    "wechat.h5": "/v3/pay/partner/transactions/h5",
    "wechat.native": "/v3/pay/partner/transactions/native",
    "wechat.barcode": "/v3/pay/partner/transactions/codepay",
}

# Platform certificates fetched per (gateway, sp_mchid), shared by adapter instances of this process, with the
# monotonic time they were fetched.
_CERT_CACHE: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
_CERT_LOCK = threading.Lock()
# An answer or callback naming a serial we do not hold makes us fetch the list again (A.3: the platform certificate
# may have been rotated) — at most this often, or anyone who can reach the callback URL could make every request
# they send cost a download from WeChat Pay.
CERTIFICATE_REFETCH_SECONDS = 60.0


@dataclass(frozen=True)
class WechatPayConfig:
    sp_mchid: str  # the service provider's mchid (Authorization mchid, A.1)
    sp_appid: str  # an appid bound to sp_mchid (official account: also the OAuth appid, §E)
    private_key_pem: str  # merchant API private key (PKCS#8 PEM)
    serial_no: str  # merchant API certificate serial (hex)
    apiv3_key: str  # 32-character APIv3 key (AES-256-GCM, A.4)
    apiv2_key: str = ""  # 32-character APIv2 key (v2 XML MD5/HMAC, A.11)
    wechatpay_public_key_pem: str = ""  # public-key mode (A.3 mode 2)
    wechatpay_public_key_id: str = ""  # PUB_KEY_ID_…
    platform_certificates: list[str] = field(default_factory=list)  # certificate mode: known PEMs (optional)
    sp_appsecret: str = ""  # the sp_appid's AppSecret, for the snsapi_base code → openid exchange (§E)
    oauth_authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    oauth_token_url: str = "https://api.weixin.qq.com/sns/oauth2/access_token"


class WechatPayAdapter(WechatPayMerchantVerbs, ChannelAdapter):
    kind = "wechatpay"
    label = "WeChat Pay (ISV, API v3)"
    config_class = WechatPayConfig
    products = ("wechat.jsapi", "wechat.mini", "wechat.app", "wechat.h5", "wechat.native", "wechat.barcode")
    capabilities = frozenset({
        "create_payment", "query_payment", "close_payment", "reverse_payment", "refund", "query_refund",
        "parse_callback", "callback_ack", "download_bill", "onboarding_submit", "onboarding_query",
        "settlement_modify", "settlement_modify_query", "complaints_list", "complaint_respond",
        "oauth_authorize_url", "oauth_payer_id",
    })
    CONFIG_SECRET_FIELDS = ("private_key_pem", "apiv3_key", "apiv2_key", "sp_appsecret")

    def __init__(self, config: WechatPayConfig, *, base_url: str = REAL_GATEWAY,
                 connect_timeout: float | None = None, read_timeout: float | None = None):
        super().__init__(config, base_url=base_url)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    # ------------------------------------------------------------------ transport (A.1-A.3, A.6)
    def _url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.base_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v not in (None, "")})
        return url

    def _send(self, method: str, url: str, *, body: bytes = b"", sign_body: bytes | None = None,
              extra_headers: dict | None = None, content_type: str = "application/json"):
        """One signed request. ``sign_body`` replaces the body in the string to sign (multipart uploads, A.2)."""
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")  # A.2: as sent, without host
        cfg = self.config
        try:
            authorization = wx.authorization(mchid=cfg.sp_mchid, serial_no=cfg.serial_no,
                                             private_key_pem=cfg.private_key_pem, method=method, target=target,
                                             body=body if sign_body is None else sign_body)
        except wx.CryptoError as exc:
            # A stored key that is not an RSA key (saved before the config check refused such keys): the account's
            # configuration at fault, nothing sent — a ChannelError as Alipay's and the bank's adapters report it,
            # not a CryptoError escaping to the caller (a 500 to the merchant).
            raise ChannelError(f"the WeChat Pay private_key_pem is not usable: {exc}", code="invalid_params") from exc
        headers = {"Accept": "application/json", "Authorization": authorization}
        if body:
            headers["Content-Type"] = content_type
        if cfg.wechatpay_public_key_id:
            headers["Wechatpay-Serial"] = cfg.wechatpay_public_key_id  # A.1: public-key mode names the key
        headers.update(extra_headers or {})
        return channel_request(method, url, kind=self.kind, headers=headers, body=body or None,
                               connect_timeout=self.connect_timeout, read_timeout=self.read_timeout)

    def _call(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
              body: dict | None = None, sensitive_serial: str = "") -> tuple[int, dict]:
        """Signed call; returns (status, verified JSON) for 2xx, raises ChannelError/ChannelUnknown otherwise."""
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") if body else b""
        extra = {"Wechatpay-Serial": sensitive_serial} if sensitive_serial else None
        resp = self._send(method, self._url(path, query), body=payload, extra_headers=extra)
        return self._interpret(resp)

    def _interpret(self, resp) -> tuple[int, dict]:
        if 200 <= resp.status < 300:
            self._verify_answer(resp.headers, resp.body)
            if not resp.body:
                return resp.status, {}
            try:
                data = json.loads(resp.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise ChannelUnknown("wechatpay sent a verified 2xx that is not JSON", http_status=resp.status)
            if not isinstance(data, dict):
                raise ChannelUnknown("wechatpay sent a verified 2xx that is not a JSON object")
            return resp.status, without_nul(data)
        self._raise_for_answer(resp)

    def _raise_for_answer(self, resp) -> NoReturn:
        """An answer that is not a success: WeChat Pay's refusal when it says so with its code, else unknown."""
        if resp.status >= 500:
            data = _loads_or_empty(resp.body)
            raise ChannelUnknown(f"wechatpay answered HTTP {resp.status}", http_status=resp.status,
                                 channel_code=data.get("code"), channel_message=data.get("message"))
        # 4xx: a definite refusal (A.6). SDKs verify only 2xx; an error that carries a signature must verify.
        if resp.headers.get("Wechatpay-Signature"):
            self._verify_answer(resp.headers, resp.body)
        data = _loads_or_empty(resp.body)
        code = data.get("code")
        if not 400 <= resp.status < 500 or not isinstance(code, str) or not code:
            # A.6: WeChat Pay refuses with a 4xx carrying its {"code", "message"} object. A redirect (we follow
            # none), or a 4xx page without that code (a proxy's 404 or 413, a load balancer's 408), is not WeChat
            # Pay's answer: the request may or may not have reached it — unknown, never a refusal (design §5 rule 2).
            raise ChannelUnknown(f"wechatpay answered HTTP {resp.status} without a WeChat Pay error code",
                                 http_status=resp.status)
        raise channel_error(code, str(data.get("message") or ""), resp.status)

    def _verify_answer(self, headers, body: bytes) -> None:
        try:
            self._check_signature(headers, body)
        except wx.CryptoError as exc:
            raise ChannelUnknown(f"wechatpay answer not verifiable: {exc}") from None

    def _check_signature(self, headers, body: bytes) -> None:
        """A.3 verification; raises wx.CryptoError. Certificate mode refreshes once on an unknown serial."""
        try:
            wx.check_answer_signature(headers=headers, body=body, keys=self._verify_keys())
        except wx.CryptoError:
            serial = headers.get("Wechatpay-Serial") or headers.get("wechatpay-serial") or ""
            if self.config.wechatpay_public_key_id or not serial or serial in self._verify_keys():
                raise
            # An unknown serial may be a rotated platform certificate — fetch the list again (as the SDKs do).
            wx.check_answer_signature(headers=headers, body=body, keys=self._verify_keys(refresh=True))

    def _verify_keys(self, *, refresh: bool = False) -> dict[str, str]:
        cfg = self.config
        if cfg.wechatpay_public_key_id:
            return {cfg.wechatpay_public_key_id: cfg.wechatpay_public_key_pem}
        keys = {}
        for pem in cfg.platform_certificates:
            try:
                keys[wx.certificate_serial(pem)] = pem
            except wx.CryptoError:
                continue
        cache_key = (self.base_url, cfg.sp_mchid)
        with _CERT_LOCK:
            fetched_at, cached = _CERT_CACHE.get(cache_key, (None, None))
        recent = fetched_at is not None and time.monotonic() - fetched_at < CERTIFICATE_REFETCH_SECONDS
        if (cached is None or refresh) and not recent:
            # The attempt's time is kept whether it succeeds or not: a download that fails is tried again after
            # CERTIFICATE_REFETCH_SECONDS, not for every answer meanwhile (each order's answer would otherwise
            # add a call to a gateway that is already failing). What was held before stays in use.
            with _CERT_LOCK:
                _CERT_CACHE[cache_key] = (time.monotonic(), cached)
            cached = self._download_certificates()
            with _CERT_LOCK:
                _CERT_CACHE[cache_key] = (time.monotonic(), cached)
        if cached is None:
            raise ChannelUnknown("wechatpay platform certificates unavailable: the last download failed; the next "
                                 f"is tried {CERTIFICATE_REFETCH_SECONDS:g} s after it")
        return {**keys, **cached}

    def _download_certificates(self) -> dict[str, str]:
        """A.3 mode 1: GET /v3/certificates, decrypt each with the APIv3 key, and verify the answer with them."""
        resp = self._send("GET", self._url("/v3/certificates"))
        if resp.status != 200:
            raise ChannelUnknown(f"wechatpay certificates download answered HTTP {resp.status}")
        data = _loads_or_empty(resp.body)
        certs = {}
        for item in data.get("data") or []:
            enc = item.get("encrypt_certificate") or {}
            try:
                pem = wx.aes_gcm_decrypt(apiv3_key=self.config.apiv3_key, nonce=enc.get("nonce", ""),
                                         associated_data=enc.get("associated_data", ""),
                                         ciphertext=enc.get("ciphertext", "")).decode("utf-8")
                certs[wx.certificate_serial(pem)] = pem
            except (wx.CryptoError, UnicodeDecodeError, AttributeError):
                continue
        try:
            wx.check_answer_signature(headers=resp.headers, body=resp.body, keys=certs)
        except wx.CryptoError as exc:
            raise ChannelUnknown(f"wechatpay certificates answer not verifiable: {exc}") from None
        return certs

    def encryption_key(self) -> tuple[str, str]:
        """(serial, PEM) of the WeChat key that sensitive fields are encrypted with (A.5)."""
        cfg = self.config
        if cfg.wechatpay_public_key_id:
            return cfg.wechatpay_public_key_id, cfg.wechatpay_public_key_pem
        keys = self._verify_keys()
        if not keys:
            raise ChannelUnknown("no WeChat Pay platform certificate available to encrypt with")
        serial = max(keys, key=lambda s: int(s, 16) if not s.startswith("PUB_KEY_ID_") else -1)
        return serial, keys[serial]

    # ------------------------------------------------------------------ payments (A.7-A.9)
    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        path = PREPAY_PATHS.get(request.product)
        if path is None:
            raise ChannelError(f"wechatpay does not serve {request.product}", code="no_permission")
        cfg, sub = self.config, request.sub_merchant
        body: dict[str, Any] = {
            "sp_appid": cfg.sp_appid, "sp_mchid": cfg.sp_mchid, "sub_mchid": sub.sub_mchid,
            "description": request.subject[:127], "out_trade_no": request.out_trade_no,
            "amount": {"total": request.amount, "currency": request.currency},
        }
        if sub.sub_appid:
            body["sub_appid"] = sub.sub_appid
        if request.attach:
            body["attach"] = request.attach
        if request.product != "wechat.barcode":
            body["notify_url"] = request.notify_url
            body["time_expire"] = request.expires_at.astimezone(CST).isoformat(timespec="seconds")
        if request.product in ("wechat.jsapi", "wechat.mini"):
            if not request.payer_id:
                raise ChannelError("JSAPI/mini-program payments need the payer's openid", code="invalid_params")
            body["payer"] = {_openid_key(request): request.payer_id}
        elif request.product == "wechat.h5":
            if not request.client_ip:
                raise ChannelError("H5 payments need the payer's IP", code="invalid_params")
            body["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
        elif request.product == "wechat.native" and request.client_ip:
            body["scene_info"] = {"payer_client_ip": request.client_ip}
        elif request.product == "wechat.barcode":
            if not request.auth_code:
                raise ChannelError("barcode payments need the payer's auth_code", code="invalid_params")
            body["payer"] = {"auth_code": request.auth_code}
            scene: dict[str, Any] = {"store_info": {"id": request.store_id or "0001"}}
            if request.terminal_id:
                scene["device_id"] = request.terminal_id
            if request.client_ip:
                scene["payer_client_ip"] = request.client_ip
            body["scene_info"] = scene
            return self._codepay(body)
        _, data = self._call("POST", path, body=body)
        return PaymentResult(state=TradeState.PENDING, pay_params=self._pay_params(request, data),
                             amount=request.amount, currency=request.currency, sub_mchid=sub.sub_mchid,
                             out_trade_no=request.out_trade_no, raw=data)

    def _pay_params(self, request: PaymentRequest, data: dict) -> dict[str, Any]:
        sub = request.sub_merchant
        if request.product == "wechat.native":
            return {"code_url": _required(data, "code_url")}
        if request.product == "wechat.h5":
            url = _required(data, "h5_url")
            if request.return_url:  # WeChat sends the payer back here after paying in H5
                url += ("&" if "?" in url else "?") + "redirect_url=" + quote(request.return_url, safe="")
            return {"h5_url": url}
        prepay_id = _required(data, "prepay_id")
        timestamp, nonce = str(int(time.time())), wx.nonce_str()
        # A.9: the appId the payer's openid belongs to (the one the order was placed with).
        appid = self.config.sp_appid if _openid_key(request) == "sp_openid" else sub.sub_appid or self.config.sp_appid
        if request.product == "wechat.app":
            # A.9 APP: sign over appid\ntimestamp\nnoncestr\nprepayid\n with the merchant key.
            sign = wx.rsa_sign(self.config.private_key_pem, f"{appid}\n{timestamp}\n{nonce}\n{prepay_id}\n".encode())
            return {"prepay_id": prepay_id, "app": {
                "appid": appid, "partnerid": sub.sub_mchid, "prepayid": prepay_id, "package": "Sign=WXPay",
                "noncestr": nonce, "timestamp": timestamp, "sign": sign}}
        package = f"prepay_id={prepay_id}"
        # A.9 JSAPI / mini program: paySign over appId\ntimeStamp\nnonceStr\npackage\n.
        pay_sign = wx.rsa_sign(self.config.private_key_pem, f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode())
        return {"prepay_id": prepay_id, "jsapi": {
            "appId": appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA",
            "paySign": pay_sign}}

    def _codepay(self, body: dict) -> PaymentResult:
        try:
            _, data = self._call("POST", PREPAY_PATHS["wechat.barcode"], body=body)
        except ChannelUnknown:
            raise
        except ChannelError as exc:
            if exc.channel_code == "USERPAYING":  # A.6: 202/4xx USERPAYING — query again
                return PaymentResult(state=TradeState.USER_PAYING, out_trade_no=body["out_trade_no"],
                                     sub_mchid=body["sub_mchid"], failure_code=exc.channel_code,
                                     failure_message=exc.channel_message or "")
            if exc.channel_code in PAYER_FAILURES:
                # The order's failure.code is our normalised one (errors.NORMALISED_CODES), as the Alipay and bank
                # adapters give it: a merchant reads `insufficient_balance` whichever channel took the code. Bug:
                # WeChat Pay's own word (NOT_ENOUGH) reached the API. Its words stay the message; raw keeps the code.
                return PaymentResult(state=TradeState.FAILED, out_trade_no=body["out_trade_no"],
                                     sub_mchid=body["sub_mchid"], failure_code=exc.code,
                                     failure_message=exc.channel_message or exc.channel_code or "",
                                     raw={"code": exc.channel_code, "message": exc.channel_message or ""})
            raise
        if "trade_state" not in data and data.get("code") == "USERPAYING":
            data = {**data, "trade_state": "USERPAYING"}
        result = payment_from_transaction(data, strict=False)
        result.out_trade_no = result.out_trade_no or body["out_trade_no"]
        result.sub_mchid = result.sub_mchid or body["sub_mchid"]
        return result

    def query_payment(self, ref: TradeRef) -> PaymentResult:
        cfg = self.config
        query = {"sp_mchid": cfg.sp_mchid, "sub_mchid": ref.sub_merchant.sub_mchid}
        if ref.out_trade_no:
            path = "/v3/pay/partner/transactions/out-trade-no/" + quote(ref.out_trade_no, safe="")
        else:
            path = "/v3/pay/partner/transactions/id/" + quote(ref.channel_trade_no, safe="")
        try:
            _, data = self._call("GET", path, query=query)
        except ChannelError as exc:
            if exc.code == "order_not_found" and not isinstance(exc, ChannelUnknown):
                return PaymentResult(state=TradeState.NOT_FOUND, out_trade_no=ref.out_trade_no,
                                     failure_code=exc.channel_code or "", failure_message=exc.channel_message or "")
            raise
        return payment_from_transaction(data, strict=False)

    def close_payment(self, ref: TradeRef) -> None:
        path = f"/v3/pay/partner/transactions/out-trade-no/{quote(ref.out_trade_no, safe='')}/close"
        status, data = self._call("POST", path,
                                  body={"sp_mchid": self.config.sp_mchid, "sub_mchid": ref.sub_merchant.sub_mchid})
        if status == 202:  # A.6: 202 USERPAYING — the payer is confirming; not closed, try again later
            raise ChannelError("wechatpay USERPAYING: the payer is confirming", permanent=False, code="user_paying",
                               channel_code=str(data.get("code") or "USERPAYING"),
                               channel_message=str(data.get("message") or ""), http_status=202)

    def reverse_payment(self, ref: TradeRef) -> PaymentResult:
        cfg, sub = self.config, ref.sub_merchant
        body = {"sp_appid": cfg.sp_appid, "sp_mchid": cfg.sp_mchid, "sub_mchid": sub.sub_mchid}
        if sub.sub_appid:
            body["sub_appid"] = sub.sub_appid
        path = f"/v3/pay/partner/transactions/out-trade-no/{quote(ref.out_trade_no, safe='')}/reverse"
        _, data = self._call("POST", path, body=body)
        return PaymentResult(state=TradeState.REVERSED, out_trade_no=data.get("out_trade_no") or ref.out_trade_no,
                             sub_mchid=sub.sub_mchid, raw=data)

    # ------------------------------------------------------------------ refunds (A.10)
    def refund(self, request: RefundRequest) -> RefundResult:
        trade = request.trade
        body: dict[str, Any] = {
            "sub_mchid": trade.sub_merchant.sub_mchid, "out_refund_no": request.out_refund_no,
            "amount": {"refund": request.amount, "total": request.total_amount, "currency": "CNY"},
        }
        if trade.channel_trade_no:
            body["transaction_id"] = trade.channel_trade_no
        else:
            body["out_trade_no"] = trade.out_trade_no
        if request.reason:
            body["reason"] = request.reason[:80]
        if request.notify_url:
            body["notify_url"] = request.notify_url
        _, data = self._call("POST", "/v3/refund/domestic/refunds", body=body)
        return refund_from_object(data, strict=False)

    def query_refund(self, *, trade: TradeRef, out_refund_no: str) -> RefundResult:
        path = "/v3/refund/domestic/refunds/" + quote(out_refund_no, safe="")
        try:
            _, data = self._call("GET", path, query={"sub_mchid": trade.sub_merchant.sub_mchid})
        except ChannelError as exc:
            if exc.code == "order_not_found" and not isinstance(exc, ChannelUnknown):
                return RefundResult(state=RefundState.NOT_FOUND, out_refund_no=out_refund_no,
                                    failure_code=exc.channel_code or "", failure_message=exc.channel_message or "")
            raise
        return refund_from_object(data, strict=False)

    # ------------------------------------------------------------------ callbacks (A.3, A.4)
    def parse_callback(self, *, headers: Mapping[str, str], body: bytes, path: str = "") -> CallbackEvent:
        headers = {str(k).lower(): v for k, v in dict(headers).items()}
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            self._check_signature(headers, body)
        except wx.CryptoError as exc:
            raise SignatureError(f"wechatpay callback rejected: {exc}") from None
        except ChannelUnknown as exc:
            raise SignatureError(f"wechatpay callback cannot be verified now: {exc}") from None
        try:
            envelope = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ParseError("wechatpay callback body is not JSON") from None
        if not isinstance(envelope, dict):
            raise ParseError("wechatpay callback body is not a JSON object")
        resource = envelope.get("resource")
        if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
            raise ParseError("wechatpay callback has no encrypt-resource")
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise ParseError(f"unsupported resource algorithm {resource.get('algorithm')!r}")
        fields = {k: resource.get(k) for k in ("nonce", "ciphertext", "associated_data")}
        if not isinstance(fields["nonce"], str) or not isinstance(fields["ciphertext"], str) or not isinstance(
                fields["associated_data"] or "", str):
            raise ParseError("wechatpay callback resource is incomplete")
        try:
            plain = wx.aes_gcm_decrypt(apiv3_key=self.config.apiv3_key, nonce=fields["nonce"],
                                       associated_data=fields["associated_data"] or "",
                                       ciphertext=fields["ciphertext"])
            data = json.loads(plain.decode("utf-8"))
        except wx.CryptoError as exc:
            raise SignatureError(f"wechatpay callback resource: {exc}") from None
        except (UnicodeDecodeError, ValueError):
            raise ParseError("decrypted wechatpay resource is not JSON") from None
        if not isinstance(data, dict):
            raise ParseError("decrypted wechatpay resource is not a JSON object")
        # Verified above over its bytes, the resource decrypted as sent: only now are NULs replaced (stored text).
        envelope, data = without_nul(envelope), without_nul(data)
        event_id, event_type = envelope.get("id"), envelope.get("event_type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise ParseError("wechatpay callback lacks id or event_type")
        raw = {**envelope, "resource": data}
        if event_type.startswith("TRANSACTION."):
            return CallbackEvent(kind=CallbackKind.PAYMENT, event_id=event_id,
                                 payment=payment_from_transaction(data, strict=True), data=data, raw=raw)
        if event_type.startswith("REFUND."):
            return CallbackEvent(kind=CallbackKind.REFUND, event_id=event_id,
                                 refund=refund_from_object(data, strict=True),
                                 payment=trade_of_refund_notice(data), data=data, raw=raw)
        if event_type.startswith("COMPLAINT."):
            if not isinstance(data.get("complaint_id"), str):
                raise ParseError("complaint callback lacks complaint_id")
            return CallbackEvent(kind=CallbackKind.COMPLAINT, event_id=event_id,
                                 data={**data, "event_type": event_type}, raw=raw)
        if event_type.startswith("VIOLATION."):
            if not isinstance(data.get("record_id"), str):
                raise ParseError("violation callback lacks record_id")  # A.15: the dedupe key
            return CallbackEvent(kind=CallbackKind.VIOLATION, event_id=event_id,
                                 data={**data, "event_type": event_type}, raw=raw)
        raise ParseError(f"unsupported wechatpay event_type {event_type!r}")

    def callback_ack(self, *, ok: bool, message: str = "", transient: bool = False) -> CallbackAck:
        """A.4: 200/204 stops the retries; 4xx/5xx with ``{"code":"FAIL"}`` asks WeChat to retry."""
        if ok:
            return CallbackAck(status=204, body=b"", content_type="application/json")
        body = json.dumps({"code": "FAIL", "message": message or "失败"}, ensure_ascii=False).encode("utf-8")
        return CallbackAck(status=500 if transient else 400, body=body, content_type="application/json")

    # ------------------------------------------------------------------ bills (A.12)
    def download_bill(self, *, bill_date: dt.date, sub_mchid: str = "") -> list[BillLine]:
        query = {"bill_date": bill_date.isoformat(), "sub_mchid": sub_mchid, "bill_type": "ALL", "tar_type": "GZIP"}
        try:
            _, info = self._call("GET", "/v3/bill/tradebill", query=query)
        except ChannelError as exc:
            if exc.channel_code == "NO_STATEMENT_EXIST":  # a day without trades has no bill
                return []
            raise
        url, expected = info.get("download_url"), str(info.get("hash_value") or "").lower()
        if not isinstance(url, str) or not expected:
            raise ChannelUnknown("wechatpay bill answer lacks download_url or hash_value")
        # Never send our signed Authorization to a host other than the gateway we were configured with.
        if _origin(url) != _origin(self.base_url):
            raise ChannelUnknown(f"wechatpay bill download_url points outside the gateway: {_origin(url)}")
        resp = self._send("GET", url)
        if resp.status != 200:
            # A.6 as for any call: only a WeChat Pay error code is its refusal. A 5xx, or a page without that code
            # (a proxy's 404 or 403, a redirect), is not WeChat Pay saying anything about the bill: unknown, ask
            # again. Bug: such a page became a definite ChannelError "HTTP_404".
            self._raise_for_answer(resp)
        # A.12: the download is unsigned; the SHA1 of the uncompressed file from the signed answer vouches for it.
        # Bytes that do not decompress or do not match it are a download cut short or damaged on the way, not
        # WeChat Pay's word on the bill (its signed answer vouched for a whole file): unknown, ask again (design §5
        # rule 2) — as the bank's adapter treats a file that misses its signed file_sha256 (bank.md §8). Only a
        # file that matches and still does not parse is the channel's own (ParseError, in parse_trade_bill).
        content = resp.body
        if content[:2] == b"\x1f\x8b":
            try:
                content = gzip.decompress(content)
            except (OSError, EOFError, zlib.error):
                raise ChannelUnknown("wechatpay bill download is not a whole gzip file") from None
        if hashlib.sha1(content).hexdigest() != expected:  # noqa: S324 - the channel's algorithm
            raise ChannelUnknown("wechatpay bill does not match the hash_value of the signed answer")
        return parse_trade_bill(content)


# --------------------------------------------------------------------- helpers
def channel_error(code: str, message: str, status: int | None) -> ChannelError:
    normalised, permanent = CODES.get(code, ("channel_error", True))
    if status == 429:
        permanent = False
    if normalised == "channel_unknown":
        return ChannelUnknown(f"wechatpay {code}: {message}", channel_code=code, channel_message=message,
                              http_status=status)
    return ChannelError(f"wechatpay {code}: {message}", permanent=permanent, code=normalised, channel_code=code,
                        channel_message=message, http_status=status)


def payment_from_transaction(tx: dict, *, strict: bool) -> PaymentResult:
    """A.8 Transaction object → PaymentResult. ``strict`` (callbacks) raises ParseError, else ChannelUnknown."""
    fail = ParseError if strict else ChannelUnknown
    state = TRADE_STATES.get(tx.get("trade_state"))  # type: ignore[arg-type]
    if state is None:
        raise fail(f"wechatpay trade_state {tx.get('trade_state')!r} is unknown")
    amount = tx.get("amount") if isinstance(tx.get("amount"), dict) else {}
    payer = tx.get("payer") if isinstance(tx.get("payer"), dict) else {}
    total = amount.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise fail("wechatpay amount.total is not an integer")
    failed = state == TradeState.FAILED
    return PaymentResult(
        state=state,
        channel_trade_no=_str(tx.get("transaction_id")),
        wallet_trade_no=_str(tx.get("transaction_id")),  # 微信支付订单号: the 交易单号 on the payer's receipt
        amount=total,
        currency=_str(amount.get("currency")) or "CNY",
        paid_at=_time(tx.get("success_time"), fail),
        payer_id=_str(payer.get("sub_openid")) or _str(payer.get("sp_openid")),
        sub_mchid=_str(tx.get("sub_mchid")),
        out_trade_no=_str(tx.get("out_trade_no")),
        # A.8 PAYERROR names no reason code, only trade_state_desc: the failure is aggpay's payment_failed (what the
        # bank's PAYERROR gives, trades.services.orders), the channel's words its message.
        failure_code="payment_failed" if failed else "",
        failure_message=(_str(tx.get("trade_state_desc")) or "WeChat Pay answered trade_state PAYERROR") if failed else "",
        raw=tx,
    )


def refund_from_object(obj: dict, *, strict: bool) -> RefundResult:
    """A.10 refund object (``status``) or refund notification (``refund_status``) → RefundResult."""
    fail = ParseError if strict else ChannelUnknown
    status = obj.get("status") or obj.get("refund_status")
    state = REFUND_STATES.get(status)  # type: ignore[arg-type]
    if state is None:
        raise fail(f"wechatpay refund status {status!r} is unknown")
    amount = obj.get("amount") if isinstance(obj.get("amount"), dict) else {}
    refund = amount.get("refund")
    if refund is not None and (isinstance(refund, bool) or not isinstance(refund, int)):
        raise fail("wechatpay amount.refund is not an integer")
    # A.10 gives a closed refund no reason code: its failure.code is our channel_error, as a bank's FAIL/CLOSED is
    # (bank._refund_of; docs/api.md "Refunds"), the status word its message. Bug: the API's failure.code was "CLOSED".
    # ABNORMAL is no failure (the refund waits for a person): the word tells staff which state it is.
    code, message = {RefundState.CLOSED: ("channel_error", f"WeChat Pay answered refund status {status}"),
                     RefundState.ABNORMAL: (status, "")}.get(state, ("", ""))
    return RefundResult(
        state=state,
        out_refund_no=_str(obj.get("out_refund_no")),
        channel_refund_no=_str(obj.get("refund_id")),
        amount=refund,
        succeeded_at=_time(obj.get("success_time"), fail),
        failure_code=code,
        failure_message=message,
        raw=obj,
    )


def trade_of_refund_notice(notice: dict) -> PaymentResult:
    """The trade a refund notification (A.10) is about, as it names it — out_trade_no, transaction_id, sub_mchid and
    the order's ``amount.total`` — for trades to cross-check against the refund's order (design §5 rule 4). A refund
    is only ever of a paid trade, hence the state. The notification states no currency: none is checked."""
    amount = notice.get("amount") if isinstance(notice.get("amount"), dict) else {}
    total = amount.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise ParseError("wechatpay refund notification amount.total is not an integer")
    return PaymentResult(state=TradeState.SUCCEEDED, out_trade_no=_str(notice.get("out_trade_no")),
                         channel_trade_no=_str(notice.get("transaction_id")),
                         wallet_trade_no=_str(notice.get("transaction_id")), amount=total,
                         currency=_str(amount.get("currency")), sub_mchid=_str(notice.get("sub_mchid")), raw=notice)


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _time(value, fail) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise fail(f"wechatpay time {value!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CST)


def _required(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ChannelUnknown(f"wechatpay answer lacks {key}")
    return value


def _loads_or_empty(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return without_nul(data) if isinstance(data, dict) else {}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _openid_key(request: PaymentRequest) -> str:
    """A.7: ``payer.sub_openid`` belongs to sub_appid, ``payer.sp_openid`` to sp_appid (§E decides which we learnt).
    An id of unstated kind (the merchant API's ``payer.openid``) is a sub_openid when the contract has a sub_appid;
    our one-code-pay OAuth runs under sp_appid, so its ids come marked "sp" and stay sp_openid either way."""
    if request.payer_id_kind == "sp" or not request.sub_merchant.sub_appid:
        return "sp_openid"
    return "sub_openid"

"""WeChat Pay API v3 partner-mode simulator: a strict loopback peer (channel-protocols.md A.16).

What it checks and does:
* every ``/v3/`` request's Authorization (A.2): pairs parsed in any order, the merchant key named by ``serial_no``,
  ``|now - timestamp| < 300 s``; anything else is ``401 SIGN_ERROR``. The signed URL is the request path + query as
  sent; because the simulator is mounted under ``/wechatpay`` (or ``/_sim/wechatpay``), a signature over the path
  relative to that mount — what an SDK pointed at ``<root>/wechatpay`` signs — is accepted too;
* every answer to a known merchant is signed (A.3), 204s over an empty body, with ``Wechatpay-Signature-Type`` and
  ``Wechatpay-Serial`` = ``PUB_KEY_ID_…`` (public-key mode) or the platform certificate serial (certificate mode);
* trades: NOTPAY → SUCCESS | CLOSED; SUCCESS → REFUND when refunded; codepay USERPAYING → SUCCESS | PAYERROR;
  REVOKED after reverse. Refunds PROCESSING → SUCCESS after ``refund_delay_seconds`` (or ``/_control/refunds``);
* callbacks (A.4) encrypted with the account's APIv3 key, signed, retried until answered 200/204;
* faults (core.py), plus ``signtest`` (answers and callbacks) and the callback-phase faults.

Payment codes (codepay, ``payer.auth_code``): 18 digits starting 10-15, else 400 AUTH_CODE_INVALID. The last digit
picks the scenario: 0-4 SUCCESS at once; 5 USERPAYING then SUCCESS after ``userpaying_seconds``; 6 USERPAYING then
PAYERROR; 7 403 NOT_ENOUGH (insufficient balance); 8 400 AUTH_CODE_INVALID (expired code); 9 PAYERROR at once.
(The v3 codepay error codes for 7/8 are [UNVERIFIED]; the v2 names are reused.)

Leniencies, on purpose: notify URLs may be http:// (loopback); bills are served for any past or current day.
Account settings (``POST /_control/accounts/<sp_mchid>/settings``): ``refund_delay_seconds`` (2),
``userpaying_seconds`` (2), ``strict_sub_mchid`` (false: any sub_mchid trades; true: only registered ones),
``sub_mchids`` (register), ``auto_review`` ({"delay_seconds", "outcome"}), ``settlement_review`` (same),
``fee_rate`` ("0.006").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from html import escape
from urllib.parse import quote, urlsplit

import requests

from channels.simulators import wechatpay_crypto as crypto
from channels.simulators.core import SimRequest, SimResponse, SimulatorApp
from channels.simulators.notifier import Notifier
from channels.simulators.store import Store
from channels.simulators.wechatpay_merchant import NS_OPENIDS, WechatPayMerchantRoutes

KIND = "wechatpay"
SCHEME = "WECHATPAY2-SHA256-RSA2048"
CST = dt.timezone(dt.timedelta(hours=8))
NS_ACCOUNTS = "wechatpay:accounts"
NS_TRADES = "wechatpay:trades"  # "<sp_mchid>:<out_trade_no>"
NS_INDEX = "wechatpay:index"  # "prepay:<id>" / "code:<token>" / "txn:<transaction_id>" / "otn:<otn>" → trade key
NS_REFUNDS = "wechatpay:refunds"  # "<sp_mchid>:<out_refund_no>"
NS_APPIDS = "wechatpay:appids"  # sp_appid → sp_mchid
# Short retry schedule (A.4's is 15 s … 6 h): callbacks are signed once, so all tries stay inside the 5-minute
# timestamp window the merchant enforces.
CALLBACK_SCHEDULE = (0, 2, 5, 15, 30, 60, 120)
TRADE_TYPES = {"jsapi": "JSAPI", "app": "APP", "h5": "MWEB", "native": "NATIVE", "codepay": "MICROPAY"}
OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-*|]{6,32}$")
AUTH_PAIRS = re.compile(r'(\w+)="([^"]*)"')  # A.2: key="value" pairs of the Authorization header, any order
NOTIFY_URL = re.compile(r"^https?://[^?#]+$")
AUTH_CODE = re.compile(r"^1[0-5]\d{16}$")
DEFAULT_SETTINGS = {"refund_delay_seconds": 2.0, "userpaying_seconds": 2.0, "strict_sub_mchid": False,
                    "fee_rate": "0.006"}


def _quote_path(path: str) -> str:
    return quote(path, safe="/-_.~")


def now_rfc3339(ts: float | None = None) -> str:
    return dt.datetime.fromtimestamp(ts if ts is not None else time.time(), CST).isoformat(timespec="seconds")


def error(code: str, message: str, status: int = 400) -> SimResponse:
    return SimResponse.json({"code": code, "message": message}, status=status)


class WechatPaySimulator(WechatPayMerchantRoutes, SimulatorApp):
    kind = KIND

    def __init__(self, store: Store):
        super().__init__(store)
        self.notifier = Notifier(store, KIND, is_ack=lambda status, body: status in (200, 204),
                                 schedule=CALLBACK_SCHEDULE, sign_headers=self.callback_signature_headers)
        if self.notifier.pending():  # resume callbacks left by a previous process (state survives restarts)
            self.notifier._ensure_thread()
        r = self.route
        r("POST", r"/v3/pay/partner/transactions/(?P<scene>jsapi|app|h5|native)", self.prepay)
        r("POST", r"/v3/pay/partner/transactions/codepay", self.codepay)
        r("GET", r"/v3/pay/partner/transactions/out-trade-no/(?P<otn>[^/]+)", self.query)
        r("GET", r"/v3/pay/partner/transactions/id/(?P<txn>[^/]+)", self.query)
        r("POST", r"/v3/pay/partner/transactions/out-trade-no/(?P<otn>[^/]+)/close", self.close)
        r("POST", r"/v3/pay/partner/transactions/out-trade-no/(?P<otn>[^/]+)/reverse", self.reverse)
        r("POST", r"/v3/refund/domestic/refunds", self.refund)
        r("GET", r"/v3/refund/domestic/refunds/(?P<no>[^/]+)", self.refund_query)
        r("GET", r"/v3/certificates", self.certificates)
        r("POST", r"/_control/accounts", self.control_account_create)
        r("GET", r"/_control/accounts/(?P<sp>\d+)", self.control_account_get)
        r("POST", r"/_control/accounts/(?P<sp>\d+)/settings", self.control_account_settings)
        r("POST", r"/_control/refunds/(?P<no>[^/]+)", self.control_refund)
        r("POST", r"/_control/flush", self.control_flush)
        r("GET", r"/_control/callbacks", self.control_callbacks)
        r("DELETE", r"/_control/callbacks", self.control_cancel_callbacks)
        r("POST", r"/_payer/pay", self.payer_pay)
        r("GET", r"/_payer/", self.payer_page)
        self.register_merchant_routes()

    # ================================================================== accounts
    def account(self, sp_mchid: str) -> dict | None:
        return self.store.get(NS_ACCOUNTS, sp_mchid)

    def settings(self, account: dict) -> dict:
        return {**DEFAULT_SETTINGS, **account.get("settings", {})}

    def encryption_serial(self, account: dict) -> str:
        return account["public_key_id"] if account["mode"] == "public_key" else account["certificate_serial"]

    def control_account_create(self, request: SimRequest) -> SimResponse:
        data = request.json()
        for key in ("merchant_public_key_pem", "merchant_serial_no", "apiv3_key"):
            if not data.get(key):
                return SimResponse.json({"error": f"{key} is required"}, 400)
        if len(data["apiv3_key"].encode()) != 32:
            return SimResponse.json({"error": "apiv3_key must be 32 bytes"}, 400)
        while True:
            sp_mchid = "19" + "".join(secrets.choice("0123456789") for _ in range(8))
            if self.account(sp_mchid) is None:
                break
        platform_key = crypto.new_key_pem()
        mode = data.get("mode", "public_key")
        account = {
            "sp_mchid": sp_mchid, "name": data.get("name", "demo"), "mode": mode,
            "sp_appid": "wx" + secrets.token_hex(8), "sp_appsecret": secrets.token_hex(16),
            "merchant_keys": {data["merchant_serial_no"]: data["merchant_public_key_pem"]},
            "apiv3_key": data["apiv3_key"], "apiv2_key": data.get("apiv2_key", ""),
            "platform_private_key": platform_key,
            "public_key_id": "PUB_KEY_ID_" + secrets.token_hex(12).upper(),
            "certificate_pem": "", "certificate_serial": "",
            "sub_mchids": list(data.get("sub_mchids", [])), "settings": {},
            "complaint_notify_url": "", "violation_notify_url": "",
        }
        if mode == "certificate":
            account["certificate_pem"], account["certificate_serial"] = crypto.self_signed_certificate(
                platform_key, f"Wechatpay simulator {sp_mchid}")
        self.store.put(NS_ACCOUNTS, sp_mchid, account)
        self.store.put(NS_APPIDS, account["sp_appid"], sp_mchid)
        answer = {"sp_mchid": sp_mchid, "sp_appid": account["sp_appid"], "sp_appsecret": account["sp_appsecret"],
                  "mode": mode}
        if mode == "public_key":
            answer.update(wechatpay_public_key_pem=crypto.public_pem(platform_key),
                          wechatpay_public_key_id=account["public_key_id"])
        return SimResponse.json(answer, 201)

    def control_account_get(self, request: SimRequest) -> SimResponse:
        account = self.account(request.match["sp"])
        if account is None:
            return SimResponse.json({"error": "no such account"}, 404)
        public = {k: v for k, v in account.items() if k not in ("platform_private_key", "apiv3_key", "apiv2_key")}
        return SimResponse.json(public)

    def control_account_settings(self, request: SimRequest) -> SimResponse:
        account = self.account(request.match["sp"])
        if account is None:
            return SimResponse.json({"error": "no such account"}, 404)
        changes = request.json()
        subs = changes.pop("sub_mchids", [])
        settings = {**account.get("settings", {}), **changes}
        account = self.store.update(NS_ACCOUNTS, account["sp_mchid"], settings=settings,
                                    sub_mchids=sorted(set(account["sub_mchids"]) | set(subs)))
        return SimResponse.json({"settings": self.settings(account), "sub_mchids": account["sub_mchids"]})

    # ================================================================== A.2 request verification
    def handle(self, request: SimRequest) -> SimResponse:
        if request.path.startswith("/v3/"):
            failure = self.authenticate(request)
            if failure is not None:
                return failure
        return super().handle(request)

    def authenticate(self, request: SimRequest) -> SimResponse | None:
        header = request.header("authorization")
        if not header.startswith(SCHEME + " "):
            return error("SIGN_ERROR", "Authorization 认证类型错误", 401)
        pairs = dict(AUTH_PAIRS.findall(header[len(SCHEME) + 1:]))
        missing = [k for k in ("mchid", "nonce_str", "timestamp", "serial_no", "signature") if not pairs.get(k)]
        if missing:
            return error("SIGN_ERROR", f"Authorization 缺少 {','.join(missing)}", 401)
        account = self.account(pairs["mchid"])
        if account is None:
            return error("SIGN_ERROR", "商户号不存在", 401)
        public_pem = account["merchant_keys"].get(pairs["serial_no"])
        if public_pem is None:
            return error("SIGN_ERROR", "商户证书序列号有误", 401)
        try:
            skew = abs(time.time() - int(pairs["timestamp"]))
        except ValueError:
            return error("SIGN_ERROR", "timestamp 格式错误", 401)
        if skew >= 300:
            return error("SIGN_ERROR", "请求已过期(timestamp)", 401)
        body = self.signed_body(request)
        for target in self.candidate_targets(request):
            message = (f"{request.method}\n{target}\n{pairs['timestamp']}\n{pairs['nonce_str']}\n".encode()
                       + body + b"\n")
            if crypto.verify(public_pem, message, pairs["signature"]):
                break
        else:
            return error("SIGN_ERROR", "签名错误", 401)
        serial = request.header("wechatpay-serial")
        if serial and serial != self.encryption_serial(account):
            return error("PARAM_ERROR", "Wechatpay-Serial 无效", 400)
        request.account = account  # type: ignore[attr-defined]
        return None

    @staticmethod
    def candidate_targets(request: SimRequest) -> Iterator[str]:
        """The signed URLs to accept, the usual one first (a generator: a first match spells out no others)."""
        query = ("?" + request.query_string) if request.query_string else ""
        seen = []
        for path in (request.script_name + request.path, request.path):
            # the path arrives percent-decoded: accept the signer's encoded spelling too
            for spell in (str, _quote_path):
                target = spell(path) + query
                if target not in seen:
                    seen.append(target)
                    yield target

    def signed_body(self, request: SimRequest) -> bytes:
        if request.header("content-type").startswith("multipart/form-data"):
            return self.multipart(request).get("meta", (b"", ""))[0]  # A.2: uploads sign the meta JSON
        return request.body

    # ================================================================== A.3 answer signing
    def finalize(self, request: SimRequest, response: SimResponse) -> SimResponse:
        if not request.path.startswith("/v3/") or request.path.startswith("/v3/billdownload/"):
            return response  # OAuth answers are not WeChat Pay's; bill files are checked by hash (A.12)
        account = getattr(request, "account", None)
        if account is None:
            pairs = dict(AUTH_PAIRS.findall(request.header("authorization")))
            account = self.account(pairs.get("mchid", "")) if pairs.get("mchid") else None
        if account is None:
            return response
        response.headers.update(self.signature_headers(account, response.body,
                                                       bad=bool(request.fault("bad_signature")),
                                                       signtest=bool(request.fault("signtest"))))
        return response

    def signature_headers(self, account: dict, body: bytes, *, bad: bool = False, signtest: bool = False) -> dict:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        if signtest:
            signature = "WECHATPAY/SIGNTEST/" + secrets.token_urlsafe(32)
        else:
            signature = crypto.sign(account["platform_private_key"], message + (b"tampered" if bad else b""))
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
                "Wechatpay-Serial": self.encryption_serial(account), "Wechatpay-Signature-Type": SCHEME,
                "Request-ID": secrets.token_hex(16)}  # uuid4().hex's shape, a third of its cost

    def certificates(self, request: SimRequest) -> SimResponse:
        account = request.account  # type: ignore[attr-defined]
        if account["mode"] != "certificate":
            return SimResponse.json({"data": []})
        encrypted = crypto.aes_encrypt(account["apiv3_key"], account["certificate_pem"].encode(), "certificate")
        return SimResponse.json({"data": [{
            "serial_no": account["certificate_serial"], "effective_time": now_rfc3339(time.time() - 86400),
            "expire_time": now_rfc3339(time.time() + 86400 * 1800), "encrypt_certificate": encrypted}]})

    # ================================================================== A.4 callbacks
    def notify(self, account: dict, url: str, *, event_type: str, summary: str, original_type: str,
               resource: dict, event_id: str | None = None, delay: float = 0.0) -> str | None:
        """Encrypt, sign and enqueue one callback; honours the callback-phase faults. Returns the outbox id."""
        if not url:
            return None
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        faults = self.faults.take(method="POST", path=urlsplit(url).path, phase="callback",
                                  haystack=event_type + "\n" + plaintext.decode("utf-8"))
        names = {rule["fault"]: rule for rule in faults}
        envelope = {
            "id": event_id or "EV-" + uuid.uuid4().hex[:24].upper(), "create_time": now_rfc3339(),
            "resource_type": "encrypt-resource", "event_type": event_type, "summary": summary,
            "resource": {"original_type": original_type,
                         **crypto.aes_encrypt(account["apiv3_key"], plaintext, original_type)},
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        # Signed when each attempt is sent (callback_signature_headers), as WeChat Pay does: a callback held back
        # or retried for longer than the 5-minute window must still verify (A.4).
        sign = {"sp_mchid": account["sp_mchid"], "bad": "callback_bad_signature" in names,
                "signtest": "signtest" in names}
        if "out_of_order_callback" in names:  # held back so that later events overtake it
            delay += float(names["out_of_order_callback"].get("seconds", 3))
        outbox_id = self.notifier.enqueue(url=url, body=body, headers={}, delay=delay, sign=sign)
        if "duplicate_callback" in names:
            self.notifier.enqueue(url=url, body=body, headers={}, delay=delay + 0.2, sign=sign)
        return outbox_id

    def callback_signature_headers(self, sign: dict, body: bytes) -> dict[str, str]:
        """The Wechatpay-* headers of one callback attempt, stamped and signed now (the Notifier's ``sign_headers``).
        """
        account = self.account(sign["sp_mchid"])
        return self.signature_headers(account, body, bad=sign["bad"], signtest=sign["signtest"])

    def control_flush(self, request: SimRequest) -> SimResponse:
        return SimResponse.json({"sent": self.notifier.flush(include_future=True)})

    def control_callbacks(self, request: SimRequest) -> SimResponse:
        items = [{k: v for k, v in item.items() if k != "headers"} for item in self.notifier.all()]
        return SimResponse.json({"callbacks": items})

    def control_cancel_callbacks(self, request: SimRequest) -> SimResponse:
        """Stop retrying every pending callback (tests: nothing may reach a port another test reuses later)."""
        cancelled = 0
        for item in self.notifier.pending():
            self.store.update(self.notifier.ns, item["id"], acked=True, cancelled=True)
            cancelled += 1
        return SimResponse.json({"cancelled": cancelled})

    # ================================================================== trades (A.7, A.8)
    def trade_key(self, sp_mchid: str, out_trade_no: str) -> str:
        return f"{sp_mchid}:{out_trade_no}"

    def load_trade(self, key: str) -> dict | None:
        trade = self.store.get(NS_TRADES, key)
        if trade and trade["trade_state"] == "USERPAYING" and trade.get("settle_at", 0) <= time.time():
            outcome = trade.get("settle_outcome", "SUCCESS")
            trade = self.settle(trade, success=outcome == "SUCCESS")
        return trade

    def settle(self, trade: dict, *, success: bool, payer_id: str = "") -> dict:
        key = self.trade_key(trade["sp_mchid"], trade["out_trade_no"])
        if not success:
            return self.store.update(NS_TRADES, key, trade_state="PAYERROR", trade_state_desc="支付失败，请重新下单支付")
        txn = "42" + "".join(secrets.choice("0123456789") for _ in range(26))
        openid = payer_id or trade.get("payer_openid") or "o" + hashlib.sha1(key.encode()).hexdigest()[:27]
        trade = self.store.update(NS_TRADES, key, trade_state="SUCCESS", trade_state_desc="支付成功",
                                  transaction_id=txn, success_time=now_rfc3339(), payer_openid=openid,
                                  bank_type="OTHERS")
        self.store.put(NS_INDEX, "txn:" + txn, key)
        return trade

    def transaction(self, trade: dict) -> dict:
        tx = {
            "sp_appid": trade["sp_appid"], "sp_mchid": trade["sp_mchid"], "sub_mchid": trade["sub_mchid"],
            "out_trade_no": trade["out_trade_no"], "trade_type": trade["trade_type"],
            "trade_state": trade["trade_state"], "trade_state_desc": trade["trade_state_desc"],
            "amount": {"total": trade["total"], "currency": trade["currency"]},
        }
        if trade.get("sub_appid"):
            tx["sub_appid"] = trade["sub_appid"]
        if trade.get("attach"):
            tx["attach"] = trade["attach"]
        if trade.get("transaction_id"):
            payer_key = "sub_openid" if trade.get("sub_appid") and trade.get("openid_kind") != "sp_openid" else "sp_openid"
            tx.update(transaction_id=trade["transaction_id"], bank_type=trade.get("bank_type", "OTHERS"),
                      success_time=trade["success_time"], payer={payer_key: trade["payer_openid"]})
            tx["amount"].update(payer_total=trade["total"], payer_currency=trade["currency"])
        return tx

    def common_checks(self, request: SimRequest, body: dict) -> SimResponse | None:
        account = request.account  # type: ignore[attr-defined]
        if body.get("sp_mchid") != account["sp_mchid"]:
            return error("PARAM_ERROR", "sp_mchid 与 Authorization 中的 mchid 不一致")
        if "sp_appid" in body and body["sp_appid"] != account["sp_appid"]:
            return error("APPID_MCHID_NOT_MATCH", "sp_appid 和 sp_mchid 不匹配")
        sub = body.get("sub_mchid")
        if not isinstance(sub, str) or not sub:
            return error("PARAM_ERROR", "缺少参数 sub_mchid")
        if self.settings(account)["strict_sub_mchid"] and sub not in account["sub_mchids"]:
            return error("MCH_NOT_EXISTS", "特约商户号不存在")
        return None

    def new_trade(self, request: SimRequest, body: dict, scene: str) -> tuple[dict | None, SimResponse | None]:
        failure = self.common_checks(request, body)
        if failure:
            return None, failure
        otn = body.get("out_trade_no")
        if not isinstance(otn, str) or not OUT_TRADE_NO.match(otn):
            return None, error("PARAM_ERROR", "out_trade_no 格式错误")
        description = body.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 127:
            return None, error("PARAM_ERROR", "description 长度应为 1-127")
        amount = body.get("amount") or {}
        total = amount.get("total") if isinstance(amount, dict) else None
        if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
            return None, error("PARAM_ERROR", "amount.total 应为正整数(分)")
        if scene != "codepay":
            url = body.get("notify_url")
            if not isinstance(url, str) or not NOTIFY_URL.match(url):
                return None, error("PARAM_ERROR", "notify_url 格式错误(不得携带参数)")
        payer = body.get("payer") if isinstance(body.get("payer"), dict) else {}
        if scene == "jsapi":
            if not (payer.get("sp_openid") or payer.get("sub_openid")):
                return None, error("PARAM_ERROR", "JSAPI 下单需要 payer.sp_openid 或 payer.sub_openid")
            if payer.get("sub_openid") and not body.get("sub_appid"):
                return None, error("PARAM_ERROR", "使用 sub_openid 时必须传 sub_appid")
            # A.7: sp_openid belongs to sp_appid, sub_openid to sub_appid. An openid this simulator's OAuth issued
            # is checked against the appid it was issued for (others, made up by tests, are taken as given).
            kind, appid_key = ("sub_openid", "sub_appid") if payer.get("sub_openid") else ("sp_openid", "sp_appid")
            issued_for = self.store.get(NS_OPENIDS, payer[kind])
            if issued_for is not None and issued_for != body.get(appid_key):
                return None, error("PARAM_ERROR", f"{kind} 与 {appid_key} 不匹配")
        scene_info = body.get("scene_info") if isinstance(body.get("scene_info"), dict) else {}
        if scene == "h5" and not (scene_info.get("payer_client_ip") and isinstance(scene_info.get("h5_info"), dict)):
            return None, error("PARAM_ERROR", "H5 下单需要 scene_info.payer_client_ip 与 h5_info")
        account = request.account  # type: ignore[attr-defined]
        key = self.trade_key(account["sp_mchid"], otn)
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        existing = self.load_trade(key)
        if existing is not None:
            if existing["fingerprint"] == fingerprint and existing["trade_state"] == "NOTPAY":
                return existing, None  # the same order again: the same prepay answer
            return None, error("OUT_TRADE_NO_USED", "商户订单号重复", 403)
        trade = {
            "sp_mchid": account["sp_mchid"], "sp_appid": body.get("sp_appid", account["sp_appid"]),
            "sub_mchid": body["sub_mchid"], "sub_appid": body.get("sub_appid", ""), "out_trade_no": otn,
            "trade_type": TRADE_TYPES[scene], "scene": scene, "trade_state": "NOTPAY", "trade_state_desc": "订单未支付",
            "description": description, "attach": body.get("attach", ""), "notify_url": body.get("notify_url", ""),
            "total": total, "currency": amount.get("currency") or "CNY", "created_at": time.time(),
            "time_expire": body.get("time_expire", ""), "fingerprint": fingerprint, "refunded": 0,
            "payer_openid": payer.get("sub_openid") or payer.get("sp_openid") or "",
            "openid_kind": "sub_openid" if payer.get("sub_openid") else "sp_openid",
        }
        token = secrets.token_urlsafe(12)
        rows = []
        if scene in ("jsapi", "app"):
            trade["prepay_id"] = "wx" + dt.datetime.now(CST).strftime("%d%H%M%S") + secrets.token_hex(12)
            rows.append((NS_INDEX, "prepay:" + trade["prepay_id"], key))
        elif scene == "native":
            trade["code_url"] = "weixin://wxpay/bizpayurl?pr=" + token
            rows.append((NS_INDEX, "code:" + token, key))
        elif scene == "h5":
            trade["h5_url"] = f"{request.base_url}/_payer/?code={token}&prepay_id=h5"
            rows.append((NS_INDEX, "code:" + token, key))
        rows += [(NS_TRADES, key, trade), (NS_INDEX, "otn:" + otn, key)]
        with self.store.batch():  # the trade and its index rows together: one statement, one commit
            self.store.put_many(rows)
        return trade, None

    def prepay(self, request: SimRequest) -> SimResponse:
        scene = request.match["scene"]
        trade, failure = self.new_trade(request, request.json(), scene)
        if failure:
            return failure
        if scene == "native":
            return SimResponse.json({"code_url": trade["code_url"]})
        if scene == "h5":
            return SimResponse.json({"h5_url": trade["h5_url"]})
        return SimResponse.json({"prepay_id": trade["prepay_id"]})

    def codepay(self, request: SimRequest) -> SimResponse:
        body = request.json()
        payer = body.get("payer") if isinstance(body.get("payer"), dict) else {}
        code = payer.get("auth_code")
        scene_info = body.get("scene_info") if isinstance(body.get("scene_info"), dict) else {}
        if not isinstance(scene_info.get("store_info"), dict) or not scene_info["store_info"].get("id"):
            return error("PARAM_ERROR", "付款码支付需要 scene_info.store_info.id")
        if not isinstance(code, str) or not AUTH_CODE.match(code):
            return error("AUTH_CODE_INVALID", "付款码无效，请重新扫码")
        trade, failure = self.new_trade(request, body, "codepay")
        if failure:
            return failure
        if trade["trade_state"] != "NOTPAY":
            return SimResponse.json(self.transaction(trade))
        key = self.trade_key(trade["sp_mchid"], trade["out_trade_no"])
        digit = int(code[-1])
        if digit <= 4:
            return SimResponse.json(self.transaction(self.settle(trade, success=True)))
        if digit in (5, 6):
            seconds = float(self.settings(request.account)["userpaying_seconds"])  # type: ignore[attr-defined]
            self.store.update(NS_TRADES, key, trade_state="USERPAYING", trade_state_desc="需要用户输入支付密码",
                              settle_at=time.time() + seconds, settle_outcome="SUCCESS" if digit == 5 else "PAYERROR")
            return SimResponse.json({"trade_state": "USERPAYING", "out_trade_no": trade["out_trade_no"],
                                     "trade_state_desc": "需要用户输入支付密码"}, status=202)
        self.store.update(NS_TRADES, key, trade_state="PAYERROR", trade_state_desc="支付失败")
        if digit == 7:
            return error("NOT_ENOUGH", "用户余额不足", 403)
        if digit == 8:
            return error("AUTH_CODE_INVALID", "付款码已过期，请刷新后重新支付")
        return SimResponse.json(self.transaction(self.load_trade(key)))

    def find_trade(self, request: SimRequest) -> dict | None:
        account = request.account  # type: ignore[attr-defined]
        query = request.query
        if query.get("sp_mchid") != account["sp_mchid"]:
            return None
        if request.match.groupdict().get("otn"):
            key = self.trade_key(account["sp_mchid"], request.match["otn"])
        else:
            key = self.store.get(NS_INDEX, "txn:" + request.match["txn"]) or ""
        trade = self.load_trade(key) if key.startswith(account["sp_mchid"] + ":") else None
        if trade is None or trade["sub_mchid"] != query.get("sub_mchid"):
            return None
        return trade

    def query(self, request: SimRequest) -> SimResponse:
        trade = self.find_trade(request)
        if trade is None:
            return error("ORDER_NOT_EXIST", "订单不存在", 404)
        return SimResponse.json(self.transaction(trade))

    def trade_for_body(self, request: SimRequest) -> tuple[dict | None, SimResponse | None]:
        body = request.json()
        failure = self.common_checks(request, body)
        if failure:
            return None, failure
        trade = self.load_trade(self.trade_key(body["sp_mchid"], request.match["otn"]))
        if trade is None or trade["sub_mchid"] != body["sub_mchid"]:
            return None, error("ORDER_NOT_EXIST", "订单不存在", 404)
        return trade, None

    def close(self, request: SimRequest) -> SimResponse:
        trade, failure = self.trade_for_body(request)
        if failure:
            return failure
        state = trade["trade_state"]
        if state in ("SUCCESS", "REFUND"):
            return error("ORDER_PAID", "订单已支付")  # [UNVERIFIED] exact v3 code
        if state == "USERPAYING":
            return SimResponse.json({"code": "USERPAYING", "message": "用户支付中，请稍后再关单"}, status=202)
        if state == "REVOKED":
            return error("ORDER_CLOSED", "订单已撤销")
        self.store.update(NS_TRADES, self.trade_key(trade["sp_mchid"], trade["out_trade_no"]),
                          trade_state="CLOSED", trade_state_desc="订单已关闭")
        return SimResponse(204)

    def reverse(self, request: SimRequest) -> SimResponse:
        trade, failure = self.trade_for_body(request)
        if failure:
            return failure
        if trade["trade_type"] != "MICROPAY":
            return error("INVALID_REQUEST", "仅付款码订单可撤销")
        key = self.trade_key(trade["sp_mchid"], trade["out_trade_no"])
        if trade["trade_state"] in ("SUCCESS", "REFUND"):
            self.store.update(NS_TRADES, key, reversed_paid=True)
        self.store.update(NS_TRADES, key, trade_state="REVOKED", trade_state_desc="已撤销", settle_at=0)
        return SimResponse.json({"sp_mchid": trade["sp_mchid"], "sub_mchid": trade["sub_mchid"],
                                 "out_trade_no": trade["out_trade_no"]})

    # ================================================================== refunds (A.10)
    def load_refund(self, key: str) -> dict | None:
        refund = self.store.get(NS_REFUNDS, key)
        if refund and refund["status"] == "PROCESSING" and refund["settle_at"] <= time.time():
            refund = self.store.update(NS_REFUNDS, key, status="SUCCESS", success_time=now_rfc3339(refund["settle_at"]))
        return refund

    def refund_view(self, refund: dict) -> dict:
        view = {
            "refund_id": refund["refund_id"], "out_refund_no": refund["out_refund_no"],
            "transaction_id": refund["transaction_id"], "out_trade_no": refund["out_trade_no"], "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱", "create_time": refund["create_time"], "status": refund["status"],
            "funds_account": "AVAILABLE",
            "amount": {"total": refund["total"], "refund": refund["refund"], "payer_total": refund["total"],
                       "payer_refund": refund["refund"], "settlement_total": refund["total"],
                       "settlement_refund": refund["refund"], "discount_refund": 0, "currency": "CNY", "from": []},
            "promotion_detail": [],
        }
        if refund.get("success_time") and refund["status"] == "SUCCESS":
            view["success_time"] = refund["success_time"]
        return view

    def refund_notice(self, refund: dict) -> dict:
        return {"sp_mchid": refund["sp_mchid"], "sub_mchid": refund["sub_mchid"], "out_trade_no": refund["out_trade_no"],
                "transaction_id": refund["transaction_id"], "out_refund_no": refund["out_refund_no"],
                "refund_id": refund["refund_id"], "refund_status": refund["status"],
                "success_time": refund.get("success_time") or now_rfc3339(),
                "user_received_account": "支付用户零钱",
                "amount": {"total": refund["total"], "refund": refund["refund"], "payer_total": refund["total"],
                           "payer_refund": refund["refund"]}}

    def schedule_refund_notice(self, account: dict, refund: dict, delay: float) -> str | None:
        if not refund.get("notify_url"):
            return None
        # The notice is built now with the state it will have when sent (the simulator's clock decides both).
        notice = self.refund_notice({**refund, "success_time": refund.get("success_time") or now_rfc3339(
            time.time() + delay)})
        summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}[refund["status"]]
        return self.notify(account, refund["notify_url"], event_type="REFUND." + refund["status"],
                           summary=summary, original_type="refund", resource=notice, delay=delay)

    def refund(self, request: SimRequest) -> SimResponse:
        account = request.account  # type: ignore[attr-defined]
        body = request.json()
        sub = body.get("sub_mchid")
        out_refund_no = body.get("out_refund_no")
        if not isinstance(sub, str) or not sub or not isinstance(out_refund_no, str) or not OUT_TRADE_NO.match(
                out_refund_no):
            return error("PARAM_ERROR", "sub_mchid / out_refund_no 缺失或格式错误")
        if body.get("transaction_id"):
            key = self.store.get(NS_INDEX, "txn:" + str(body["transaction_id"])) or ""
        else:
            key = self.trade_key(account["sp_mchid"], str(body.get("out_trade_no") or ""))
        trade = self.load_trade(key) if key.startswith(account["sp_mchid"] + ":") else None
        if trade is None or trade["sub_mchid"] != sub:
            return error("RESOURCE_NOT_EXISTS", "订单不存在", 404)
        refund_key = f"{account['sp_mchid']}:{out_refund_no}"
        existing = self.load_refund(refund_key)
        if existing is not None:  # A.10: the same out_refund_no is idempotent
            return SimResponse.json(self.refund_view(existing))
        if trade["trade_state"] not in ("SUCCESS", "REFUND"):
            return error("TRADE_ERROR", "订单未支付或已撤销，不能退款", 403)
        amount = body.get("amount") if isinstance(body.get("amount"), dict) else {}
        value, total = amount.get("refund"), amount.get("total")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or total != trade["total"]:
            return error("PARAM_ERROR", "amount.refund 应为正整数，amount.total 应等于原订单金额")
        if amount.get("currency", "CNY") != "CNY":
            return error("PARAM_ERROR", "amount.currency 仅支持 CNY")
        if value > trade["total"] - trade["refunded"]:
            return error("INVALID_REQUEST", "申请退款金额超过订单可退金额")
        delay = float(self.settings(account)["refund_delay_seconds"])
        refund = {
            "sp_mchid": account["sp_mchid"], "sub_mchid": sub, "out_refund_no": out_refund_no,
            "refund_id": "50" + "".join(secrets.choice("0123456789") for _ in range(27)),
            "transaction_id": trade["transaction_id"], "out_trade_no": trade["out_trade_no"],
            "total": trade["total"], "refund": value, "status": "PROCESSING", "create_time": now_rfc3339(),
            "settle_at": time.time() + delay, "notify_url": body.get("notify_url", ""), "success_time": "",
        }
        self.store.put(NS_REFUNDS, refund_key, refund)
        self.store.update(NS_TRADES, key, trade_state="REFUND", refunded=trade["refunded"] + value)
        refund["outbox_id"] = self.schedule_refund_notice(account, {**refund, "status": "SUCCESS"}, delay)
        self.store.put(NS_REFUNDS, refund_key, refund)
        return SimResponse.json(self.refund_view(refund))

    def refund_query(self, request: SimRequest) -> SimResponse:
        account = request.account  # type: ignore[attr-defined]
        refund = self.load_refund(f"{account['sp_mchid']}:{request.match['no']}")
        if refund is None or refund["sub_mchid"] != request.query.get("sub_mchid"):
            return error("RESOURCE_NOT_EXISTS", "退款单不存在", 404)
        return SimResponse.json(self.refund_view(refund))

    def control_refund(self, request: SimRequest) -> SimResponse:
        """Decide a refund now: {"status": "SUCCESS"|"ABNORMAL"|"CLOSED", "sp_mchid": ...}."""
        data = request.json()
        status = data.get("status")
        if status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
            return SimResponse.json({"error": "status must be SUCCESS, ABNORMAL or CLOSED"}, 400)
        key = f"{data.get('sp_mchid')}:{request.match['no']}"
        refund = self.store.get(NS_REFUNDS, key)
        if refund is None:
            return SimResponse.json({"error": "no such refund"}, 404)
        if refund.get("outbox_id") and self.store.get(self.notifier.ns, refund["outbox_id"]):
            self.store.update(self.notifier.ns, refund["outbox_id"], acked=True, cancelled=True)
        refund = self.store.update(NS_REFUNDS, key, status=status, settle_at=0,
                                   success_time=now_rfc3339() if status == "SUCCESS" else "")
        if status == "CLOSED":  # the money stays with the merchant: refundable again
            trade_key = self.trade_key(refund["sp_mchid"], refund["out_trade_no"])
            trade = self.store.get(NS_TRADES, trade_key)
            self.store.update(NS_TRADES, trade_key, refunded=max(0, trade["refunded"] - refund["refund"]))
        outbox_id = self.schedule_refund_notice(self.account(refund["sp_mchid"]), refund, 0)
        self.store.update(NS_REFUNDS, key, outbox_id=outbox_id)
        return SimResponse.json(self.refund_view(refund))

    # ================================================================== the payer's wallet
    def payer_pay(self, request: SimRequest) -> SimResponse:
        """Pay (or fail) a trade as the payer's WeChat would: by prepay_id, code_url, code token or out_trade_no."""
        if request.header("content-type").startswith("application/json"):
            data = request.json()
        else:
            data = request.form()
        key = None
        if data.get("prepay_id") and data["prepay_id"] != "h5":
            key = self.store.get(NS_INDEX, "prepay:" + data["prepay_id"])
        if key is None and data.get("code_url"):
            key = self.store.get(NS_INDEX, "code:" + data["code_url"].rsplit("pr=", 1)[-1])
        if key is None and data.get("code"):
            key = self.store.get(NS_INDEX, "code:" + data["code"]) or self.store.get(NS_INDEX, "prepay:" + data["code"])
        if key is None and data.get("out_trade_no"):
            key = (self.trade_key(data["sp_mchid"], data["out_trade_no"]) if data.get("sp_mchid")
                   else self.store.get(NS_INDEX, "otn:" + data["out_trade_no"]))
        trade = self.load_trade(key) if key else None
        if trade is None or (data.get("sub_mchid") and data["sub_mchid"] != trade["sub_mchid"]):
            return error("ORDER_NOT_EXIST", "订单不存在", 404)
        account = self.account(trade["sp_mchid"])
        if isinstance(data.get("jsapi"), dict):
            problem = self.check_jsapi_params(account, trade, data["jsapi"])
            if problem:
                return error("SIGN_ERROR", problem)
        state = trade["trade_state"]
        if state in ("SUCCESS", "REFUND"):
            return error("ORDER_PAID", "订单已支付")
        if state in ("CLOSED", "REVOKED", "PAYERROR"):
            return error("ORDER_CLOSED", "订单已关闭")
        if data.get("outcome", "success") != "success":
            if state == "USERPAYING":
                trade = self.settle(trade, success=False)
            return SimResponse.json({"trade_state": trade["trade_state"]})
        trade = self.settle(trade, success=True, payer_id=data.get("payer_id") or "")
        callback_id = None
        if trade.get("notify_url"):
            callback_id = self.notify(account, trade["notify_url"], event_type="TRANSACTION.SUCCESS",
                                      summary="支付成功", original_type="transaction",
                                      resource=self.transaction(trade))
        if not request.header("content-type").startswith("application/json"):
            return SimResponse.html(f"<h1>支付成功</h1><p>{escape(trade['out_trade_no'])}</p>")
        return SimResponse.json({"trade_state": "SUCCESS", "transaction_id": trade["transaction_id"],
                                 "callback_id": callback_id})

    @staticmethod
    def check_jsapi_params(account: dict, trade: dict, params: dict) -> str:
        """What WeixinJSBridge checks before paying (A.9): the appid, the package and the merchant's paySign."""
        if params.get("appId") not in (trade["sp_appid"], trade.get("sub_appid")):
            return "appId 与下单时的 appid 不一致"
        if params.get("package") != "prepay_id=" + trade.get("prepay_id", ""):
            return "package 与 prepay_id 不一致"
        if params.get("signType") != "RSA":
            return "signType 应为 RSA"
        message = f"{params['appId']}\n{params.get('timeStamp')}\n{params.get('nonceStr')}\n{params['package']}\n"
        if not any(crypto.verify(pem, message.encode(), str(params.get("paySign", "")))
                   for pem in account["merchant_keys"].values()):
            return "paySign 验证失败"
        return ""

    def payer_page(self, request: SimRequest) -> SimResponse:
        code = request.query.get("code", "")
        key = self.store.get(NS_INDEX, "code:" + code) or self.store.get(NS_INDEX, "prepay:" + code)
        trade = self.load_trade(key) if key else None
        if trade is None:
            return SimResponse.html("<h1>二维码已失效</h1>", 404)
        action = request.base_url + "/_payer/pay"
        return SimResponse.html(
            "<!doctype html><meta charset=utf-8><title>微信支付 (simulator)</title>"
            f"<h1>{escape(trade['description'])}</h1><p>¥{trade['total'] // 100}.{trade['total'] % 100:02d}</p>"
            f"<p>状态: {escape(trade['trade_state'])}</p>"
            f"<form method=post action='{escape(action)}'><input type=hidden name=code value='{escape(code)}'>"
            "<button name=outcome value=success>确认支付</button> "
            "<button name=outcome value=fail>取消</button></form>")


def provision(sim_root_url: str, *, name: str = "demo", mode: str = "public_key", timeout: float = 10) -> dict:
    """Set up a service-provider account at the simulator as a merchant would at the WeChat Pay portal.

    Makes OUR API key pair, registers it with the APIv3/APIv2 keys, and returns the ``WechatPayConfig`` fields.
    ``mode="certificate"`` gives an account whose answers are signed with a platform certificate fetched from
    ``/v3/certificates`` instead of a PUB_KEY_ID public key.
    """
    root = sim_root_url.rstrip("/")
    private_pem = crypto.new_key_pem()
    serial_no = secrets.token_hex(20).upper()
    apiv3_key, apiv2_key = secrets.token_hex(16), secrets.token_hex(16)
    session = requests.Session()
    session.trust_env = False  # loopback: never through an environment proxy
    resp = session.post(f"{root}/{KIND}/_control/accounts", timeout=timeout, json={
        "name": name, "mode": mode, "merchant_public_key_pem": crypto.public_pem(private_pem),
        "merchant_serial_no": serial_no, "apiv3_key": apiv3_key, "apiv2_key": apiv2_key})
    resp.raise_for_status()
    answer = resp.json()
    return {
        "sp_mchid": answer["sp_mchid"], "sp_appid": answer["sp_appid"], "private_key_pem": private_pem,
        "serial_no": serial_no, "apiv3_key": apiv3_key, "apiv2_key": apiv2_key,
        "wechatpay_public_key_pem": answer.get("wechatpay_public_key_pem", ""),
        "wechatpay_public_key_id": answer.get("wechatpay_public_key_id", ""), "platform_certificates": [],
        "sp_appsecret": answer["sp_appsecret"],
        "oauth_authorize_url": f"{root}/{KIND}/_oauth/authorize",
        "oauth_token_url": f"{root}/{KIND}/sns/oauth2/access_token",
    }

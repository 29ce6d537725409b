"""The Alipay open-platform simulator: a strict loopback peer of channels.adapters.alipay (channel-protocols.md B.9).

Wire (mounted at ``/alipay``):
  * ``GET|POST /gateway.do`` — every OpenAPI method; verifies our RSA2 signature with the registered app public key
    (``40002 isv.invalid-signature`` otherwise), checks that ``app_auth_token`` belongs to the app
    (``20001 aop.invalid-app-auth-token``), answers ``{"<method>_response":{…},"sign":"…"}`` signed with this app's
    Alipay private key (B.3). Page/app methods (``alipay.trade.wap.pay`` GET) open the trade and show a cashier.
  * ``GET /downloadBillFile.resource`` — bill zips (alipay_bills), ``GET /oauth2/publicAppAuthorize.htm`` (alias
    ``/_oauth/authorize``) — auth_base OAuth (§E) redirecting with ``auth_code``.
Payer side (what the wallet does): ``GET /_payer/?code=`` (cashier page), ``POST /_payer/scan`` and
``POST /_payer/pay`` with JSON or form {"code" | "qr_code" | "trade_no" | "out_trade_no" (+ "app_id") |
"order_string", "outcome": "success" | "fail", "payer_id"}; ``GET|POST /_payer/sign?order_id=`` (zft signing).
Control (tests/demo): ``POST /_control/accounts`` {"name", "app_public_key", "message_url"?, "settings"?},
``GET /_control/accounts/<app_id>``, ``POST /_control/accounts/<app_id>/settings`` (``user_paying_seconds``,
``refund_delay_seconds``, ``fee_rate``, ``auto_review``, ``message_url``), ``POST /_control/merchants``
{"app_id", "name"} → {"sub_mchid", "app_auth_token", "auth_app_id"}, ``POST /_control/applications/<order_id>``,
``POST /_control/flush``, ``GET /_control/callbacks``, and the core ``/_control/faults`` (plus the callback fault
``stale_callback``, see ``send_signed_notify``).
Notifies are form POSTs signed per B.4, retried until the body is ``success``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from cryptography.hazmat.primitives import serialization

from channels.simulators import alipay_keys as keys
from channels.simulators.alipay_bills import BillsMixin
from channels.simulators.alipay_gateway import AlipayFault, Call, answer, check_common, read_params, render
from channels.simulators.alipay_trades import (
    TradesMixin,
    cancel_retry_flag,
    digits,
    fmt,
    form_body,
    now_bj,
    signed_params,
    yuan,
)
from channels.simulators.alipay_zft import ZftMixin
from channels.simulators.core import SimRequest, SimResponse, SimulatorApp
from channels.simulators.notifier import Notifier

logger = logging.getLogger("aggpay.simulators.alipay")

PAGE_METHODS = ("alipay.trade.wap.pay", "alipay.trade.page.pay", "alipay.trade.app.pay")
OAUTH_CODE_TTL = 300
STALE_SECONDS = 2 * 86400  # stale_callback's default backdating: a notify captured two days ago


def _is_ack(status: int, body: bytes) -> bool:
    return body.strip() == b"success"  # B.4: exactly the word success; anything else is retried


class AlipaySimulator(TradesMixin, BillsMixin, ZftMixin, SimulatorApp):
    kind = "alipay"
    APPS = "alipay:apps"
    MERCHANTS = "alipay:merchants"
    TOKENS = "alipay:tokens"
    OAUTH = "alipay:oauth_codes"
    HELD = "alipay:held"

    def __init__(self, store):
        super().__init__(store)
        self._lock = threading.RLock()
        self._timer_lock = threading.Lock()
        self._timer_at: float | None = None
        self.notifier = Notifier(store, self.kind, _is_ack)
        self.methods = {
            "alipay.trade.precreate": self.m_precreate, "alipay.trade.create": self.m_create,
            "alipay.trade.pay": self.m_pay, "alipay.trade.query": self.m_query, "alipay.trade.close": self.m_close,
            "alipay.trade.cancel": self.m_cancel, "alipay.trade.refund": self.m_refund,
            "alipay.trade.fastpay.refund.query": self.m_refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self.m_bill_url,
            "alipay.system.oauth.token": self.m_oauth_token,
            "ant.merchant.expand.indirect.image.upload": self.m_image_upload,
            "ant.merchant.expand.indirect.zft.create": self.m_zft_create,
            "ant.merchant.expand.indirect.zft.simplecreate": self.m_zft_create,
            "ant.merchant.expand.indirect.zft.modify": self.m_zft_modify,
            "ant.merchant.expand.indirect.zftorder.query": self.m_zft_query,
        }
        self.route("GET", r"/gateway\.do", self.gateway)
        self.route("POST", r"/gateway\.do", self.gateway)
        self.route("GET", r"/downloadBillFile\.resource", self.download_bill_file)
        self.route("GET", r"/oauth2/publicAppAuthorize\.htm", self.oauth_authorize)
        self.route("GET", r"/_oauth/authorize", self.oauth_authorize)
        self.route("POST", r"/_control/accounts", self.control_account_create)
        self.route("GET", r"/_control/accounts/(?P<app_id>\w+)", self.control_account_get)
        self.route("POST", r"/_control/accounts/(?P<app_id>\w+)/settings", self.control_account_settings)
        self.route("POST", r"/_control/merchants", self.control_merchant_create)
        self.route("POST", r"/_control/applications/(?P<order_id>\w+)", self.control_application)
        self.route("POST", r"/_control/flush", self.control_flush)
        self.route("GET", r"/_control/callbacks", self.control_callbacks)
        self.route("GET", r"/_payer/", self.payer_page)
        self.route("POST", r"/_payer/scan", self.payer_scan_view)
        self.route("POST", r"/_payer/pay", self.payer_pay_view)
        self.route("GET", r"/_payer/sign", self.payer_sign_page)
        self.route("POST", r"/_payer/sign", self.payer_sign)
        if self.store.items(self.DUE) or self.store.items(self.ORDERS):
            self._schedule(0.5)  # resume timed events after a restart

    # --- registry -------------------------------------------------------------------------------------
    def _app(self, app_id: str) -> dict | None:
        return self.store.get(self.APPS, app_id) if app_id else None

    # --- timers ---------------------------------------------------------------------------------------
    def _schedule(self, delay: float) -> None:
        at = time.time() + delay
        with self._timer_lock:
            if self._timer_at is not None and time.time() < self._timer_at <= at:
                return  # an earlier wake-up is pending; it reschedules for what is left
            self._timer_at = at
            timer = threading.Timer(max(0.01, delay), self._on_timer)
            timer.daemon = True
            timer.start()

    def _on_timer(self) -> None:
        with self._timer_lock:
            self._timer_at = None
        try:
            self.tick()
            with self._lock:
                self.review_due()
        except Exception:  # a simulator must not die on one bad record
            logger.exception("alipay simulator timer failed")
        pending = [at for _, at in self.store.items(self.DUE)]
        pending += [o["review_at"] for _, o in self.store.items(self.ORDERS) if o.get("review_at")]
        if pending:
            self._schedule(max(0.0, min(pending) - time.time()))

    # --- gateway (B.1–B.3) ------------------------------------------------------------------------------
    def gateway(self, request: SimRequest) -> SimResponse:
        try:
            params, files = read_params(request)
        except (ValueError, UnicodeDecodeError):
            return answer(None, AlipayFault("isv.invalid-parameter", "请求参数无法解析", code="40002").inner(), None)
        method = params.get("method") or None
        app = self._app(params.get("app_id", ""))
        fault = check_common(params, app)
        if fault is not None:
            return answer(method, fault.inner(), app)
        if method not in self.methods and method not in PAGE_METHODS:
            return answer(None, AlipayFault("isv.invalid-method", "不存在的方法名", code="40002").inner(), app)
        call = Call(request=request, params=params, app=app, files=files)
        token = params.get("app_auth_token", "")
        if token:
            merchant = self.store.get(self.MERCHANTS, self.store.get(self.TOKENS, token) or "")
            if merchant is None or merchant["app_id"] != app["app_id"]:
                fault = AlipayFault("aop.invalid-app-auth-token", "无效的应用授权令牌", code="20001")
                return answer(method, fault.inner(), app)
            call.merchant = merchant
        if params.get("biz_content"):
            try:
                call.biz = json.loads(params["biz_content"])
            except ValueError:
                call.biz = None
            if not isinstance(call.biz, dict):
                return answer(method, AlipayFault("isv.invalid-parameter", "biz_content不是JSON对象",
                                                  code="40002").inner(), app)
        if app.get("sim_base_url") != request.base_url:
            self.store.put(self.APPS, app["app_id"], {**app, "sim_base_url": request.base_url})
        with self._lock:
            if method in PAGE_METHODS:
                return self._page_order(call)
            try:
                inner = self.methods[method](call)
            except AlipayFault as fault:
                # §E: OAuth code errors come back as error_response (as fzlee's docstring shows).
                key_method = None if method == "alipay.system.oauth.token" else method
                return answer(key_method, fault.inner(), app)
        return answer(method, inner, app)

    def business_error(self, request: SimRequest, rule: dict) -> SimResponse:
        """Fault ``business_error``: ``code`` (an Alipay code class or a sub_code), ``sub_code``, ``message``,
        ``extra`` (merged into the answer). A failed alipay.trade.cancel carries ``retry_flag`` as Alipay's does
        (B.5): the rule's ``retry_flag`` ("Y" = try the cancel again, "N" = don't), else Y for a system error and N
        for any other refusal (alipay_trades.cancel_retry_flag)."""
        try:
            params, _files = read_params(request)
        except (ValueError, UnicodeDecodeError):
            params = {}
        code = str(rule.get("code", "40004"))
        sub_code = str(rule.get("sub_code", "ACQ.SYSTEM_ERROR"))
        if not code.isdigit():
            code, sub_code = "40004", code
        extra = dict(rule.get("extra") or {})
        if params.get("method") == "alipay.trade.cancel":
            extra.setdefault("retry_flag", cancel_retry_flag(sub_code, rule.get("retry_flag")))
        fault = AlipayFault(sub_code, str(rule.get("message", "")), code=code, extra=extra)
        return answer(params.get("method") or None, fault.inner(), self._app(params.get("app_id", "")))

    def finalize(self, request: SimRequest, response: SimResponse) -> SimResponse:
        payload = getattr(response, "alipay_payload", None)
        if payload is not None:
            response.body = render(payload, tamper=request.fault("bad_signature") is not None)
        return response

    def _page_order(self, call: Call) -> SimResponse:
        try:
            trade = self.open_client_order(call)
        except AlipayFault as fault:
            return answer(call.method, fault.inner(), call.app)
        if call.request.method == "POST" and call.method == "alipay.trade.app.pay":
            return SimResponse.json({"trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"]})
        return SimResponse.html(self._cashier_html(call.request.base_url, trade, f"trade_no={trade['trade_no']}"))

    # --- OAuth (§E) -------------------------------------------------------------------------------------
    def oauth_authorize(self, request: SimRequest) -> SimResponse:
        query = request.query
        app = self._app(query.get("app_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if app is None or not redirect_uri.startswith(("http://", "https://")):
            return SimResponse.html("<p>无效的应用或回调地址 (invalid app_id or redirect_uri)</p>", 400)
        if query.get("scope", "auth_base") not in ("auth_base", "auth_user"):
            return SimResponse.html("<p>invalid scope</p>", 400)
        user_id = query.get("payer_id") or query.get("user_id") or "2088" + digits(secrets.token_hex(8), 12)
        code = secrets.token_hex(16)
        self.store.put(self.OAUTH, code, {"app_id": app["app_id"], "user_id": user_id, "used": False,
                                          "expires": time.time() + OAUTH_CODE_TTL})
        back = {"app_id": app["app_id"], "source": "alipay_wallet", "scope": query.get("scope", "auth_base"),
                "auth_code": code}
        if query.get("state"):
            back["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return SimResponse(302, b"", {"Location": redirect_uri + separator + urlencode(back)})

    def m_oauth_token(self, call: Call) -> dict:
        if call.params.get("grant_type") != "authorization_code":
            raise AlipayFault("isv.invalid-parameter", "grant_type参数有误", code="40002")
        record = self.store.get(self.OAUTH, call.params.get("code", ""))
        if (record is None or record["used"] or record["expires"] < time.time()
                or record["app_id"] != call.app["app_id"]):
            raise AlipayFault("isv.code-invalid", "授权码code无效", code="40002")
        self.store.put(self.OAUTH, call.params["code"], {**record, "used": True})
        open_id = "0" + digits(call.app["app_id"] + record["user_id"], 31)  # app-scoped, like Alipay's open_id
        return {"user_id": record["user_id"], "open_id": open_id, "access_token": "authbseB" + secrets.token_hex(16),
                "expires_in": 1296000, "refresh_token": "authbseB" + secrets.token_hex(16),
                "re_expires_in": 2592000, "auth_start": now_bj().strftime("%Y-%m-%d %H:%M:%S")}

    # --- notifies (B.4) -----------------------------------------------------------------------------------
    def send_signed_notify(self, app: dict, url: str, params: dict[str, str], *, thread: str) -> None:
        """Queue a signed form notify, honouring the callback-phase faults of core.FaultBook.

        The notify is stamped (``notify_time``, or ``utc_timestamp`` for 蚂蚁消息) and signed when it is first sent
        — a held one when it is released — and its retries repeat it byte for byte. Whether real retries are
        restamped is unverified (see channels/adapters/alipay_notify.py); repeating the first send's time is the
        stricter case, the one the receiver's freshness window is sized for. ``stale_callback`` (``seconds``,
        default two days) stamps it that much earlier, correctly signed: a genuine notify captured and replayed
        later, or Alipay's clock being off.
        """
        rules = self.faults.take(method="POST", path="/notify", haystack=form_body(params).decode("ascii"),
                                 phase="callback")
        faults = {rule["fault"]: rule for rule in rules}
        item = {"url": url, "app_id": app["app_id"], "params": params, "tamper": "callback_bad_signature" in faults,
                "backdate": float(faults["stale_callback"].get("seconds", STALE_SECONDS))
                if "stale_callback" in faults else 0.0}
        if "out_of_order_callback" in faults:
            held = self.store.get(self.HELD, thread) or []
            self.store.put(self.HELD, thread, held + [item])  # sent after the next notify of this trade
            return
        # duplicate_callback: the same notify (same notify_id, same bytes) twice; receivers must de-duplicate.
        self._enqueue(item, copies=2 if "duplicate_callback" in faults else 1)
        for earlier in self.store.get(self.HELD, thread) or []:
            self._enqueue(earlier)
        self.store.delete(self.HELD, thread)

    def held_notifies(self, thread: str) -> list[dict[str, str]]:
        """The notifies held back for ``thread`` (``out_of_order_callback``) as they would leave now: ``url`` and the
        stamped, signed form ``body``. Tests replay them themselves."""
        return [{"url": item["url"], "body": self._stamped_body(item).decode("ascii")}
                for item in self.store.get(self.HELD, thread) or []]

    def _enqueue(self, item: dict, *, copies: int = 1) -> None:
        body = self._stamped_body(item)
        for _ in range(copies):
            self.notifier.enqueue(url=item["url"], body=body, headers={},
                                  content_type="application/x-www-form-urlencoded; charset=utf-8")

    def _stamped_body(self, item: dict) -> bytes:
        """The notify as it leaves now: stamped with the current time (less ``backdate``) and signed (B.4)."""
        if "body" in item:  # held by an earlier version of the simulator, already signed
            return item["body"].encode("ascii")
        params = dict(item["params"])
        sent_at = now_bj() - dt.timedelta(seconds=item.get("backdate", 0.0))
        if "utc_timestamp" in params:
            params["utc_timestamp"] = str(int(sent_at.timestamp() * 1000))
        else:
            params["notify_time"] = fmt(sent_at)
        return form_body(signed_params(self._app(item["app_id"]), params, tamper=item.get("tamper", False)))

    # --- control ----------------------------------------------------------------------------------------
    def control_account_create(self, request: SimRequest) -> SimResponse:
        data = _json(request)
        try:
            serialization.load_pem_public_key(str(data.get("app_public_key", "")).encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            return SimResponse.json({"error": "app_public_key must be an RSA public key PEM"}, 400)
        private_pem, public_pem = keys.generate_keypair()
        app_id = "2021" + digits(secrets.token_hex(8), 12)
        app = {
            "app_id": app_id, "name": str(data.get("name", "demo")), "app_public_key": data["app_public_key"],
            "alipay_private_key": private_pem, "alipay_public_key": public_pem,
            "isv_pid": "2088" + digits(app_id + "pid", 12), "message_url": str(data.get("message_url", "")),
            "settings": dict(data.get("settings") or {}), "sim_base_url": request.base_url,
        }
        self.store.put(self.APPS, app_id, app)
        merchant = self._new_merchant(app, f"{app['name']} demo merchant")
        return SimResponse.json({"app_id": app_id, "alipay_public_key": public_pem, "isv_pid": app["isv_pid"],
                                 "demo_merchant": merchant}, 201)

    def _new_merchant(self, app: dict, name: str) -> dict:
        smid = "2088" + digits(secrets.token_hex(8), 12)
        token = now_bj().strftime("%Y%m") + "BB" + secrets.token_hex(16)
        merchant = {"smid": smid, "app_id": app["app_id"], "name": name, "kind": "authorized",
                    "app_auth_token": token, "auth_app_id": "2021" + digits(smid, 12)}
        self.store.put(self.MERCHANTS, smid, merchant)
        self.store.put(self.TOKENS, token, smid)
        return {"sub_mchid": smid, "app_auth_token": token, "auth_app_id": merchant["auth_app_id"], "name": name}

    def control_account_get(self, request: SimRequest) -> SimResponse:
        app = self._app(request.match["app_id"])
        if app is None:
            return SimResponse.json({"error": "no such app"}, 404)
        merchants = [{"sub_mchid": m["smid"], "app_auth_token": m["app_auth_token"], "kind": m["kind"],
                      "name": m["name"]} for _, m in self.store.items(self.MERCHANTS) if m["app_id"] == app["app_id"]]
        return SimResponse.json({"app_id": app["app_id"], "isv_pid": app["isv_pid"], "settings": app["settings"],
                                 "message_url": app["message_url"], "merchants": merchants})

    def control_account_settings(self, request: SimRequest) -> SimResponse:
        app = self._app(request.match["app_id"])
        if app is None:
            return SimResponse.json({"error": "no such app"}, 404)
        data = _json(request)
        if "message_url" in data:
            app["message_url"] = str(data.pop("message_url"))
        app["settings"].update(data)
        self.store.put(self.APPS, app["app_id"], app)
        return SimResponse.json({"settings": app["settings"], "message_url": app["message_url"]})

    def control_merchant_create(self, request: SimRequest) -> SimResponse:
        data = _json(request)
        app = self._app(str(data.get("app_id", "")))
        if app is None:
            return SimResponse.json({"error": "app_id is not registered"}, 400)
        return SimResponse.json(self._new_merchant(app, str(data.get("name", "merchant"))), 201)

    def control_application(self, request: SimRequest) -> SimResponse:
        data = _json(request)
        with self._lock:
            try:
                order = self.review(request.match["order_id"], str(data.get("action", "")), data.get("reasons") or [])
            except KeyError:
                return SimResponse.json({"error": "no such order"}, 404)
            except ValueError as exc:
                return SimResponse.json({"error": str(exc)}, 400)
        return SimResponse.json(self._public_order(order))

    def control_flush(self, request: SimRequest) -> SimResponse:
        moved = self.tick()
        with self._lock:
            self.review_due()
            for thread, held in self.store.items(self.HELD):
                for item in held:
                    self._enqueue(item)
                self.store.delete(self.HELD, thread)
        sent = self.notifier.flush(include_future=True)
        return SimResponse.json({"sent": sent, "settled": moved, "pending": len(self.notifier.pending())})

    def control_callbacks(self, request: SimRequest) -> SimResponse:
        needle = request.query.get("contains", "")
        items = [{k: item[k] for k in ("id", "url", "body", "attempt", "acked", "log")}
                 for item in self.notifier.all() if needle in item["body"]]
        return SimResponse.json({"callbacks": items})

    # --- payer side ---------------------------------------------------------------------------------------
    def _payer_trade(self, data: dict) -> dict | None:
        code = str(data.get("code") or data.get("qr_code") or "")
        if code.startswith("http"):
            code = dict(parse_qsl(urlsplit(code).query)).get("code", "")
        key = None
        if code:
            key = self.store.get(self.QR_CODES, code)
        elif data.get("trade_no"):
            key = self.store.get(self.TRADE_NOS, str(data["trade_no"]))
        elif data.get("out_trade_no"):
            found = [k for k, t in self.store.items(self.TRADES) if t["out_trade_no"] == data["out_trade_no"]
                     and data.get("app_id", t["app_id"]) == t["app_id"]
                     and data.get("sub_mchid", t["seller_id"]) == t["seller_id"]]
            key = found[0] if len(found) == 1 else None
        return self.store.get(self.TRADES, key) if key else None

    def _payer_order_string(self, order_string: str, request: SimRequest) -> dict | SimResponse:
        """The wallet receiving an APP order string (alipay.trade.app.pay): verify it as the gateway would."""
        params = dict(parse_qsl(order_string, keep_blank_values=True))
        app = self._app(params.get("app_id", ""))
        fault = check_common(params, app)
        if fault is None and params.get("method") != "alipay.trade.app.pay":
            fault = AlipayFault("isv.invalid-method", "not an app order string", code="40002")
        if fault is not None:
            return SimResponse.json(fault.inner(), 400)
        biz = json.loads(params.get("biz_content") or "{}")
        merchant = None
        if params.get("app_auth_token"):
            merchant = self.store.get(self.MERCHANTS, self.store.get(self.TOKENS, params["app_auth_token"]) or "")
            if merchant is None or merchant["app_id"] != app["app_id"]:
                return SimResponse.json(AlipayFault("aop.invalid-app-auth-token", code="20001").inner(), 400)
        try:
            return self.open_client_order(Call(request=request, params=params, app=app, biz=biz, merchant=merchant))
        except AlipayFault as fault:
            return SimResponse.json(fault.inner(), 400)

    def payer_page(self, request: SimRequest) -> SimResponse:
        trade = self._payer_trade(request.query)
        if trade is None:
            return SimResponse.html("<p>二维码无效 (unknown code)</p>", 404)
        return SimResponse.html(self._cashier_html(request.base_url, trade, request.query_string))

    def _cashier_html(self, base_url: str, trade: dict, ident: str) -> str:
        fields = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in parse_qsl(ident))
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>支付宝 收银台 (simulator)</title></head><body>"
            f"<h1>支付宝 收银台</h1><p>{html.escape(trade['subject'])}</p>"
            f"<p>¥ {yuan(trade['total_amount'])}</p><p>状态 {html.escape(trade['status'])}</p>"
            f"<form method='post' action='{html.escape(base_url)}/_payer/pay'>{fields}"
            "<label>付款人 user_id <input name='payer_id' value=''></label> "
            "<button name='outcome' value='success'>确认付款 (pay)</button> "
            "<button name='outcome' value='fail'>取消 (cancel)</button></form></body></html>"
        )

    def payer_scan_view(self, request: SimRequest) -> SimResponse:
        data = _payload(request)
        with self._lock:
            trade = self._payer_trade(data)
            if trade is None:
                return SimResponse.json({"error": "unknown trade"}, 404)
            trade = self.payer_scan(trade, payer_id=str(data.get("payer_id", "")))
        return SimResponse.json(_trade_view(trade))

    def payer_pay_view(self, request: SimRequest) -> SimResponse:
        data = _payload(request)
        outcome = str(data.get("outcome", "success"))
        if outcome not in ("success", "fail"):
            return SimResponse.json({"error": "outcome is success or fail"}, 400)
        with self._lock:
            if data.get("order_string"):
                trade = self._payer_order_string(str(data["order_string"]), request)
                if isinstance(trade, SimResponse):
                    return trade
            else:
                trade = self._payer_trade(data)
            if trade is None:
                return SimResponse.json({"error": "unknown trade"}, 404)
            trade = self.payer_pay(trade, outcome=outcome, payer_id=str(data.get("payer_id", "")))
        if request.header("content-type").startswith("application/x-www-form-urlencoded"):
            return SimResponse.html(f"<p>{html.escape(trade['status'])}</p>")
        return SimResponse.json(_trade_view(trade))

    def payer_sign_page(self, request: SimRequest) -> SimResponse:
        order_id = html.escape(request.query.get("order_id", ""))
        return SimResponse.html(
            "<!doctype html><meta charset='utf-8'><h1>直付通 二级商户确认</h1>"
            f"<form method='post'><input type='hidden' name='order_id' value='{order_id}'>"
            "<button>确认 (confirm)</button></form>")

    def payer_sign(self, request: SimRequest) -> SimResponse:
        data = _payload(request)
        order_id = str(data.get("order_id") or request.query.get("order_id", ""))
        order = self.store.get(self.ORDERS, order_id)
        if order is None or order["sub_confirm"] != "NOT_CONFIRM":
            return SimResponse.json({"error": "nothing to confirm"}, 400)
        with self._lock:
            order = self.review(order_id, "finish", [])
        return SimResponse.json(self._public_order(order))


def _json(request: SimRequest) -> dict:
    try:
        data = request.json() if request.body else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _payload(request: SimRequest) -> dict:
    if request.header("content-type").startswith("application/json"):
        return _json(request)
    try:
        return request.form()
    except UnicodeDecodeError:
        return {}


def _trade_view(trade: dict) -> dict:
    status = "WAIT_BUYER_PAY" if trade["status"] == "PRECREATED" else trade["status"]
    return {"trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"], "trade_status": status,
            "buyer_id": trade["buyer_id"]}


# --- portal set-up (channels.md: provision plays "the merchant sets up its account at the channel portal") ------
def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback; never through an environment proxy
    return session


def provision(sim_root_url: str, *, name: str = "demo", message_url: str = "") -> dict:
    """Create OUR app key pair, register the app at the simulator and return ``AlipayConfig(**d)`` data.

    The simulator also creates a demo authorised merchant for the app (see ``provision_merchant`` for more, and
    ``GET /alipay/_control/accounts/<app_id>`` to list them with their app_auth_tokens).
    """
    private_pem, public_pem = keys.generate_keypair()
    response = _session().post(sim_root_url.rstrip("/") + "/alipay/_control/accounts", timeout=30,
                               json={"name": name, "app_public_key": public_pem, "message_url": message_url})
    response.raise_for_status()
    registered = response.json()
    return {"app_id": registered["app_id"], "app_private_key": private_pem,
            "alipay_public_key": registered["alipay_public_key"], "isv_pid": registered["isv_pid"],
            "sign_type": "RSA2", "aes_key": ""}


def provision_merchant(sim_root_url: str, *, app_id: str, name: str = "merchant") -> dict:
    """A merchant that authorised our app (B.6): {"sub_mchid", "app_auth_token", "auth_app_id", "name"}."""
    response = _session().post(sim_root_url.rstrip("/") + "/alipay/_control/merchants", timeout=30,
                               json={"app_id": app_id, "name": name})
    response.raise_for_status()
    return response.json()

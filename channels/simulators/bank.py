"""Loopback simulator of the bank acquirer gateway — a strict peer of docs/channels/bank.md.

It verifies our request signatures (§3), answers in the §5 envelope signed with the account's bank key, runs the
trade/refund/apply lifecycles (bank_trades.py, bank_merchants.py), sends signed notifies with retries until it reads
``SUCCESS`` (§11), serves daily bills (§8) and the UnionPay userAuth redirect (§10), and injects core.py's faults.
One simulator serves any number of bank accounts (org_no), each with its own key pairs and its own namespaces
(§13.1): the demo's Bank A and Bank B are two ``provision`` calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from typing import Any

import requests

from channels.simulators import bank_wire as wire
from channels.simulators.bank_bill import render_bill
from channels.simulators.bank_merchants import PRODUCTS, MerchantHandlers, apply_view
from channels.simulators.bank_state import (
    ACCOUNTS,
    APPLY_IDS,
    BILL_FILES,
    DATE8,
    DEFAULT_SETTINGS,
    MODIFY_IDS,
    TIME14,
    BankFail,
    ns,
    settings_of,
    text,
)
from channels.simulators.bank_trades import TradeHandlers
from channels.simulators.core import SimRequest, SimResponse, SimulatorApp
from channels.simulators.notifier import Notifier
from channels.simulators.store import Store

logger = logging.getLogger("aggpay.simulators.bank")
NONCE = re.compile(r"^[0-9A-Za-z]{16,32}$")
REQ_TIME_WINDOW = 300  # §3.3: seconds either side of the bank's clock
# §11.3 real cadence is 0/15s/15s/30s/3m/10m/20m/30m/1h/2h/6h; the simulator keeps the shape, shorter.
NOTIFY_SCHEDULE = (0, 2, 5, 15, 60, 300)
TIMERS = "bank:timers"


def _is_ack(status: int, body: bytes) -> bool:
    return status == 200 and body.strip() == b"SUCCESS"  # §11.3: exactly SUCCESS, nothing else


class BankSimulator(TradeHandlers, MerchantHandlers, SimulatorApp):
    kind = "bank"

    def __init__(self, store: Store):
        super().__init__(store)
        self.lock = threading.RLock()
        self.notifier = Notifier(store, self.kind, _is_ack, schedule=NOTIFY_SCHEDULE)
        self._timer_wake = threading.Event()
        self._timer_thread: threading.Thread | None = None
        api = {
            "/api/pay/unified": self.api_unified,
            "/api/pay/jsapi": self.api_jsapi,
            "/api/pay/micropay": self.api_micropay,
            "/api/pay/query": self.api_query,
            "/api/pay/close": self.api_close,
            "/api/pay/reverse": self.api_reverse,
            "/api/refund/apply": self.api_refund_apply,
            "/api/refund/query": self.api_refund_query,
            "/api/bill/download": self.api_bill_download,
            "/api/merchant/file/upload": self.api_file_upload,
            "/api/merchant/apply": self.api_merchant_apply,
            "/api/merchant/query": self.api_merchant_query,
            "/api/merchant/settlement/modify": self.api_settlement_modify,
            "/api/merchant/settlement/query": self.api_settlement_query,
            "/api/oauth/user_id": self.api_oauth_user_id,
        }
        for path, handler in api.items():
            self.route("POST", re.escape(path), self._endpoint(handler))
        self.route("GET", r"/bill/file", self.bill_file)
        self.route("GET", r"/_oauth/userAuth", self.oauth_user_auth)
        self.route("GET", r"/_payer/", self.payer_page)
        self.route("POST", r"/_payer/pay", self.payer_pay)
        self.route("GET", r"/_payer/sign", self.sign_page)
        self.route("POST", r"/_payer/sign", self.sign_page)
        self.route("POST", r"/_control/accounts", self.control_account_create)
        self.route("GET", r"/_control/accounts/(?P<org_no>[^/]+)", self.control_account_show)
        self.route("POST", r"/_control/accounts/(?P<org_no>[^/]+)/settings", self.control_account_settings)
        self.route("POST", r"/_control/merchants", self.control_merchant_create)
        self.route("POST", r"/_control/merchants/(?P<mch_no>[^/]+)", self.control_merchant_update)
        self.route("POST", r"/_control/applications/(?P<apply_id>[^/]+)", self.control_application)
        self.route("POST", r"/_control/settlements/(?P<modify_id>[^/]+)", self.control_settlement)
        self.route("POST", r"/_control/flush", self.control_flush)
        self.route("GET", r"/_control/notifications", self.control_notifications)
        if self.store.items(TIMERS):
            self._ensure_timer_thread()  # resume reviews/refunds scheduled before a restart

    # --- accounts -----------------------------------------------------------------------------------------
    def account(self, org_no: str) -> dict | None:
        return self.store.get(ACCOUNTS, org_no) if org_no else None

    # --- the §3/§5 envelope -------------------------------------------------------------------------------
    def _endpoint(self, handler):
        def endpoint(request: SimRequest) -> SimResponse:
            try:
                msg = json.loads(request.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                msg = None
            if not isinstance(msg, dict):
                return self._answer(BankFail("PARAM_ERROR", "the body must be a UTF-8 JSON object"))
            account = self.account(msg["org_no"]) if isinstance(msg.get("org_no"), str) else None
            if account is None:
                return self._answer(BankFail("ORG_NOT_EXIST", "org_no is not registered at this bank"))
            try:
                self._check_envelope(msg, account)
                with self.lock:
                    fields = handler(request, msg, account)
            except BankFail as fail:
                return self._answer(fail)
            return SimResponse.json({"code": "SUCCESS", "msg": "OK", **fields})

        return endpoint

    def _check_envelope(self, msg: dict, account: dict) -> None:
        if msg.get("version") != "1.0":
            raise BankFail("VERSION_UNSUPPORTED", "version must be 1.0")
        if msg.get("sign_type") != "RSA2":
            raise BankFail("PARAM_ERROR", "sign_type must be RSA2")
        if msg.get("key_id") != account["key_id"]:
            raise BankFail("KEY_NOT_FOUND", "key_id is not a key of this org_no")
        try:
            signed = wire.rsa2_verify(msg, account["public_key_pem"])
        except wire.NotCanonical as exc:
            raise BankFail("PARAM_ERROR", str(exc)) from None
        if not signed:
            raise BankFail("SIGN_ERROR", "sign does not verify with the key registered for key_id")
        sent = wire.parse_text_time(text(msg, "req_time", pattern=TIME14))
        if abs(time.time() - sent) > REQ_TIME_WINDOW:
            raise BankFail("REQ_TIME_EXPIRED", "req_time is more than 5 minutes from the bank's clock")
        nonce = text(msg, "nonce", pattern=NONCE)
        if not self.store.put_new(ns("nonces", account["org_no"]), nonce, time.time()):
            raise BankFail("NONCE_REPEATED", "nonce was already used")

    @staticmethod
    def _answer(fail: BankFail) -> SimResponse:
        messages = {"FAIL": "business failure", "UNKNOWN": "result unknown"}
        return SimResponse.json({"code": fail.code, "msg": messages.get(fail.code, fail.code),
                                 "sub_code": fail.sub_code, "sub_msg": fail.sub_msg, **fail.extra})

    def business_error(self, request: SimRequest, rule: dict) -> SimResponse:
        sub_code = rule.get("code", "SYSTEM_ERROR")
        fail = BankFail(sub_code, rule.get("message", ""), code="UNKNOWN" if sub_code == "SYSTEM_ERROR" else "FAIL")
        response = self._answer(fail)
        response.status = int(rule.get("status", 200))
        return response

    def finalize(self, request: SimRequest, response: SimResponse) -> SimResponse:
        """§5.1: add the envelope and sign every JSON answer of /api/ — when the org is known (else unsigned)."""
        if not request.path.startswith("/api/") or response.status != 200:
            return response
        data = json.loads(response.body)
        try:
            msg = json.loads(request.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            msg = None
        msg = msg if isinstance(msg, dict) else {}
        data.update(version="1.0", resp_time=wire.now_text())
        if isinstance(msg.get("nonce"), str):
            data["nonce"] = msg["nonce"]
        account = self.account(msg["org_no"]) if isinstance(msg.get("org_no"), str) else None
        if account is not None:
            data.update(org_no=account["org_no"], sign_type="RSA2", key_id=account["bank_key_id"])
            content = wire.sign_content(data)
            if request.fault("bad_signature"):
                content += "&tampered=true"  # a real signature, of the wrong content
            data["sign"] = wire.rsa2_sign(content, account["bank_private_key_pem"])
        return SimResponse.json(data, status=response.status)

    # --- notifies (§11) -----------------------------------------------------------------------------------
    def notify(self, account: dict, url: str, notify_type: str, fields: dict[str, Any]) -> None:
        message = {"version": "1.0", "org_no": account["org_no"], "notify_id": "N" + secrets.token_hex(12),
                   "notify_type": notify_type, "notify_time": wire.now_text(), "sign_type": "RSA2",
                   "key_id": account["bank_key_id"], **fields}
        rules = self.faults.take(method="POST", path=notify_type, haystack=json.dumps(message, ensure_ascii=False),
                                 phase="callback")
        faults = {rule["fault"]: rule for rule in rules}
        content = wire.sign_content(message)
        if "callback_bad_signature" in faults:
            content += "&tampered=true"
        message["sign"] = wire.rsa2_sign(content, account["bank_private_key_pem"])
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        delay = float(faults["out_of_order_callback"].get("seconds", 2)) if "out_of_order_callback" in faults else 0
        for _ in range(2 if "duplicate_callback" in faults else 1):
            self.notifier.enqueue(url=url, body=body, headers={}, delay=delay,
                                  content_type="application/json; charset=utf-8")

    # --- timers: scheduled state changes apply even if nobody asks ---------------------------------------
    def schedule(self, topic: str, org_no: str, key: str, at: float) -> None:
        self.store.put(TIMERS, f"{topic}|{org_no}|{key}", {"at": at})
        self._ensure_timer_thread()
        self._timer_wake.set()

    def run_due_timers(self) -> int:
        fired = 0
        for timer_key, timer in self.store.items(TIMERS):
            if timer["at"] > time.time():
                continue
            topic, org_no, key = timer_key.split("|", 2)
            account = self.account(org_no)
            with self.lock:
                self.store.delete(TIMERS, timer_key)
                if account is None:
                    continue
                if topic == "trade":
                    self._trade_or_none(org_no, key)
                elif topic == "refund" and (refund := self.store.get(ns("refunds", org_no), key)):
                    self._settle_refund(account, refund)
                elif topic == "apply" and (apply := self.store.get(ns("applies", org_no), key)):
                    self.settle_apply(account, apply)
            fired += 1
        return fired

    def _ensure_timer_thread(self) -> None:
        with self.lock:
            if self._timer_thread is None or not self._timer_thread.is_alive():
                self._timer_thread = threading.Thread(target=self._timer_loop, name="sim-bank-timers", daemon=True)
                self._timer_thread.start()

    def _timer_loop(self) -> None:
        while True:
            try:
                self.run_due_timers()
            except Exception:  # keep the loop alive: a simulator must not die on one bad record
                logger.exception("bank simulator timer loop failed")
            timers = self.store.items(TIMERS)
            wait = min((t["at"] for _, t in timers), default=time.time() + 5) - time.time()
            self._timer_wake.wait(timeout=min(max(wait, 0.05), 5))
            self._timer_wake.clear()

    # --- bills (§8) ---------------------------------------------------------------------------------------
    def api_bill_download(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org = account["org_no"]
        bill_date = text(msg, "bill_date", pattern=DATE8)
        text(msg, "bill_type", choices=("TRADE",))
        mch_no = text(msg, "mch_no", required=False, max_len=32)
        if mch_no:
            self.merchant(account, msg)
        try:
            day = dt.datetime.strptime(bill_date, "%Y%m%d").date()
        except ValueError:
            raise BankFail("BILL_DATE_INVALID", "bill_date is not a date") from None
        today = dt.datetime.now(wire.BEIJING).date()
        if day > today or (day == today and not settings_of(account)["intraday_bills"]):
            raise BankFail("BILL_NOT_READY", "the bill of a day is ready from 09:00 the next day")
        if (today - day).days > 90:
            raise BankFail("BILL_DATE_INVALID", "bills are kept for 90 days")
        trades = [self._settle_trade(account, t) for _, t in self.store.items(ns("trades", org))]
        refunds = [self._settle_refund(account, r) for _, r in self.store.items(ns("refunds", org))]
        content = render_bill(org_no=org, bill_date=bill_date, trades=trades, refunds=refunds, mch_no=mch_no)
        token = secrets.token_urlsafe(24)
        self.store.put(BILL_FILES, token, {"content": content.decode("utf-8"), "expires": time.time() + 600})
        return {"bill_date": bill_date, "download_url": f"{request.base_url}/bill/file?token={token}",
                "file_sha256": hashlib.sha256(content).hexdigest(), "file_size": len(content)}

    def bill_file(self, request: SimRequest) -> SimResponse:
        item = self.store.get(BILL_FILES, request.query.get("token", ""))
        if item is None or item["expires"] < time.time():
            return SimResponse.text("download token unknown or expired", 404)
        content = item["content"].encode("utf-8")
        if request.fault("truncated_file"):  # a download cut short on the way: half the file, framed as whole
            content = content[:len(content) // 2]
        return SimResponse(200, content, {"Content-Type": "text/csv; charset=utf-8"})

    # --- control API (§13.3) ------------------------------------------------------------------------------
    def control_account_create(self, request: SimRequest) -> SimResponse:
        params = request.json()
        public_pem = params.get("public_key_pem", "")
        try:
            wire.check_public_key(public_pem)
        except (ValueError, TypeError):
            return SimResponse.json({"error": "public_key_pem must be an RSA public key PEM"}, 400)
        unknown = sorted(set(params.get("settings") or {}) - set(DEFAULT_SETTINGS))
        if unknown:
            return SimResponse.json({"error": f"unknown settings: {', '.join(unknown)}"}, 400)
        bank_private, bank_public = wire.new_key_pair()
        org_no = "ORG" + wire.digits(10)
        account = {
            "org_no": org_no, "name": str(params.get("name") or "demo"), "key_id": "K" + secrets.token_hex(4).upper(),
            "public_key_pem": public_pem, "bank_key_id": "BK" + secrets.token_hex(4).upper(),
            "bank_private_key_pem": bank_private, "bank_public_key_pem": bank_public,
            "settings": dict(params.get("settings") or {}), "created": time.time(),
        }
        self.store.put(ACCOUNTS, org_no, account)
        return SimResponse.json(_account_view(account), 201)

    def control_account_show(self, request: SimRequest) -> SimResponse:
        account = self.account(request.match["org_no"])
        if account is None:
            return SimResponse.json({"error": "no such org_no"}, 404)
        return SimResponse.json(_account_view(account))

    def control_account_settings(self, request: SimRequest) -> SimResponse:
        with self.lock:
            account = self.account(request.match["org_no"])
            if account is None:
                return SimResponse.json({"error": "no such org_no"}, 404)
            changes = request.json()
            unknown = sorted(set(changes) - set(DEFAULT_SETTINGS))
            if unknown:
                return SimResponse.json({"error": f"unknown settings: {', '.join(unknown)}"}, 400)
            account["settings"] = {**account.get("settings", {}), **changes}
            self.store.put(ACCOUNTS, account["org_no"], account)
        return SimResponse.json(_account_view(account))

    def control_merchant_create(self, request: SimRequest) -> SimResponse:
        """A merchant already open at the bank (onboarded outside aggpay): all products unless listed."""
        params = request.json()
        account = self.account(str(params.get("org_no") or ""))
        if account is None:
            return SimResponse.json({"error": "no such org_no"}, 404)
        mch_no = str(params.get("mch_no") or "8" + wire.digits(14))
        merchant = {"mch_no": mch_no, "name": str(params.get("name") or "Simulated merchant"),
                    "short_name": str(params.get("short_name") or params.get("name") or "Simulated"),
                    "merchant_type": "ENTERPRISE", "products": list(params.get("products") or PRODUCTS),
                    "state": str(params.get("state") or "NORMAL"), "modifies": []}
        self.store.put(ns("merchants", account["org_no"]), mch_no, merchant)
        return SimResponse.json(merchant, 201)

    def control_merchant_update(self, request: SimRequest) -> SimResponse:
        params = request.json()
        account = self.account(str(params.get("org_no") or ""))
        key = ns("merchants", account["org_no"]) if account else ""
        merchant = self.store.get(key, request.match["mch_no"]) if account else None
        if merchant is None:
            return SimResponse.json({"error": "no such merchant under this org_no"}, 404)
        if params.get("state") not in ("NORMAL", "LIMITED", "CLOSED"):
            return SimResponse.json({"error": "state must be NORMAL, LIMITED or CLOSED"}, 400)
        merchant["state"] = params["state"]
        self.store.put(key, merchant["mch_no"], merchant)
        return SimResponse.json(merchant)

    def control_application(self, request: SimRequest) -> SimResponse:
        params = _params(request)
        link = self.store.get(APPLY_IDS, request.match["apply_id"])
        account = link and self.account(link["org_no"])
        if not account:
            return SimResponse.json({"error": "no such application"}, 404)
        with self.lock:
            apply = self.store.get(ns("applies", account["org_no"]), link["apply_no"])
            try:
                apply = self.review(account, apply, str(params.get("action", "")), _reasons(params))
            except ValueError as exc:
                return SimResponse.json({"error": str(exc)}, 409)
        return SimResponse.json(apply_view(apply))

    def control_settlement(self, request: SimRequest) -> SimResponse:
        params = _params(request)
        link = self.store.get(MODIFY_IDS, request.match["modify_id"])
        account = link and self.account(link["org_no"])
        if not account:
            return SimResponse.json({"error": "no such settlement change"}, 404)
        with self.lock:
            modify = self.store.get(ns("modifies", account["org_no"]), link["modify_no"])
            try:
                modify = self.decide_modify(account, modify, str(params.get("action", "")), _reasons(params))
            except ValueError as exc:
                return SimResponse.json({"error": str(exc)}, 409)
        return SimResponse.json(self._modify_view(modify))

    def control_flush(self, request: SimRequest) -> SimResponse:
        """Apply due state changes, then send every pending notify now (including retries not yet due)."""
        fired = self.run_due_timers()
        sent = self.notifier.flush(include_future=True)
        return SimResponse.json({"timers": fired, "sent": sent, "pending": len(self.notifier.pending())})

    def control_notifications(self, request: SimRequest) -> SimResponse:
        items = [{"id": i["id"], "url": i["url"], "body": i["body"], "attempt": i["attempt"], "acked": i["acked"],
                  "log": i["log"]} for i in self.notifier.all()]
        return SimResponse.json({"notifications": items})


def _account_view(account: dict) -> dict:
    """What the bank's portal shows the institution: never the bank's private key."""
    return {"org_no": account["org_no"], "name": account["name"], "key_id": account["key_id"],
            "bank_key_id": account["bank_key_id"], "bank_public_key_pem": account["bank_public_key_pem"],
            "settings": settings_of(account)}


def _params(request: SimRequest) -> dict:
    if request.header("content-type").startswith("application/json"):
        data = request.json()
        return data if isinstance(data, dict) else {}
    return request.form()


def _reasons(params: dict) -> list:
    reasons = params.get("reasons") or []
    if isinstance(reasons, str):
        reasons = [{"field": "", "reason": reasons}]
    return [r if isinstance(r, dict) else {"field": "", "reason": str(r)} for r in reasons]


def provision(sim_root_url: str, *, name: str = "demo", settings: dict | None = None) -> dict:
    """Play "the institution opens an account at the bank's portal" (channels.md): make our RSA-2048 key pair,
    register its public half, and return the BankConfig fields (without base_url)."""
    private_pem, public_pem = wire.new_key_pair()
    root = sim_root_url.rstrip("/")
    session = requests.Session()
    session.trust_env = False  # loopback: never through an environment proxy
    resp = session.post(root + "/bank/_control/accounts",
                        json={"name": name, "public_key_pem": public_pem, "settings": settings or {}}, timeout=30)
    resp.raise_for_status()
    data = resp.json()
    return {
        "org_no": data["org_no"],
        "key_id": data["key_id"],
        "private_key_pem": private_pem,
        "bank_key_id": data["bank_key_id"],
        "bank_public_key_pem": data["bank_public_key_pem"],
        "user_auth_url": root + "/bank/_oauth/userAuth",
    }

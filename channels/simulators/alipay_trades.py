"""Trades in the Alipay simulator: the B.5 methods, the trade lifecycle and trade_status_sync notifies (B.4).

Lifecycle (B.5, B.9 item 4):
  * ``alipay.trade.precreate`` stores the order but Alipay holds no trade until a payer scans the QR: query,
    close and refund answer ``ACQ.TRADE_NOT_EXIST`` until then (the internal status is ``PRECREATED``);
  * scanning (``/_payer/scan``) → ``WAIT_BUYER_PAY``; paying (``/_payer/pay``) → ``TRADE_SUCCESS`` + notify;
  * ``alipay.trade.create`` (JSAPI) and the WAP/APP orders start at ``WAIT_BUYER_PAY``;
  * ``alipay.trade.pay`` (barcode) settles at once or answers 10003 per the auth_code's LAST DIGIT:
      0–5 success (10000); 6 10003 then success after ``user_paying_seconds``; 7 10003 then closed (the payer
      cancelled); 8 ``ACQ.BUYER_BALANCE_NOT_ENOUGH``; 9 ``ACQ.PAYMENT_AUTH_CODE_INVALID``. A code that is not
      2[5-9]/30 + 14–22 digits is ``ACQ.PAYMENT_AUTH_CODE_INVALID`` too;
  * unpaid trades close at ``time_expire``; full refunds close a trade (``TRADE_CLOSED``); cancel closes or
    refunds (``action`` close/refund). Every cancel answer carries ``retry_flag`` (B.5; a required field of the
    answer, failures included): ``N`` for the simulator's own refusals; the ``business_error`` fault answers ``Y``
    for a system error unless its rule says otherwise (``cancel_retry_flag``).
Notifies go to the order's ``notify_url``: payment success, and refunds as trade_status_sync with ``out_biz_no``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from channels.simulators import alipay_keys as keys
from channels.simulators.alipay_gateway import TIME_FORMAT, AlipayFault, Call, ok

BEIJING = ZoneInfo("Asia/Shanghai")
AUTH_CODE = re.compile(r"^(2[5-9]|30)\d{14,22}$")
PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")
OPEN = ("PRECREATED", "WAIT_BUYER_PAY")
# Cancel failures Alipay asks to try again (retry_flag=Y). Which sub_codes do is [UNVERIFIED]: its cancel page says
# of ACQ.SYSTEM_ERROR "retry after a while" and of AQC.SYSTEM_ERROR "call again with the same parameters"; a fault
# rule's ``retry_flag`` overrides this guess.
CANCEL_RETRY_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR", "isp.unknow-error", "aop.unknow-error"})


def cancel_retry_flag(sub_code: str, rule_flag: Any = None) -> str:
    """The ``retry_flag`` of a failed alipay.trade.cancel: the fault rule's, else Y for a system error, else N."""
    if rule_flag in ("Y", "N"):
        return str(rule_flag)
    return "Y" if sub_code in CANCEL_RETRY_SUB_CODES else "N"


def now_bj() -> dt.datetime:
    return dt.datetime.now(BEIJING).replace(microsecond=0)


def fmt(moment: dt.datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def fen(text: Any, field: str) -> int:
    try:
        value = Decimal(str(text)) * 100
    except ArithmeticError:
        raise AlipayFault("ACQ.INVALID_PARAMETER", f"参数有误 {field}") from None
    if not value.is_finite() or value != value.to_integral_value() or value <= 0 or value > 10**10:
        raise AlipayFault("ACQ.INVALID_PARAMETER", f"参数有误 {field}")
    return int(value)


def digits(seed: str, count: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:count].rjust(count, "0")


class TradesMixin:
    """Mixed into AlipaySimulator, which provides store, notifier, faults, _lock, _app and _schedule."""

    TRADES = "alipay:trades"
    TRADE_NOS = "alipay:trade_nos"
    QR_CODES = "alipay:qr_codes"
    DUE = "alipay:due"

    # --- lookup -------------------------------------------------------------------------------------------
    def _seller(self, call: Call) -> str:
        """Who sells: the token's merchant (B.6), a 直付通 smid (B.7), else the ISV app's own pid."""
        if call.merchant is not None:
            return call.merchant["smid"]
        sub = call.biz.get("sub_merchant")
        if isinstance(sub, dict) and sub.get("merchant_id"):
            merchant = self.store.get(self.MERCHANTS, str(sub["merchant_id"]))
            if merchant is None or merchant["app_id"] != call.app["app_id"]:
                raise AlipayFault("ACQ.SUB_MERCHANT_NOT_EXIST", "二级商户不存在")
            return merchant["smid"]
        return call.app["isv_pid"]

    def _trade_key(self, app_id: str, seller: str, out_trade_no: str) -> str:
        return f"{app_id}|{seller}|{out_trade_no}"

    def _find_trade(self, call: Call, *, visible_only: bool = True) -> dict:
        seller = self._seller(call)
        trade = None
        if call.biz.get("out_trade_no"):
            trade = self.store.get(self.TRADES, self._trade_key(call.app["app_id"], seller, call.biz["out_trade_no"]))
        elif call.biz.get("trade_no"):
            key = self.store.get(self.TRADE_NOS, str(call.biz["trade_no"]))
            trade = self.store.get(self.TRADES, key) if key else None
            if trade is not None and (trade["app_id"] != call.app["app_id"] or trade["seller_id"] != seller):
                trade = None
        else:
            raise AlipayFault("ACQ.INVALID_PARAMETER", "out_trade_no和trade_no不能同时为空")
        if trade is not None:
            trade = self._advance(trade)
        if trade is None or (visible_only and trade["status"] == "PRECREATED"):
            raise AlipayFault("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return trade

    def _save(self, trade: dict) -> dict:
        self.store.put(self.TRADES, trade["key"], trade)
        return trade

    # --- lifecycle ------------------------------------------------------------------------------------
    def _new_trade(self, call: Call, *, status: str, product_code: str) -> dict:
        biz = call.biz
        for name in ("out_trade_no", "total_amount", "subject"):
            if not biz.get(name):
                raise AlipayFault("ACQ.INVALID_PARAMETER", f"参数{name}不能为空")
        if len(str(biz["out_trade_no"])) > 64:
            raise AlipayFault("ACQ.INVALID_PARAMETER", "out_trade_no too long")
        amount = fen(biz["total_amount"], "total_amount")
        seller = self._seller(call)
        key = self._trade_key(call.app["app_id"], seller, str(biz["out_trade_no"]))
        existing = self.store.get(self.TRADES, key)
        if existing is not None:
            existing = self._advance(existing)
            if existing["total_amount"] != amount or existing["subject"] != biz["subject"]:
                raise AlipayFault("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            if existing["status"] in PAID:
                raise AlipayFault("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if existing["status"] == "TRADE_CLOSED":
                raise AlipayFault("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            return existing
        created = now_bj()
        expire = None
        if biz.get("time_expire"):
            try:
                expire = dt.datetime.strptime(biz["time_expire"], TIME_FORMAT).replace(tzinfo=BEIJING)
            except (TypeError, ValueError):
                raise AlipayFault("ACQ.INVALID_PARAMETER", "time_expire格式错误") from None
        trade_no = created.strftime("%Y%m%d") + "22001" + digits(key + uuid.uuid4().hex, 15)
        trade = {
            "key": key, "app_id": call.app["app_id"], "seller_id": seller, "out_trade_no": str(biz["out_trade_no"]),
            "trade_no": trade_no, "method": call.method, "product_code": product_code, "total_amount": amount,
            "subject": str(biz["subject"]), "status": status, "notify_url": call.params.get("notify_url", ""),
            "auth_app_id": call.merchant["auth_app_id"] if call.merchant else call.app["app_id"],
            "buyer_id": "", "buyer_open_id": "", "buyer_logon_id": "", "qr_code": "",
            "gmt_create": fmt(created), "gmt_payment": "", "gmt_close": "",
            "time_expire": fmt(expire) if expire else "", "passback_params": str(biz.get("passback_params", "")),
            "store_id": str(biz.get("store_id", "")), "terminal_id": str(biz.get("terminal_id", "")),
            "refunds": {}, "refund_fee": 0, "settle": None,
        }
        self.store.put(self.TRADE_NOS, trade_no, key)
        if expire:
            self._due(key, expire.timestamp())
        return self._save(trade)

    def _due(self, key: str, at: float) -> None:
        current = self.store.get(self.DUE, key)
        if current is None or at < current:
            self.store.put(self.DUE, key, at)
        self._schedule(max(0.0, at - time.time()))

    def tick(self) -> int:
        """Apply every due timed event (barcode settling, expiry, delayed refunds). Returns how many trades moved."""
        moved = 0
        with self._lock:
            for key, at in self.store.items(self.DUE):
                if at > time.time():
                    continue
                self.store.delete(self.DUE, key)
                trade = self.store.get(self.TRADES, key)
                if trade is not None:
                    before = json.dumps(trade, sort_keys=True)
                    after = self._advance(trade)
                    moved += json.dumps(after, sort_keys=True) != before
        return moved

    def _advance(self, trade: dict) -> dict:
        """Bring a trade up to now: settle a 10003 barcode, expire unpaid, finish delayed refunds."""
        now = time.time()
        changed = False
        settle = trade.get("settle")
        if settle and settle["at"] <= now and trade["status"] == "WAIT_BUYER_PAY":
            trade["settle"] = None
            if settle["outcome"] == "success":
                self._mark_paid(trade, buyer_id=settle.get("buyer_id", ""))
            else:
                self._mark_closed(trade)
            changed = True
        elif settle and settle["at"] > now:
            self._due(trade["key"], settle["at"])
        if trade["status"] in OPEN and trade["time_expire"]:
            expire = dt.datetime.strptime(trade["time_expire"], TIME_FORMAT).replace(tzinfo=BEIJING)
            if expire.timestamp() <= now:
                self._mark_closed(trade)
                changed = True
        for out_request_no, refund in trade["refunds"].items():
            if refund["status"] == "" and refund["due"] <= now:
                refund["status"] = "REFUND_SUCCESS"
                refund["gmt_refund_pay"] = fmt(now_bj())
                self._refund_done(trade, out_request_no)
                changed = True
            elif refund["status"] == "":
                self._due(trade["key"], refund["due"])
        return self._save(trade) if changed else trade

    def _mark_paid(self, trade: dict, *, buyer_id: str = "") -> None:
        buyer = buyer_id or trade["buyer_id"] or "2088" + digits(trade["key"] + "buyer", 12)
        trade.update(status="TRADE_SUCCESS", gmt_payment=fmt(now_bj()), buyer_id=buyer,
                     buyer_open_id=trade.get("buyer_open_id") or "", buyer_logon_id=trade["buyer_logon_id"] or "138****8888")
        self._notify(trade)

    def _mark_closed(self, trade: dict) -> None:
        trade.update(status="TRADE_CLOSED", gmt_close=fmt(now_bj()), settle=None)

    def _refund_done(self, trade: dict, out_request_no: str) -> None:
        refund = trade["refunds"][out_request_no]
        trade["refund_fee"] += refund["amount"]
        if trade["refund_fee"] >= trade["total_amount"]:
            trade.update(status="TRADE_CLOSED", gmt_close=refund["gmt_refund_pay"])
        self._notify(trade, refund_no=out_request_no)

    # --- notifies (B.4) -----------------------------------------------------------------------------------
    def _notify(self, trade: dict, *, refund_no: str = "") -> None:
        if not trade["notify_url"]:
            return
        app = self._app(trade["app_id"])
        params = {
            "notify_time": fmt(now_bj()), "notify_type": "trade_status_sync",
            "notify_id": now_bj().strftime("%Y%m%d") + "00222" + secrets.token_hex(12),
            "app_id": trade["app_id"], "auth_app_id": trade["auth_app_id"], "charset": "utf-8", "version": "1.0",
            "sign_type": "RSA2", "trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"],
            "buyer_id": trade["buyer_id"], "buyer_logon_id": trade["buyer_logon_id"], "seller_id": trade["seller_id"],
            "trade_status": trade["status"], "total_amount": yuan(trade["total_amount"]),
            "receipt_amount": yuan(trade["total_amount"]), "invoice_amount": yuan(trade["total_amount"]),
            "buyer_pay_amount": yuan(trade["total_amount"]), "point_amount": "0.00", "subject": trade["subject"],
            "gmt_create": trade["gmt_create"], "gmt_payment": trade["gmt_payment"],
            "fund_bill_list": json.dumps([{"amount": yuan(trade["total_amount"]), "fundChannel": "ALIPAYACCOUNT"}],
                                         separators=(",", ":")),
            "passback_params": trade["passback_params"],
        }
        if refund_no:
            refund = trade["refunds"][refund_no]
            params.update(out_biz_no=refund_no, refund_fee=yuan(trade["refund_fee"]),
                          gmt_refund=refund["gmt_refund_pay"] + ".000", gmt_close=trade["gmt_close"])
        self.send_signed_notify(app, trade["notify_url"], params, thread=trade["out_trade_no"])

    # --- B.5 methods --------------------------------------------------------------------------------------
    def m_precreate(self, call: Call) -> dict:
        trade = self._new_trade(call, status="PRECREATED", product_code=call.biz.get("product_code", "FACE_TO_FACE_PAYMENT"))
        if not trade["qr_code"]:
            code = "bax" + secrets.token_hex(10)
            trade["qr_code"] = f"{call.request.base_url}/_payer/?code={code}"
            self.store.put(self.QR_CODES, code, trade["key"])
            self._save(trade)
        return ok(out_trade_no=trade["out_trade_no"], qr_code=trade["qr_code"])

    def m_create(self, call: Call) -> dict:
        if not (call.biz.get("buyer_id") or call.biz.get("buyer_open_id")):
            raise AlipayFault("ACQ.INVALID_PARAMETER", "buyer_id和buyer_open_id不能同时为空")
        trade = self._new_trade(call, status="WAIT_BUYER_PAY", product_code=call.biz.get("product_code", "JSAPI_PAY"))
        trade.update(buyer_id=str(call.biz.get("buyer_id", "")), buyer_open_id=str(call.biz.get("buyer_open_id", "")))
        self._save(trade)
        return ok(out_trade_no=trade["out_trade_no"], trade_no=trade["trade_no"])

    def m_pay(self, call: Call) -> dict:
        auth_code = str(call.biz.get("auth_code", ""))
        if call.biz.get("scene") not in ("bar_code", "security_code", "wave_code"):
            raise AlipayFault("ACQ.INVALID_PARAMETER", "scene参数有误")
        if not AUTH_CODE.match(auth_code) or auth_code.endswith("9"):
            raise AlipayFault("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款")
        if auth_code.endswith("8"):
            raise AlipayFault("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
        known = self.store.get(self.TRADES, self._trade_key(call.app["app_id"], self._seller(call),
                                                            str(call.biz.get("out_trade_no", ""))))
        trade = self._new_trade(call, status="WAIT_BUYER_PAY", product_code="FACE_TO_FACE_PAYMENT")
        buyer = "2088" + digits("buyer" + auth_code[:-1], 12)
        if known is None:
            last = int(auth_code[-1])
            if last <= 5:
                trade["buyer_id"] = buyer
                self._mark_paid(trade, buyer_id=buyer)
            else:
                delay = float(call.app["settings"].get("user_paying_seconds", 5))
                trade["settle"] = {"at": time.time() + delay, "outcome": "success" if last == 6 else "fail",
                                   "buyer_id": buyer}
                self._due(trade["key"], trade["settle"]["at"])
            self._save(trade)
        fields = {"trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"],
                  "total_amount": yuan(trade["total_amount"])}
        if trade["status"] == "WAIT_BUYER_PAY":
            return {"code": "10003", "msg": " order success pay inprocess", **fields}
        return ok(**fields, buyer_logon_id=trade["buyer_logon_id"], buyer_user_id=trade["buyer_id"],
                  receipt_amount=yuan(trade["total_amount"]), buyer_pay_amount=yuan(trade["total_amount"]),
                  invoice_amount=yuan(trade["total_amount"]), point_amount="0.00", gmt_payment=trade["gmt_payment"],
                  fund_bill_list=[{"fund_channel": "ALIPAYACCOUNT", "amount": yuan(trade["total_amount"])}])

    def m_query(self, call: Call) -> dict:
        trade = self._find_trade(call)
        fields = {
            "trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"], "trade_status": trade["status"],
            "total_amount": yuan(trade["total_amount"]), "buyer_logon_id": trade["buyer_logon_id"],
            "buyer_user_id": trade["buyer_id"], "buyer_open_id": trade["buyer_open_id"],
            "store_id": trade["store_id"], "terminal_id": trade["terminal_id"],
        }
        if trade["gmt_payment"]:
            amount = yuan(trade["total_amount"])
            fields.update(send_pay_date=trade["gmt_payment"], receipt_amount=amount, buyer_pay_amount=amount,
                          invoice_amount=amount, point_amount="0.00",
                          fund_bill_list=[{"fund_channel": "ALIPAYACCOUNT", "amount": amount}])
        return ok(**{k: v for k, v in fields.items() if v != ""})

    def m_close(self, call: Call) -> dict:
        try:
            trade = self._find_trade(call)
        except AlipayFault as fault:
            if fault.sub_code == "ACQ.TRADE_NOT_EXIST":
                # An unscanned precreate: no trade to close, but its QR stops working (our assumption; B.5).
                hidden = self._find_trade(call, visible_only=False) if call.biz.get("out_trade_no") else None
                if hidden is not None and hidden["status"] == "PRECREATED":
                    self._mark_closed(hidden)
                    self._save(hidden)
            raise
        if trade["status"] != "WAIT_BUYER_PAY":
            raise AlipayFault("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        self._mark_closed(trade)
        self._save(trade)
        return ok(trade_no=trade["trade_no"], out_trade_no=trade["out_trade_no"])

    def m_cancel(self, call: Call) -> dict:
        try:
            trade = self._find_trade(call, visible_only=False)
        except AlipayFault as fault:
            fault.extra.setdefault("retry_flag", cancel_retry_flag(fault.sub_code))  # B.5: failures carry it too
            raise
        if trade["status"] in PAID:
            action = "refund"
            remaining = trade["total_amount"] - trade["refund_fee"]
            if remaining > 0:
                trade["refunds"]["cancel"] = {"amount": remaining, "status": "REFUND_SUCCESS", "reason": "cancel",
                                              "gmt_refund_pay": fmt(now_bj()), "due": 0}
                trade["refund_fee"] = trade["total_amount"]
            trade.update(status="TRADE_CLOSED", gmt_close=fmt(now_bj()))
        else:
            action = "close"
            if trade["status"] != "TRADE_CLOSED":
                self._mark_closed(trade)
        self._save(trade)
        return ok(trade_no=trade["trade_no"], out_trade_no=trade["out_trade_no"], retry_flag="N", action=action)

    def m_refund(self, call: Call) -> dict:
        trade = self._find_trade(call)
        amount = fen(call.biz.get("refund_amount"), "refund_amount")
        out_request_no = str(call.biz.get("out_request_no") or trade["out_trade_no"])
        existing = trade["refunds"].get(out_request_no)
        if existing is not None:
            if existing["amount"] != amount:
                raise AlipayFault("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致")
            return self._refund_answer(trade, fund_change="N", gmt=existing["gmt_refund_pay"])
        if not trade["gmt_payment"]:
            raise AlipayFault("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if trade["status"] == "TRADE_FINISHED":
            raise AlipayFault("ACQ.TRADE_HAS_FINISHED", "交易已完结")
        pending = sum(r["amount"] for r in trade["refunds"].values() if r["status"] == "")
        if amount + trade["refund_fee"] + pending > trade["total_amount"]:
            raise AlipayFault("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        delay = float(self._app(trade["app_id"])["settings"].get("refund_delay_seconds", 0))
        refund = {"amount": amount, "status": "", "reason": str(call.biz.get("refund_reason", "")),
                  "gmt_refund_pay": "", "due": time.time() + delay}
        trade["refunds"][out_request_no] = refund
        if delay <= 0:
            refund.update(status="REFUND_SUCCESS", gmt_refund_pay=fmt(now_bj()))
            self._refund_done(trade, out_request_no)
            self._save(trade)
            return self._refund_answer(trade, fund_change="Y", gmt=refund["gmt_refund_pay"])
        self._save(trade)
        self._due(trade["key"], refund["due"])
        return self._refund_answer(trade, fund_change="N", gmt="")

    def _refund_answer(self, trade: dict, *, fund_change: str, gmt: str) -> dict:
        fields = {"trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"],
                  "buyer_logon_id": trade["buyer_logon_id"], "fund_change": fund_change,
                  "refund_fee": yuan(trade["refund_fee"]), "buyer_user_id": trade["buyer_id"]}
        if gmt:
            fields["gmt_refund_pay"] = gmt
        return ok(**fields)

    def m_refund_query(self, call: Call) -> dict:
        trade = self._find_trade(call)
        out_request_no = str(call.biz.get("out_request_no", ""))
        if not out_request_no:
            raise AlipayFault("ACQ.INVALID_PARAMETER", "out_request_no不能为空")
        refund = trade["refunds"].get(out_request_no)
        if refund is None:
            return ok()  # B.5: an empty success = no such refund
        fields = {"trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"],
                  "out_request_no": out_request_no, "total_amount": yuan(trade["total_amount"]),
                  "refund_amount": yuan(refund["amount"])}
        if refund["status"]:
            fields["refund_status"] = refund["status"]
            if "gmt_refund_pay" in (call.biz.get("query_options") or []):
                fields["gmt_refund_pay"] = refund["gmt_refund_pay"]
        return ok(**fields)

    # --- page / app orders (B.1: signed params handed to a browser or app) -------------------------------------
    def open_client_order(self, call: Call) -> dict:
        product_code = "QUICK_WAP_WAY" if call.method == "alipay.trade.wap.pay" else "QUICK_MSECURITY_PAY"
        return self._new_trade(call, status="WAIT_BUYER_PAY", product_code=call.biz.get("product_code", product_code))

    # --- payer actions ------------------------------------------------------------------------------------
    def payer_scan(self, trade: dict, *, payer_id: str = "") -> dict:
        trade = self._advance(trade)
        if trade["status"] == "PRECREATED":
            trade["status"] = "WAIT_BUYER_PAY"
            trade["buyer_id"] = payer_id or "2088" + digits(trade["key"] + "buyer", 12)
            trade["buyer_logon_id"] = "138****8888"
            self._save(trade)
        return trade

    def payer_pay(self, trade: dict, *, outcome: str, payer_id: str = "") -> dict:
        trade = self.payer_scan(trade, payer_id=payer_id)
        if trade["status"] != "WAIT_BUYER_PAY":
            return trade
        if outcome == "success":
            self._mark_paid(trade, buyer_id=payer_id)
        elif trade.get("settle"):
            self._mark_closed(trade)  # a barcode payer who cancels in the wallet
        return self._save(trade)

    def fee_for(self, amount: int, app: dict) -> int:
        rate = Decimal(str(app["settings"].get("fee_rate", "0.006")))
        return int((Decimal(amount) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def form_body(params: dict[str, str]) -> bytes:
    return urlencode(params).encode("ascii")


def signed_params(app: dict, params: dict[str, str], *, tamper: bool = False) -> dict[str, str]:
    params = {k: v for k, v in params.items() if v not in ("", None)}
    content = keys.notify_content(params) + ("x" if tamper else "")
    return {**params, "sign": keys.sign(app["alipay_private_key"], content)}

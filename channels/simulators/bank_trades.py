"""Trades and refunds of the bank simulator (docs/channels/bank.md §6, §7) and the payer side (§13.2).

A trade waiting for its payer (USERPAYING) or a refund in PROCESSING stores the state it will reach and when
(``resolve``) plus a timer; whichever comes first — a read of the object or the simulator's timer thread — applies
it and queues the notify for the new state, so notifies and queries always agree.
"""

from __future__ import annotations

import html
import json
import secrets
import time
from typing import Any

from channels.simulators import bank_wire as wire
from channels.simulators.bank_state import (
    CODES,
    OUT_NO,
    TIME14,
    URL,
    BankFail,
    amount,
    fee_of,
    ns,
    prorated,
    settings_of,
    text,
)
from channels.simulators.core import SimRequest, SimResponse

PAY_CHANNELS = ("WECHAT", "ALIPAY", "UNIONPAY")
# bank.md §6.3: payment-code prefixes per wallet.
CODE_PREFIXES = {"WECHAT": ("10", "11", "12", "13", "14", "15"),
                 "ALIPAY": ("25", "26", "27", "28", "29", "30"),
                 "UNIONPAY": ("62",)}
TRADE_VIEW = ("mch_no", "out_trade_no", "trade_no", "channel_trade_no", "pay_channel", "trade_type", "trade_state",
              "trade_state_desc", "total_amount", "currency", "user_id", "pay_time", "attach", "refunded_amount")
REFUND_VIEW = ("mch_no", "out_trade_no", "trade_no", "out_refund_no", "refund_no", "refund_amount", "refund_state",
               "success_time", "fail_reason")
REFUND_OUTCOMES = ("SUCCESS", "ABNORMAL", "CLOSED", "FAIL")


def _view(record: dict, fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: record[k] for k in fields if record.get(k) not in (None, "")}


class TradeHandlers:
    """Mixed into BankSimulator, which provides ``store``, ``lock``, ``notify``, ``schedule``, ``account`` and
    ``merchant``."""

    # --- create (§6.1–§6.3) -----------------------------------------------------------------------------
    def api_unified(self, request: SimRequest, msg: dict, account: dict) -> dict:
        trade = self._open_trade(request, msg, account, "NATIVE")
        return {**_view(trade, TRADE_VIEW), "qr_code": trade["qr_code"]}

    def api_jsapi(self, request: SimRequest, msg: dict, account: dict) -> dict:
        pay_channel = text(msg, "pay_channel", choices=PAY_CHANNELS)
        allowed = ("JSAPI", "MINIAPP") if pay_channel == "WECHAT" else ("JSAPI",)
        trade_type = text(msg, "trade_type", choices=allowed)
        trade = self._open_trade(request, msg, account, trade_type)
        return {**_view(trade, TRADE_VIEW), "pay_info": trade["pay_info"]}

    def _open_trade(self, request: SimRequest, msg: dict, account: dict, trade_type: str) -> dict:
        org = account["org_no"]
        fields = self._trade_fields(msg, account, trade_type)
        fields["notify_url"] = text(msg, "notify_url", pattern=URL, max_len=512)
        expire = text(msg, "time_expire", required=False, pattern=TIME14)
        fields["expires"] = wire.parse_text_time(expire) if expire else time.time() + 7200
        if trade_type != "NATIVE":
            fields["user_id"] = text(msg, "user_id", max_len=128)
            if fields["pay_channel"] == "WECHAT":
                fields["sub_appid"] = text(msg, "sub_appid", max_len=32)
        existing = self._trade_or_none(org, fields["out_trade_no"])
        if existing is not None:
            return self._repeat(existing, fields)
        code = "BQ" + secrets.token_hex(12)
        trade = {**fields, "trade_state": "NOTPAY", "code": code, "refunded_amount": 0}
        if trade_type == "NATIVE":
            trade["qr_code"] = f"{request.base_url}/_payer/?code={code}"
        else:
            trade["pay_info"] = self._pay_info(request, account, trade)
        self._save_new_trade(org, trade)
        return trade

    def _pay_info(self, request: SimRequest, account: dict, trade: dict) -> dict:
        """bank.md §6.2: what the payer's wallet is invoked with."""
        if trade["pay_channel"] == "WECHAT":
            stamp, nonce, package = str(int(time.time())), secrets.token_hex(16), "prepay_id=wx" + trade["code"]
            pay_sign = wire.rsa2_sign(f"{trade['sub_appid']}\n{stamp}\n{nonce}\n{package}\n",
                                      account["bank_private_key_pem"])
            return {"appId": trade["sub_appid"], "timeStamp": stamp, "nonceStr": nonce, "package": package,
                    "signType": "RSA", "paySign": pay_sign}
        if trade["pay_channel"] == "ALIPAY":
            trade["channel_trade_no"] = wire.now_text()[:8] + "22001" + wire.digits(15)
            return {"tradeNO": trade["channel_trade_no"]}
        return {"redirect_url": f"{request.base_url}/_payer/?code={trade['code']}"}

    def api_micropay(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org = account["org_no"]
        fields = self._trade_fields(msg, account, "MICROPAY")
        auth_code = text(msg, "auth_code", max_len=32)
        fields["auth_code_tail"] = auth_code[-4:]
        fields["fingerprint"] = fields["fingerprint"] + [auth_code]
        fields["notify_url"] = text(msg, "notify_url", required=False, pattern=URL, max_len=512)
        existing = self._trade_or_none(org, fields["out_trade_no"])
        if existing is not None:
            trade = self._repeat(existing, fields)
        else:
            trade = self._charge(account, fields, auth_code)
        if trade.get("refusal"):
            raise BankFail(trade["refusal"], trade.get("trade_state_desc", ""), extra=_view(trade, TRADE_VIEW))
        if trade.get("unknown_once"):
            self.store.update(ns("trades", org), trade["out_trade_no"], unknown_once=False)
            raise BankFail("SYSTEM_ERROR", "bank system busy, result unknown", code="UNKNOWN")
        return _view(trade, TRADE_VIEW)

    def _charge(self, account: dict, fields: dict, auth_code: str) -> dict:
        """bank.md §13.2: the payment code's last digit picks the payer's behaviour."""
        org, s = account["org_no"], settings_of(account)
        trade = {**fields, "trade_state": "NOTPAY", "code": "BQ" + secrets.token_hex(12), "refunded_amount": 0,
                 "expires": time.time() + 7200}
        prefixes = CODE_PREFIXES[fields["pay_channel"]]
        last = auth_code[-1]
        if not auth_code.isdigit() or not 16 <= len(auth_code) <= 24 or not auth_code.startswith(prefixes):
            trade.update(trade_state="PAYERROR", refusal="AUTH_CODE_INVALID",
                         trade_state_desc="auth_code is not a valid payment code of " + fields["pay_channel"])
        elif last == "7":
            trade.update(trade_state="PAYERROR", refusal="INSUFFICIENT_BALANCE",
                         trade_state_desc="payer balance insufficient")
        elif last == "8":
            trade.update(trade_state="PAYERROR", refusal="AUTH_CODE_INVALID", trade_state_desc="auth_code expired")
        elif last in "56":
            trade.update(trade_state="USERPAYING", trade_state_desc="waiting for the payer to confirm")
            at = time.time() + float(s["userpaying_seconds"])
            future = self._paid_fields(account, trade, at=at) if last == "5" else \
                {"trade_state": "PAYERROR", "trade_state_desc": "payer cancelled"}
            trade["resolve"] = {"at": at, "fields": future}
            self.schedule("trade", org, trade["out_trade_no"], at)
        else:  # 0–4 pay at once; 9 pays but the answer says UNKNOWN (§13.2)
            trade.update(self._paid_fields(account, trade, at=time.time()))
            trade["unknown_once"] = last == "9"
        self._save_new_trade(org, trade)
        if trade["trade_state"] == "SUCCESS" and trade["notify_url"]:
            self.notify(account, trade["notify_url"], "PAY_RESULT", _view(trade, TRADE_VIEW))
        return trade

    def _trade_fields(self, msg: dict, account: dict, trade_type: str) -> dict:
        merchant = self.merchant(account, msg, for_payment=True)
        pay_channel = text(msg, "pay_channel", choices=PAY_CHANNELS)
        if f"{pay_channel}_{trade_type}" not in merchant.get("products", []):
            raise BankFail("NO_PERMISSION", f"{pay_channel}_{trade_type} is not opened for {merchant['mch_no']}")
        currency = text(msg, "currency", required=False) or "CNY"
        if currency != "CNY":
            raise BankFail("PARAM_ERROR", "currency must be CNY")
        total = amount(msg, "total_amount")
        return {
            "org_no": account["org_no"], "mch_no": merchant["mch_no"], "pay_channel": pay_channel,
            "trade_type": trade_type, "out_trade_no": text(msg, "out_trade_no", pattern=OUT_NO),
            "total_amount": total, "currency": currency,
            "subject": text(msg, "subject", max_len=128), "attach": text(msg, "attach", required=False, max_len=127),
            "store_id": text(msg, "store_id", required=False, max_len=32),
            "terminal_id": text(msg, "terminal_id", required=False, max_len=32),
            "created": time.time(), "fingerprint": [merchant["mch_no"], pay_channel, trade_type, total],
        }

    def _repeat(self, trade: dict, fields: dict) -> dict:
        """bank.md §6.1: the same out_trade_no with the same content is a retry; otherwise OUT_TRADE_NO_USED."""
        if trade["fingerprint"] != fields["fingerprint"]:
            raise BankFail("OUT_TRADE_NO_USED", "out_trade_no was used for a different order")
        if trade["trade_type"] == "MICROPAY":
            return trade
        if trade["trade_state"] == "SUCCESS":
            raise BankFail("ORDER_PAID", "the order is already paid")
        if trade["trade_state"] in ("CLOSED", "REVOKED"):
            raise BankFail("ORDER_CLOSED", "the order is closed")
        return trade

    def _paid_fields(self, account: dict, trade: dict, *, at: float, payer_id: str = "") -> dict:
        channel = trade["pay_channel"]
        if trade.get("channel_trade_no"):
            channel_no = trade["channel_trade_no"]
        elif channel == "WECHAT":
            channel_no = "42000" + wire.digits(23)
        elif channel == "ALIPAY":
            channel_no = wire.now_text(at)[:8] + "22001" + wire.digits(15)
        else:
            channel_no = "UP" + wire.digits(20)
        user_id = payer_id or trade.get("user_id") or {
            "WECHAT": "o" + secrets.token_urlsafe(20)[:27], "ALIPAY": "2088" + wire.digits(12),
        }.get(channel, "UP" + secrets.token_hex(10))
        return {"trade_state": "SUCCESS", "trade_state_desc": "paid", "pay_time": wire.now_text(at),
                "paid_at": at, "channel_trade_no": channel_no, "user_id": user_id,
                "fee": fee_of(trade["total_amount"], settings_of(account)["fee_rate"])}

    # --- query / close / reverse (§6.4–§6.7) ------------------------------------------------------------
    def api_query(self, request: SimRequest, msg: dict, account: dict) -> dict:
        return _view(self._find_trade(account, msg), TRADE_VIEW)

    def api_close(self, request: SimRequest, msg: dict, account: dict) -> dict:
        trade = self._find_trade(account, msg)
        state = trade["trade_state"]
        if state == "SUCCESS":
            raise BankFail("ORDER_PAID", "a paid order cannot be closed; refund it")
        if state == "USERPAYING":
            raise BankFail("USERPAYING", "the payer is confirming; reverse the order instead")
        if state == "REVOKED":
            raise BankFail("ORDER_REVERSED", "the order was reversed")
        if state != "CLOSED":
            trade = self._update_trade(account, trade, trade_state="CLOSED", trade_state_desc="closed by merchant")
        return _view(trade, TRADE_VIEW)

    def api_reverse(self, request: SimRequest, msg: dict, account: dict) -> dict:
        trade = self._find_trade(account, msg)
        if trade["trade_type"] != "MICROPAY":
            raise BankFail("REVERSE_NOT_ALLOWED", "only micropay orders can be reversed; close or refund it")
        if trade["refunded_amount"]:
            raise BankFail("REVERSE_NOT_ALLOWED", "the order has refunds; refund the rest instead")
        if trade["trade_state"] != "REVOKED":
            changes: dict[str, Any] = {"trade_state": "REVOKED", "trade_state_desc": "reversed", "resolve": None}
            if trade["trade_state"] == "SUCCESS":  # money goes back: a REVOKE row in the bill (§8.3)
                changes.update(revoke_time=wire.now_text(), revoked_at=time.time(),
                               revoke_no="V" + wire.now_text()[:8] + wire.digits(12))
            trade = self._update_trade(account, trade, **changes)
        return _view(trade, TRADE_VIEW)

    # --- refunds (§7) -----------------------------------------------------------------------------------
    def api_refund_apply(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org, s = account["org_no"], settings_of(account)
        trade = self._find_trade(account, msg)
        out_refund_no = text(msg, "out_refund_no", pattern=OUT_NO)
        refund_amount, total = amount(msg, "refund_amount"), amount(msg, "total_amount")
        existing = self.store.get(ns("refunds", org), out_refund_no)
        if existing is not None:
            if (existing["out_trade_no"], existing["refund_amount"]) != (trade["out_trade_no"], refund_amount):
                raise BankFail("OUT_REFUND_NO_USED", "out_refund_no was used for a different refund")
            return _view(self._settle_refund(account, existing), REFUND_VIEW)
        if trade["trade_state"] != "SUCCESS":
            raise BankFail("TRADE_NOT_REFUNDABLE", f"the order is {trade['trade_state']}, not paid")
        if total != trade["total_amount"]:
            raise BankFail("PARAM_ERROR", "total_amount does not match the order")
        if trade["refunded_amount"] + refund_amount > trade["total_amount"]:
            raise BankFail("REFUND_EXCEEDED", "refund_amount exceeds what is left to refund")
        outcome = s["refund_outcome"] if s["refund_outcome"] in REFUND_OUTCOMES else "SUCCESS"
        at = time.time() + float(s["refund_seconds"])
        refund = {
            "org_no": org, "mch_no": trade["mch_no"], "out_trade_no": trade["out_trade_no"],
            "trade_no": trade["trade_no"], "out_refund_no": out_refund_no,
            "refund_no": "R" + wire.now_text()[:8] + wire.digits(12), "refund_amount": refund_amount,
            "refund_state": "PROCESSING", "fee": prorated(refund_amount, trade["total_amount"], trade.get("fee", 0)),
            "reason": text(msg, "refund_reason", required=False, max_len=128),
        }
        future = {"refund_state": outcome}
        if outcome == "SUCCESS":
            future.update(success_time=wire.now_text(at), succeeded_at=at)
        else:
            future["fail_reason"] = {"ABNORMAL": "payer account abnormal, money could not be returned",
                                     "CLOSED": "refund closed by the bank", "FAIL": "merchant balance insufficient"}[
                outcome]
        refund["notify_url"] = text(msg, "notify_url", required=False, pattern=URL, max_len=512)
        refund["resolve"] = {"at": at, "fields": future}
        self.store.put(ns("refunds", org), out_refund_no, refund)
        self.schedule("refund", org, out_refund_no, at)
        self.store.put(ns("refund_nos", org), refund["refund_no"], out_refund_no)
        self._update_trade(account, trade, refunded_amount=trade["refunded_amount"] + refund_amount)
        return _view(refund, REFUND_VIEW)

    def api_refund_query(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org = account["org_no"]
        self.merchant(account, msg)
        key = text(msg, "out_refund_no", required=False, max_len=32)
        if not key and msg.get("refund_no"):
            key = self.store.get(ns("refund_nos", org), text(msg, "refund_no", max_len=32)) or ""
        if not key:
            raise BankFail("PARAM_ERROR", "out_refund_no or refund_no is required")
        refund = self.store.get(ns("refunds", org), key)
        if refund is None or refund["mch_no"] != msg.get("mch_no"):
            raise BankFail("REFUND_NOT_EXIST", "no such refund")
        return _view(self._settle_refund(account, refund), REFUND_VIEW)

    def _settle_refund(self, account: dict, refund: dict) -> dict:
        resolve = refund.get("resolve")
        if not resolve or resolve["at"] > time.time():
            return refund
        refund = {**refund, **resolve["fields"], "resolve": None}
        self.store.put(ns("refunds", account["org_no"]), refund["out_refund_no"], refund)
        if refund.get("notify_url"):
            self.notify(account, refund["notify_url"], "REFUND_RESULT", _view(refund, REFUND_VIEW))
        if refund["refund_state"] in ("FAIL", "CLOSED"):  # §7.3: the money stayed with the merchant
            trade = self._trade_or_none(account["org_no"], refund["out_trade_no"])
            self._update_trade(account, trade, refunded_amount=trade["refunded_amount"] - refund["refund_amount"])
        return refund

    # --- trade storage ----------------------------------------------------------------------------------
    def _save_new_trade(self, org: str, trade: dict) -> None:
        trade.setdefault("trade_no", "B" + wire.now_text()[:8] + wire.digits(12))
        self.store.put(ns("trades", org), trade["out_trade_no"], trade)
        self.store.put(ns("trade_nos", org), trade["trade_no"], trade["out_trade_no"])
        link = {"org_no": org, "out_trade_no": trade["out_trade_no"]}
        self.store.put(CODES, trade["code"], link)
        self.store.put(CODES, trade["trade_no"], link)
        if trade.get("pay_channel") == "ALIPAY" and trade.get("channel_trade_no"):
            # An Alipay JSAPI trade's wallet pays by Alipay's own number, the tradeNO of its pay_info (§6.2).
            self.store.put(CODES, trade["channel_trade_no"], link)

    def _trade_or_none(self, org: str, out_trade_no: str) -> dict | None:
        trade = self.store.get(ns("trades", org), out_trade_no)
        return None if trade is None else self._settle_trade(self.account(org), trade)

    def _find_trade(self, account: dict, msg: dict) -> dict:
        """By out_trade_no or trade_no, within this org and this mch_no only (bank.md §6.4)."""
        org = account["org_no"]
        self.merchant(account, msg)
        out_trade_no = text(msg, "out_trade_no", required=False, max_len=32)
        if not out_trade_no and msg.get("trade_no"):
            out_trade_no = self.store.get(ns("trade_nos", org), text(msg, "trade_no", max_len=32)) or ""
        if not out_trade_no:
            raise BankFail("PARAM_ERROR", "out_trade_no or trade_no is required")
        trade = self._trade_or_none(org, out_trade_no)
        if trade is None or trade["mch_no"] != msg.get("mch_no"):
            raise BankFail("ORDER_NOT_EXIST", "no such order")
        return trade

    def _settle_trade(self, account: dict, trade: dict) -> dict:
        now, org = time.time(), account["org_no"]
        resolve = trade.get("resolve")
        if resolve and resolve["at"] <= now:
            trade = {**trade, **resolve["fields"], "resolve": None}
            self.store.put(ns("trades", org), trade["out_trade_no"], trade)
            if trade["trade_state"] == "SUCCESS" and trade.get("notify_url"):
                self.notify(account, trade["notify_url"], "PAY_RESULT", _view(trade, TRADE_VIEW))
        if trade["trade_state"] == "NOTPAY" and trade.get("expires", now + 1) < now:
            trade = {**trade, "trade_state": "CLOSED", "trade_state_desc": "expired"}
            self.store.put(ns("trades", org), trade["out_trade_no"], trade)
        return trade

    def _update_trade(self, account: dict, trade: dict, **changes: Any) -> dict:
        trade = {**trade, **changes}
        self.store.put(ns("trades", account["org_no"]), trade["out_trade_no"], trade)
        return trade

    # --- the payer (§13.2) ------------------------------------------------------------------------------
    def payer_page(self, request: SimRequest) -> SimResponse:
        link = self.store.get(CODES, request.query.get("code", ""))
        with self.lock:
            trade = link and self._trade_or_none(link["org_no"], link["out_trade_no"])
        if not trade:
            return SimResponse.html("<h1>二维码无效 / unknown code</h1>", 404)
        code = html.escape(request.query["code"])
        state = html.escape(trade["trade_state"])
        return SimResponse.html(
            "<!doctype html><meta charset=utf-8><title>Bank simulator · pay</title>"
            f"<h1>{html.escape(trade['subject'])}</h1><p>¥{trade['total_amount'] // 100}."
            f"{trade['total_amount'] % 100:02d} · {html.escape(trade['pay_channel'])} · {state}</p>"
            f"<form method=post action='{html.escape(request.base_url)}/_payer/pay'>"
            f"<input type=hidden name=code value='{code}'>"
            "<button name=outcome value=success>Pay</button> <button name=outcome value=fail>Fail</button></form>"
        )

    @staticmethod
    def _jsapi_problem(account: dict, trade: dict, jsapi) -> str:
        """What WeChat checks before it pays a JSAPI trade the bank created (§6.2): the parameters the bank handed
        out, its paySign over them, and that they are this trade's; "" when they pass."""
        if isinstance(jsapi, str):  # the stand-in page posts them as a form field holding JSON
            try:
                jsapi = json.loads(jsapi)
            except ValueError:
                jsapi = None
        if not isinstance(jsapi, dict):
            return "jsapi: the parameters the bank's pay_info handed the wallet are required"
        if trade.get("pay_channel") != "WECHAT" or not trade.get("pay_info"):
            return "prepay_id: not a WeChat trade paid in the wallet (JSAPI or mini-program)"
        if jsapi.get("appId") != trade.get("sub_appid"):
            return "appId: not the appid the trade was created for"
        if jsapi.get("package") != "prepay_id=wx" + trade["code"]:
            return "package: not this trade's prepay_id"
        message = f"{jsapi['appId']}\n{jsapi.get('timeStamp')}\n{jsapi.get('nonceStr')}\n{jsapi['package']}\n"
        if jsapi.get("signType") != "RSA" or not wire.rsa2_verify_text(message, jsapi.get("paySign", ""),
                                                                       account["bank_public_key_pem"]):
            return "paySign: not the bank's signature"
        return ""

    def payer_pay(self, request: SimRequest) -> SimResponse:
        is_form = not request.header("content-type").startswith("application/json")
        params = request.form() if is_form else request.json()
        # What the payer's wallet was handed names the trade (§6.2): the QR or redirect page's code, Alipay's tradeNO
        # (or the bank's trade_no), or WeChat's prepay_id, whose package the bank made "prepay_id=wx" + code.
        key = str(params.get("code") or params.get("trade_no") or "")
        prepay_id = str(params.get("prepay_id") or "")
        if not key and prepay_id.startswith("wx"):
            key = prepay_id[2:]
        link = self.store.get(CODES, key) or \
            {"org_no": params.get("org_no"), "out_trade_no": params.get("out_trade_no")}
        account = self.account(str(link.get("org_no") or ""))
        with self.lock:
            trade = account and self._trade_or_none(account["org_no"], str(link.get("out_trade_no") or ""))
            if not trade:
                return SimResponse.json({"error": "no such trade"}, 404)
            if prepay_id:
                problem = self._jsapi_problem(account, trade, params.get("jsapi"))
                if problem:
                    return SimResponse.json({"error": problem}, 400)
            outcome = params.get("outcome", "success")
            if trade["trade_state"] not in ("NOTPAY", "USERPAYING"):
                return SimResponse.json({"error": f"trade is {trade['trade_state']}"}, 409)
            if outcome == "success":
                paid = self._paid_fields(account, trade, at=time.time(), payer_id=str(params.get("payer_id") or ""))
                trade = self._update_trade(account, trade, resolve=None, **paid)
                if trade.get("notify_url"):
                    self.notify(account, trade["notify_url"], "PAY_RESULT", _view(trade, TRADE_VIEW))
            elif trade["trade_state"] == "USERPAYING":
                trade = self._update_trade(account, trade, resolve=None, trade_state="PAYERROR",
                                           trade_state_desc="payer cancelled")
        if is_form:
            return SimResponse.html(f"<!doctype html><meta charset=utf-8><h1>{html.escape(trade['trade_state'])}</h1>")
        return SimResponse.json(_view(trade, TRADE_VIEW))


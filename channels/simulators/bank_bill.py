"""The bank simulator's daily trade bill (docs/channels/bank.md §8.3), rendered from the trades it saw."""

from __future__ import annotations

import csv
import datetime as dt
import io

from channels.simulators.bank_wire import BEIJING, now_text

HEADER = ("交易时间", "机构号", "商户号", "终端号", "支付渠道", "交易类型", "记录类型", "商户订单号", "银行订单号",
          "渠道订单号", "商户退款单号", "银行退款单号", "交易金额", "手续费", "结算金额", "交易状态", "商品名称", "附加数据")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _day(at: float | None) -> str:
    return "" if at is None else dt.datetime.fromtimestamp(at, BEIJING).strftime("%Y%m%d")


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _flat(value: str) -> str:
    # §8.3: one record per line — the bank replaces line breaks in free text.
    return " ".join((value or "").split())


def render_bill(*, org_no: str, bill_date: str, trades: list[dict], refunds: list[dict], mch_no: str = "") -> bytes:
    """bill_date is yyyyMMdd (Beijing). Rows: PAY (paid on the day), REFUND (succeeded on the day), REVOKE
    (a paid micropay order reversed on the day). Money going back is negative (§8.3)."""
    rows: list[dict] = []
    by_no = {t["out_trade_no"]: t for t in trades}

    def add(at: float, trade: dict, record: str, amount: int, fee: int, out_refund_no: str = "", refund_no: str = ""):
        rows.append({"at": at, "amount": amount, "fee": fee, "cells": [
            _when(at), org_no, trade["mch_no"], trade.get("terminal_id", ""), trade["pay_channel"],
            trade["trade_type"], record, trade["out_trade_no"], trade["trade_no"], trade.get("channel_trade_no", ""),
            out_refund_no, refund_no, _yuan(amount), _yuan(fee), _yuan(amount - fee), "SUCCESS",
            _flat(trade.get("subject", "")), _flat(trade.get("attach", "")),
        ]})

    for t in trades:
        if mch_no and t["mch_no"] != mch_no or not t.get("paid_at"):
            continue
        if _day(t["paid_at"]) == bill_date:
            add(t["paid_at"], t, "PAY", t["total_amount"], t.get("fee", 0))
        if t.get("revoked_at") and _day(t["revoked_at"]) == bill_date:
            add(t["revoked_at"], t, "REVOKE", -t["total_amount"], -t.get("fee", 0), refund_no=t["revoke_no"])
    for r in refunds:
        trade = by_no.get(r["out_trade_no"])
        if trade is None or (mch_no and r["mch_no"] != mch_no):
            continue
        if r["refund_state"] == "SUCCESS" and _day(r.get("succeeded_at")) == bill_date:
            add(r["succeeded_at"], trade, "REFUND", -r["refund_amount"], -r.get("fee", 0),
                out_refund_no=r["out_refund_no"], refund_no=r["refund_no"])
    rows.sort(key=lambda row: row["at"])
    pays = [row for row in rows if row["amount"] > 0]
    backs = [row for row in rows if row["amount"] < 0]
    out = io.StringIO()
    out.write("\ufeff")  # §8.3: a BOM, as the banks' Excel-friendly files have
    out.write(f"#bank_bill,version=1.0,org_no={org_no},bill_date={bill_date},bill_type=TRADE,"
              f"mch_no={mch_no},generated_at={now_text()}\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(row["cells"] for row in rows)
    out.write(f"#total,rows={len(rows)},pay_count={len(pays)},pay_amount={_yuan(sum(r['amount'] for r in pays))},"
              f"refund_count={len(backs)},refund_amount={_yuan(-sum(r['amount'] for r in backs))},"
              f"fee={_yuan(sum(r['fee'] for r in rows))}\r\n")
    return out.getvalue().encode("utf-8")

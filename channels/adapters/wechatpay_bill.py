"""Parse a WeChat Pay v3 trade bill (交易账单) into BillLines (channel-protocols.md A.12).

Format: a detail header line, backtick-prefixed detail rows, a summary header (``总交易单数,…``) and a summary row.
Column order differs between bill types, so every value is looked up by header name. Real files may start with a
UTF-8 BOM and use CRLF or LF. Amounts are yuan strings (``0.01``), the fee has 5 decimals and is rounded half-up
to the fen. Anything else is a ``ParseError`` naming the line.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from channels.adapters.base import BillLine
from channels.adapters.errors import ParseError

CST = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
SUMMARY_FIRST_COLUMN = "总交易单数"
REQUIRED = ("交易时间", "微信订单号", "商户订单号", "交易状态")
PAYMENT_STATES = ("SUCCESS", "REVOKED")  # 交易状态 of payment rows; REFUND marks refund rows (A.12)


def parse_trade_bill(content: bytes) -> list[BillLine]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"wechatpay bill is not UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if not lines:
        raise ParseError("wechatpay bill is empty")
    header = [name.strip().lstrip("\ufeff") for name in lines[0].split(",")]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ParseError(f"wechatpay bill header lacks {', '.join(missing)}")
    if "订单金额" not in header and "应结订单金额" not in header:
        raise ParseError("wechatpay bill header has no amount column")
    result, summary_seen = [], False
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith(SUMMARY_FIRST_COLUMN):
            summary_seen = True
            break
        result.append(_line(header, _fields(line, number), number))
    if not summary_seen:
        raise ParseError("wechatpay bill is truncated: no summary section")
    return result


def _fields(line: str, number: int) -> list[str]:
    # A.12: every data field starts with a backtick, so ",`" separates fields even if a value holds a comma.
    if not line.startswith("`"):
        raise ParseError(f"wechatpay bill line {number}: data fields must start with a backtick")
    return [value.strip() for value in line[1:].split(",`")]


def _line(header: list[str], values: list[str], number: int) -> BillLine:
    if len(values) != len(header):
        raise ParseError(f"wechatpay bill line {number}: {len(values)} fields for {len(header)} columns")
    row = dict(zip(header, values, strict=True))
    state = row["交易状态"]
    if state == "REFUND":
        kind, amount_text = "refund", row.get("退款金额") or row.get("申请退款金额") or ""
    elif state in PAYMENT_STATES:
        kind, amount_text = "payment", row.get("订单金额") or row.get("应结订单金额") or ""
    else:
        raise ParseError(f"wechatpay bill line {number}: unknown 交易状态 {state!r}")
    try:
        trade_time = dt.datetime.strptime(row["交易时间"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)
    except ValueError:
        raise ParseError(f"wechatpay bill line {number}: bad 交易时间 {row['交易时间']!r}") from None
    out_trade_no = row["商户订单号"]
    if not out_trade_no:
        raise ParseError(f"wechatpay bill line {number}: empty 商户订单号")
    sub_mchid = row.get("特约商户号", "")
    if sub_mchid in ("", "0"):  # direct merchants write `0 here; the mchid is then the merchant itself
        sub_mchid = row.get("商户号", "")
    return BillLine(
        kind=kind,
        trade_time=trade_time,
        out_trade_no=out_trade_no,
        channel_trade_no=row["微信订单号"],
        sub_mchid=sub_mchid,
        amount=abs(_fen(amount_text, number, "amount")),
        fee=_fen(row.get("手续费") or "0", number, "手续费"),
        out_refund_no=row.get("商户退款单号", "") if kind == "refund" else "",
        channel_refund_no=row.get("微信退款单号", "") if kind == "refund" else "",
        state=state,
        raw=row,
    )


def _fen(text: str, number: int, column: str) -> int:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ParseError(f"wechatpay bill line {number}: {column} {text!r} is not an amount") from None
    if not value.is_finite() or abs(value) > Decimal("100000000000"):
        raise ParseError(f"wechatpay bill line {number}: {column} {text!r} is out of range")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))

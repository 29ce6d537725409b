"""Parsing the bank's daily trade bill (docs/channels/bank.md §8.3) into BillLines.

The file is UTF-8 CSV framed by two ``#`` lines: a meta line first and a ``#total`` footer last. Columns are found
by header name (bank.md §8.3: "parse by name, the bank may add columns"); the footer's counts and sums are checked
so a truncated download is refused rather than half-imported. Everything malformed raises ParseError.
"""

from __future__ import annotations

import csv
import datetime as dt
import re

from aggpay.money import MoneyError, yuan_to_fen
from channels.adapters.bank_wire import CST
from channels.adapters.base import BillLine
from channels.adapters.errors import ParseError

META_PREFIX = "#bank_bill"
FOOTER_PREFIX = "#total"

# Header names (bank.md §8.3 table) → what we read them as.
COL_TIME = "交易时间"
COL_MCH = "商户号"
COL_RECORD = "记录类型"
COL_OUT_TRADE_NO = "商户订单号"
COL_TRADE_NO = "银行订单号"
COL_OUT_REFUND_NO = "商户退款单号"
COL_REFUND_NO = "银行退款单号"
COL_AMOUNT = "交易金额"
COL_FEE = "手续费"
COL_STATE = "交易状态"
REQUIRED = (COL_TIME, COL_MCH, COL_RECORD, COL_OUT_TRADE_NO, COL_TRADE_NO, COL_OUT_REFUND_NO, COL_REFUND_NO,
            COL_AMOUNT, COL_FEE, COL_STATE)

RECORD_KINDS = {"PAY": "payment", "REFUND": "refund", "REVOKE": "refund"}
_AMOUNT = re.compile(r"^-?[0-9]{1,12}\.[0-9]{2}$")


def parse_bill(data: bytes) -> list[BillLine]:
    """The bill's lines; ParseError when the file is not a complete, self-consistent bank bill."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"bank bill is not UTF-8: {exc.reason} at byte {exc.start}") from None
    text = text.removeprefix("\ufeff")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 3 or not lines[0].startswith(META_PREFIX):
        raise ParseError("bank bill must start with a #bank_bill line, a header and end with a #total line")
    if not lines[-1].startswith(FOOTER_PREFIX):
        raise ParseError("bank bill has no #total footer: the file is truncated")
    header = _row(lines[1], 2)
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ParseError(f"bank bill header lacks columns: {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise ParseError("bank bill header repeats a column")
    result = []
    for number, line in enumerate(lines[2:-1], start=3):
        if line.startswith("#"):
            raise ParseError(f"bank bill line {number}: unexpected # line inside the details")
        cells = _row(line, number)
        if len(cells) != len(header):
            raise ParseError(f"bank bill line {number}: {len(cells)} cells for {len(header)} columns")
        result.append(_line(dict(zip(header, cells, strict=True)), number))
    _check_footer(lines[-1], result)
    return result


def _row(line: str, number: int) -> list[str]:
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error as exc:
        raise ParseError(f"bank bill line {number}: {exc}") from None
    if len(rows) != 1:
        raise ParseError(f"bank bill line {number}: not one CSV record")
    return [cell.strip() for cell in rows[0]]


def _line(cells: dict[str, str], number: int) -> BillLine:
    record = cells[COL_RECORD]
    if record not in RECORD_KINDS:
        raise ParseError(f"bank bill line {number}: unknown 记录类型 {record!r}")
    try:
        trade_time = dt.datetime.strptime(cells[COL_TIME], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)
    except ValueError:
        raise ParseError(f"bank bill line {number}: 交易时间 {cells[COL_TIME]!r} is not yyyy-MM-dd HH:mm:ss") from None
    amount = _fen(cells[COL_AMOUNT], COL_AMOUNT, number)
    fee = _fen(cells[COL_FEE], COL_FEE, number)
    # bank.md §8.3: PAY rows are positive; REFUND/REVOKE rows are negative (money and fee going back).
    if (record == "PAY" and (amount <= 0 or fee < 0)) or (record != "PAY" and (amount >= 0 or fee > 0)):
        raise ParseError(f"bank bill line {number}: amount/fee sign does not fit 记录类型 {record}")
    if not cells[COL_OUT_TRADE_NO] or not cells[COL_TRADE_NO]:
        raise ParseError(f"bank bill line {number}: order numbers are missing")
    if record == "REFUND" and not cells[COL_OUT_REFUND_NO]:
        raise ParseError(f"bank bill line {number}: a REFUND row needs 商户退款单号")
    return BillLine(
        kind=RECORD_KINDS[record],
        trade_time=trade_time,
        out_trade_no=cells[COL_OUT_TRADE_NO],
        channel_trade_no=cells[COL_TRADE_NO],
        sub_mchid=cells[COL_MCH],
        amount=abs(amount),
        fee=abs(fee),
        out_refund_no=cells[COL_OUT_REFUND_NO],
        channel_refund_no=cells[COL_REFUND_NO],
        state=cells[COL_STATE] if record == "PAY" else record,
        raw=cells,
    )


def _fen(text: str, column: str, number: int) -> int:
    if not _AMOUNT.match(text):
        raise ParseError(f"bank bill line {number}: {column} {text!r} is not yuan with two decimals")
    try:
        return yuan_to_fen(text)
    except MoneyError as exc:
        raise ParseError(f"bank bill line {number}: {exc}") from None


def _check_footer(line: str, lines: list[BillLine]) -> None:
    """bank.md §8.3 footer: ``#total,rows=N,pay_count=,pay_amount=,refund_count=,refund_amount=,fee=``."""
    fields = {}
    for part in line.split(",")[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            raise ParseError(f"bank bill footer has a malformed item {part!r}")
        fields[key.strip()] = value.strip()
    pays = [item for item in lines if item.kind == "payment"]
    backs = [item for item in lines if item.kind == "refund"]
    expected = {
        "rows": str(len(lines)),
        "pay_count": str(len(pays)),
        "pay_amount": _yuan(sum(item.amount for item in pays)),
        "refund_count": str(len(backs)),
        "refund_amount": _yuan(sum(item.amount for item in backs)),
        "fee": _yuan(sum(item.fee for item in pays) - sum(item.fee for item in backs)),
    }
    for key, value in expected.items():
        if fields.get(key) != value:
            raise ParseError(f"bank bill footer {key}={fields.get(key)!r} but the details add up to {value}")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"

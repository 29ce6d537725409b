"""Parsing Alipay's daily trade bill (channel-protocols.md B.8).

The download is a zip holding GBK-encoded CSVs: ``<account>_<yyyyMMdd>_业务明细.csv`` (one row per payment or
refund) and ``…_业务明细(汇总).csv`` (totals, ignored here). Both are framed by ``#`` lines (title, account, period,
markers, totals, export time). Id-like cells carry a trailing TAB. We read by header name, never by position,
and tolerate a UTF-8 BOM and CRLF line ends. Only ParseError escapes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from decimal import ROUND_HALF_UP, Decimal

from channels.adapters.alipay_wire import BEIJING, TIME_FORMAT
from channels.adapters.base import BillLine
from channels.adapters.errors import ParseError

MAX_MEMBER_BYTES = 64 * 1024 * 1024  # a day's detail for a busy ISV is far below this; refuse zip bombs
DETAIL_MARKER = "业务明细列表"
SUMMARY_MARKER = "汇总"
KINDS = {"交易": "payment", "退款": "refund"}
REQUIRED = ("支付宝交易号", "商户订单号", "业务类型", "订单金额（元）")
_ACCOUNT = re.compile(r"#账号：\[(\d+)\]")
_AMOUNT = re.compile(r"-?\d{1,13}(\.\d{1,6})?")


def parse_bill_zip(data: bytes) -> list[BillLine]:
    """The bill zip → its detail rows. ParseError if it is not a bill zip or a row is malformed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ParseError(f"the bill is not a zip file: {type(exc).__name__}") from exc
    with archive:
        for info in members:
            if info.is_dir() or info.file_size > MAX_MEMBER_BYTES:
                continue
            if SUMMARY_MARKER in _member_name(info):
                continue
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                raise ParseError(f"the bill zip member is unreadable: {type(exc).__name__}") from exc
            text = decode_bill_text(content)
            if DETAIL_MARKER in text and SUMMARY_MARKER not in _title(text):
                return parse_detail_text(text)
    raise ParseError("the bill zip holds no 业务明细 CSV")


def _member_name(info: zipfile.ZipInfo) -> str:
    # Alipay writes GBK names without the UTF-8 flag; zipfile then decodes them as cp437. Undo that.
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _title(text: str) -> str:
    return text.lstrip("\ufeff").split("\n", 1)[0]


def decode_bill_text(content: bytes) -> str:
    """GBK as Alipay writes it; UTF-8 (with or without BOM) as re-saved files often are."""
    if content.startswith(b"\xef\xbb\xbf"):
        try:
            return content[3:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("the bill has a UTF-8 BOM but is not UTF-8") from exc
    for encoding in ("gb18030", "utf-8"):  # gb18030 is a superset of GBK
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ParseError("the bill is neither GBK nor UTF-8 text")


def parse_detail_text(text: str) -> list[BillLine]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    match = _ACCOUNT.search(text)
    account = match.group(1) if match else ""
    sub_mchid = account[:16]  # B.8: the 16-digit PID followed by 0156
    data_lines = [line for line in text.split("\n") if line.strip() and not line.startswith("#")]
    if not data_lines:
        raise ParseError("the bill has no header row")
    try:
        rows = list(csv.reader(data_lines, strict=True))
    except csv.Error as exc:
        raise ParseError(f"the bill CSV is malformed: {exc}") from exc
    header = [_clean_header(cell) for cell in rows[0]]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ParseError(f"the bill header lacks {', '.join(missing)}")
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ParseError(f"bill row {number} has {len(row)} cells, the header has {len(header)}")
        record = {name: cell.strip().strip("\t").strip() for name, cell in zip(header, row, strict=True)}
        lines.append(_line(record, number, sub_mchid))
    return lines


def _clean_header(cell: str) -> str:
    # Some exports use ASCII parentheses; the names we look up use the full-width ones Alipay writes.
    return cell.strip().strip("\t").replace("(", "（").replace(")", "）")


def _line(record: dict[str, str], number: int, sub_mchid: str) -> BillLine:
    kind = KINDS.get(record["业务类型"])
    if kind is None:
        raise ParseError(f"bill row {number}: unknown 业务类型 {record['业务类型']!r}")
    when = record.get("完成时间") or record.get("创建时间") or ""
    try:
        trade_time = dt.datetime.strptime(when, TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise ParseError(f"bill row {number}: bad time {when!r}") from exc
    if not record["商户订单号"] or not record["支付宝交易号"]:
        raise ParseError(f"bill row {number}: missing order numbers")
    return BillLine(
        kind=kind, trade_time=trade_time, out_trade_no=record["商户订单号"], channel_trade_no=record["支付宝交易号"],
        sub_mchid=sub_mchid, amount=abs(_fen(record["订单金额（元）"], number)),
        fee=abs(_fen(record.get("服务费（元）") or "0", number)),
        out_refund_no=record.get("退款批次号/请求号", "") if kind == "refund" else "",
        state=record["业务类型"], raw=record,
    )


def _fen(text: str, number: int) -> int:
    # Plain decimal yuan, negative for refunds and charges (B.8); no exponents, NaN or Infinity.
    if not _AMOUNT.fullmatch(text):
        raise ParseError(f"bill row {number}: bad amount {text!r}")
    value = Decimal(text) * 100
    # Half-up to the fen (base.BillLine.fee), should a bill ever carry more precision than 0.01.
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))

"""Reading an uploaded batch sheet (.xlsx or .csv) into rows keyed by column, with Excel's row numbers.

Only the file's *shape* is judged here — readable, a header row naming the template's required columns, at least
one and not too many rows. Problems of shape stop the upload with one clear message; problems in a row's values are
for the dry run to list row by row.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from aggpay.errors import InvalidRequest
from merchants.batch.columns import COLUMNS_BY_KEY, REQUIRED_COLUMNS, column_for_header

HEADER_SEARCH_ROWS = 5  # a title line or two above the header row is tolerated
MIN_HEADER_MATCHES = 3
# An .xlsx is a ZIP of XML parts: refuse one that would inflate past this before parsing it (zip bombs).
MAX_XLSX_INFLATED_BYTES = 200 * 1024 * 1024
# What a damaged workbook raises while it is opened or while its rows are read (openpyxl parses rows lazily): a ZIP
# whose directory points outside the file (ValueError: negative seek), a truncated or garbled XML part
# (ElementTree's ParseError and lxml's XMLSyntaxError are SyntaxErrors), a part the workbook names but the ZIP lacks
# (KeyError), a damaged deflated part (zlib.error). The file is the clerk's to fix: one clear message naming it,
# never a server error (design §5 rule 12).
_DAMAGED = (zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError, OSError, EOFError, SyntaxError)
_UNREADABLE_XLSX = "the file is not a readable Excel workbook (.xlsx)"


@dataclass
class Sheet:
    """Rows as ``(Excel row number, {column key: raw cell value})``; blank rows are left out."""

    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def sheet_format(filename: str, content: bytes) -> str:
    """xlsx or csv, by content (a renamed file is read for what it is)."""
    if content[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InvalidRequest("this is an old Excel 97–2003 (.xls) file: save it as .xlsx (Excel workbook) and upload "
                             "it again", param="sheet")
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise InvalidRequest("the file is named .xlsx but is not an Excel workbook", param="sheet")
    return "csv"


def read_sheet(content: bytes, fmt: str, *, max_rows: int) -> Sheet:
    records = _xlsx_records(content) if fmt == "xlsx" else _csv_records(content)
    return _build(records, max_rows=max_rows)


def _xlsx_records(content: bytes):
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except _DAMAGED:
        raise InvalidRequest(_UNREADABLE_XLSX, param="sheet")
    if inflated > MAX_XLSX_INFLATED_BYTES:
        raise InvalidRequest("the workbook unpacks to more than 200 MB; split the batch into smaller files",
                             param="sheet")
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (InvalidFileException, *_DAMAGED):
        raise InvalidRequest(_UNREADABLE_XLSX, param="sheet")
    try:
        # The merchants sheet is the first one whose top rows hold the template's headers — not necessarily the
        # active one (a clerk may save the workbook while looking at the instructions).
        for sheet in book.worksheets:
            head = [list(row) for row in sheet.iter_rows(min_row=1, max_row=HEADER_SEARCH_ROWS, values_only=True)]
            if _header_index(head) is not None:
                for number, row in enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1):
                    yield number, list(row)
                return
        yield from ()
    except _DAMAGED:
        raise InvalidRequest(_UNREADABLE_XLSX, param="sheet")
    finally:
        book.close()


def _csv_records(content: bytes):
    # Excel on a Chinese Windows saves "CSV" in GBK; everything else sends UTF-8 (with or without a BOM).
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            decoded = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise InvalidRequest("the CSV file is neither UTF-8 nor GBK text", param="sheet")
    first_line = decoded.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    try:
        yield from enumerate(csv.reader(io.StringIO(decoded, newline=""), delimiter=delimiter), start=1)
    except csv.Error as exc:
        raise InvalidRequest(f"the CSV file cannot be read: {exc}", param="sheet")


def _header_index(head: list[list]) -> int | None:
    for index, cells in enumerate(head[:HEADER_SEARCH_ROWS]):
        if sum(1 for cell in cells if column_for_header(cell)) >= MIN_HEADER_MATCHES:
            return index
    return None


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _build(records, *, max_rows: int) -> Sheet:
    head: list[tuple[int, list]] = []
    records = iter(records)
    for number, row in records:
        head.append((number, row))
        if len(head) == HEADER_SEARCH_ROWS:
            break
    index = _header_index([row for _, row in head])
    if index is None:
        raise InvalidRequest("no header row found: the first rows must hold the template's column headers "
                             "(download the template)", param="sheet")
    header_number, header = head[index]
    positions: dict[str, int] = {}
    warnings: list[str] = []
    for position, cell in enumerate(header):
        if _blank(cell):
            continue
        key = column_for_header(cell)
        if key is None:
            warnings.append(f"column {_column_letter(position)} “{str(cell).strip()}” is not in the template and "
                            "was ignored")
            continue
        if key in positions:
            raise InvalidRequest(f"the column “{COLUMNS_BY_KEY[key].label}” appears twice (columns "
                                 f"{_column_letter(positions[key])} and {_column_letter(position)})", param="sheet")
        positions[key] = position
    missing = [COLUMNS_BY_KEY[key].label for key in REQUIRED_COLUMNS if key not in positions]
    if missing:
        raise InvalidRequest("the sheet lacks these template columns: " + ", ".join(missing), param="sheet")

    sheet = Sheet(columns=list(positions), warnings=warnings)
    body = [(n, r) for n, r in head[index + 1:]]
    for number, row in _chain(body, records):
        values = {key: (row[position] if position < len(row) else None) for key, position in positions.items()}
        if all(_blank(value) for value in values.values()):
            continue
        sheet.rows.append((number, values))
        if len(sheet.rows) > max_rows:
            raise InvalidRequest(f"the sheet has more than {max_rows} merchant rows; split it into several files",
                                 param="sheet")
    if not sheet.rows:
        raise InvalidRequest(f"the sheet has no merchant rows under its header (row {header_number})", param="sheet")
    return sheet


def _chain(first, rest):
    yield from first
    yield from rest

"""Turning spreadsheet cells into the values of a record, and records back into cells.

These functions only *map* (trim, split lists, accept the usual ways of writing a date or a choice); they never
judge. Whether a value is acceptable is decided by ``merchants.services.record.validate_record`` alone, so a clerk
gets the same answer from the sheet, the form and the partner API. The one refusal here is a number Excel has
already damaged: past 15 significant digits a numeric cell has lost digits, and guessing them would onboard the
merchant with a wrong ID or bank account number.

Pure Python (samples/make_samples.py uses the ``*_text`` writers without Django).
"""

from __future__ import annotations

import datetime as dt
import re

from merchants.batch.columns import SCENARIO_TYPES

LONG_TERM = "长期"
_LONG_TERM_WORDS = {"长期", "long_term", "long-term", "longterm", "永久", "长期有效"}
# 2020-1-1, 2020/1/1, 2020.1.1 (one separator throughout), 2020年1月1日, 20200101: the ways a clerk writes a date.
# Anything else goes to validate_record as written, which refuses it naming the column's field.
_DATE_FORMS = (r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})", r"(\d{4})(年)(\d{1,2})月(\d{1,2})日?",
               r"(\d{4})()(\d{2})(\d{2})")
_LIST_SPLIT = re.compile(r"[,，;；、\s]+")
_SCENARIO_SPLIT = re.compile(r"[;；\n]+")
_EXCEL_DIGITS = 15  # IEEE doubles keep 15 significant decimal digits; Excel shows and stores no more
# What Excel shows (and saves, in .xlsx and .csv alike) in a cell whose formula failed — a VLOOKUP that found nothing,
# a reference to a deleted sheet. Never a value: read as text, "#N/A" would pass as a merchant's name or address.
EXCEL_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
                          "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"})


class CellError(ValueError):
    """A cell whose value cannot be read as written (import-export reports ValueErrors per field)."""


def text(value) -> str | None:
    """A cell as trimmed text; None when empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise CellError("the cell holds no number Excel can show")
        if value.is_integer():
            if abs(value) >= 10 ** _EXCEL_DIGITS:
                raise CellError("Excel stored this long number with only 15 significant digits, so its last digits "
                                "are lost: format the column as text and type the number again")
            return str(int(value))
        return repr(value)
    result = str(value).strip()
    if result.upper() in EXCEL_ERRORS:
        raise CellError(f"the cell shows Excel's error {result.upper()}: its formula failed, so it holds no value; "
                        "fix the formula or type the value")
    return result or None


def date_value(value):
    """A date cell: a date, None for empty or long-term (长期), or the text as written for validate_record to judge."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raw = text(value)
    if raw is None or raw.lower() in _LONG_TERM_WORDS:
        return None
    for form in _DATE_FORMS:
        match = re.fullmatch(form, raw)
        if match:
            try:
                return dt.date(int(match[1]), int(match[3]), int(match[4]))
            except ValueError:
                return raw
    return raw


def choice(value, aliases: dict[str, str]):
    """A code from its code or a Chinese word for it; anything else as written (validate_record names the codes)."""
    raw = text(value)
    if raw is None:
        return None
    return aliases.get(raw, aliases.get(raw.lower(), raw))


def products(value) -> list[str] | None:
    raw = text(value)
    if raw is None:
        return None
    return [item for item in _LIST_SPLIT.split(raw) if item]


def scenarios(value) -> list[dict] | None:
    """``store:龙井路店;website:官网:https://tea.example.com;mini_program:点单:wx1234`` → scenario objects.

    The third part is the website's URL or the app/mini program/official account appid (the URL may itself contain
    colons, so only the first two separate fields).
    """
    raw = text(value)
    if raw is None:
        return None
    items = []
    for chunk in _SCENARIO_SPLIT.split(raw):
        chunk = chunk.strip()
        if not chunk:
            continue
        parts = [part.strip() for part in re.split(r"[:：]", chunk, maxsplit=2)]
        kind = SCENARIO_TYPES.get(parts[0], SCENARIO_TYPES.get(parts[0].lower(), parts[0]))
        item = {"type": kind}
        if len(parts) > 1 and parts[1]:
            item["name"] = parts[1]
        if len(parts) > 2 and parts[2]:
            item["url" if kind == "website" else "appid"] = parts[2]
        items.append(item)
    return items


# --- writing cells (template examples, the sample batch, exports) ------------------------------------------------


def products_text(items) -> str:
    return ", ".join(items or [])


def scenarios_text(items) -> str:
    out = []
    for item in items or []:
        parts = [item.get("type", ""), item.get("name", "")]
        extra = item.get("url") or item.get("appid")
        if extra:
            parts.append(extra)
        out.append(":".join(parts))
    return ";".join(out)


def date_text(value, *, empty: str = "") -> str:
    """A date as the sheet writes it; ``empty=LONG_TERM`` for the "valid until" columns."""
    if value in (None, ""):
        return empty
    return value.isoformat() if isinstance(value, dt.date) else str(value)

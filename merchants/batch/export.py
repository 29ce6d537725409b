"""Sheets we hand out (batch rows, the merchant list) are safe to open in Excel: a text cell that starts with
= + - @ TAB or CR would be run as a formula (CSV/formula injection), so it gets a leading single quote, as OWASP's
"CSV Injection" guidance recommends. The text that arrives in a sheet is typed by merchants and partners, so it is
never trusted."""

from __future__ import annotations

import tablib

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def safe_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def safe_dataset(dataset: tablib.Dataset) -> tablib.Dataset:
    safe = tablib.Dataset(headers=[safe_cell(header) for header in dataset.headers or []], title=dataset.title)
    for row in dataset:
        safe.append([safe_cell(value) for value in row])
    return safe


def render(dataset: tablib.Dataset, fmt: str) -> bytes:
    """The dataset as file bytes, every cell passed through ``safe_cell`` first."""
    safe = safe_dataset(dataset)
    if fmt == "xlsx":
        return safe.export("xlsx")
    if fmt == "csv":
        return ("\ufeff" + safe.export("csv")).encode("utf-8")  # BOM: Excel reads the Chinese headers as UTF-8
    raise ValueError(f"unknown export format {fmt!r}")

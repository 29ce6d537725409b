"""Template filters of the staff pages that turn stored values into what a person reads: audit rows' data as
"key: old → new" lines, sums of money in yuan, the refund in progress of a trade, and a trade's routing candidates
by name.

Read-only formatting; the data comes from the views (or, for routing, one read helper in ``trades.workbench``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import template

from aggpay.money import fen_text_as_yuan, format_yuan

register = template.Library()

# Keys whose values never reach a page even if a caller put them in an audit row by mistake (design §5 rule 10).
# The channels' redaction list plus our own secret names; writers already mask, this is the last line.
_SECRET_WORDS = re.compile(r"secret|password|passwd|private_key|api_?v3_key|token|signature|id_number|account_number"
                           r"|phone|mobile|email", re.IGNORECASE)
_LONG_TEXT = 300
# What the history diff writes instead of a secret's old and new values (channels.services.history.CHANGED).
_CHANGED = "(changed)"


# Audit-row data keys whose values are fen, shown in yuan: the trade timeline's (trades.workbench.FEN_KEYS: a refund
# mismatch's "reported", a late payment's "reported_amount", a reverse's "held") and a refund's "refund_amount".
_FEN_KEYS = frozenset({"amount", "refund_amount", "reported", "reported_amount", "held"})


def _hidden(key: str) -> bool:
    from channels.adapters.http import REDACT_KEYS

    key = key.rsplit(".", 1)[-1].lower()
    return key in REDACT_KEYS or bool(_SECRET_WORDS.search(key))


def _text(key: str, value: Any) -> str:
    if _hidden(key) and value not in (None, "", _CHANGED):
        return "***"
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if key in _FEN_KEYS and isinstance(value, int):
        return f"{format_yuan(value)} yuan"  # audit rows keep fen; people read yuan
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(key, item) for item in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(str(k), v)}" for k, v in value.items()) or "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _LONG_TEXT else text[:_LONG_TEXT] + "…"


def _pair(key: str, old: Any, new: Any) -> str:
    return f"{_text(key, old)} → {_text(key, new)}"


@register.filter
def audit_target(text: str) -> str:
    """An audit row's ``target_repr`` as staff read it: the amounts an order's or refund's label gives in fen ("T100
    50 fen (pending)") in yuan, as the row's details and every other staff page show them."""
    return fen_text_as_yuan(text)


@register.filter
def audit_lines(data: Any) -> list[tuple[str, str]]:
    """An audit row's ``data`` as (label, text) lines: a state change ``from``/``to`` as one "from → to" line, a
    config diff (``changes``: {field: {old, new}}) as one line per field, everything else as key: value. Secret and
    PII keys show ``***``."""
    if not data:
        return []
    if not isinstance(data, dict):
        return [("data", _text("data", data))]
    data = dict(data)
    lines: list[tuple[str, str]] = []
    if "from" in data and "to" in data:
        lines.append(("change", _pair("", data.pop("from"), data.pop("to"))))
    for key, value in data.items():
        if key == "changes" and isinstance(value, dict):
            for name, change in value.items():
                if isinstance(change, dict) and set(change) == {"old", "new"}:
                    lines.append((name, _pair(name, change["old"], change["new"])))
                else:
                    lines.append((name, _text(name, change)))
            continue
        lines.append((str(key), _text(str(key), value)))
    return lines


@register.filter
def yuan(fen: int) -> str:
    """Fen as a sum of money with its currency, the sign first as people write it: -24812 → "-¥248.12", not
    "¥-248.12" (the finance page's summaries and chart give money back as negative sums)."""
    text = format_yuan(fen)
    return f"-¥{text[1:]}" if fen < 0 else f"¥{text}"


@register.filter
def refund_in_progress(order) -> str:
    """Yuan reserved by refunds not yet finished (pending at the channel), or "" when there are none: the stored
    ``refund_reserved`` also counts the succeeded ones, which are already in ``refunded_amount``."""
    pending = (order.refund_reserved or 0) - (order.refunded_amount or 0)
    return format_yuan(pending) if pending > 0 else ""


@register.filter
def routing_rows(routing) -> list[dict]:
    """A trade's routing candidates with the channel account's name and the contract as people know it."""
    from trades.workbench import routing_candidates

    return routing_candidates(routing)

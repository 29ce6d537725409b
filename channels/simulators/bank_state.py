"""Shared pieces of the bank simulator: its store namespaces, per-account settings, the FAIL exception and the
field checks that produce bank.md §12's PARAM_ERROR messages. Every namespace carries the org_no, so two bank
accounts on one simulator (the demo's Bank A and Bank B) never see each other's trades (bank.md §13)."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ACCOUNTS = "bank:accounts"  # org_no → account (keys, settings)
CODES = "bank:codes"  # qr token / bank trade_no → {org_no, out_trade_no}; both are globally unique
APPLY_IDS = "bank:apply_ids"  # apply_id → {org_no, apply_no}
MODIFY_IDS = "bank:modify_ids"  # modify_id → {org_no, modify_no}
OAUTH = "bank:oauth"  # userAuthCode → {user_id, expires, used}
BILL_FILES = "bank:bill_files"  # download token → {content, expires}
OUTBOX = "bank:outbox"  # the Notifier's namespace


def ns(topic: str, org_no: str) -> str:
    """Per-org namespaces: trades, trade_nos, refunds, refund_nos, merchants, applies, files, modifies, nonces."""
    return f"bank:{topic}:{org_no}"


# bank.md §13.3: what an account does by itself; POST /bank/_control/accounts/<org_no>/settings changes it.
DEFAULT_SETTINGS: dict[str, Any] = {
    "auto_review": {"delay_seconds": 10, "outcome": "approve"},  # None: applies wait for /_control
    "userpaying_seconds": 5,  # auth codes ending 5/6 resolve after this long (or at /_payer/pay)
    "refund_seconds": 2,  # PROCESSING → refund_outcome after this long
    "refund_outcome": "SUCCESS",  # SUCCESS | ABNORMAL | CLOSED | FAIL
    "settlement_seconds": 5,
    "settlement_outcome": "SUCCESS",  # SUCCESS | FAIL
    "intraday_bills": False,  # True: serve today's (partial) bill instead of BILL_NOT_READY
    "fee_rate": "0.0025",  # the bank's cost to us, written into the bill's 手续费
}


def settings_of(account: dict) -> dict[str, Any]:
    return {**DEFAULT_SETTINGS, **(account.get("settings") or {})}


class BankFail(Exception):
    """A business answer: ``code`` FAIL (or UNKNOWN) with ``sub_code``/``sub_msg`` (bank.md §5.2)."""

    def __init__(self, sub_code: str, sub_msg: str = "", *, code: str = "FAIL", extra: dict | None = None):
        super().__init__(f"{sub_code}: {sub_msg}")
        self.sub_code = sub_code
        self.sub_msg = sub_msg or sub_code
        self.code = code
        self.extra = extra or {}


OUT_NO = re.compile(r"^[0-9A-Za-z_\-]{6,32}$")
URL = re.compile(r"^https?://[^\s]+$")
DATE8 = re.compile(r"^\d{8}$")
TIME14 = re.compile(r"^\d{14}$")


def text(msg: dict, name: str, *, required: bool = True, pattern: re.Pattern | None = None,
         max_len: int = 256, choices: tuple[str, ...] | None = None) -> str:
    value = msg.get(name)
    if value is None or value == "":
        if required:
            raise BankFail("PARAM_ERROR", f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise BankFail("PARAM_ERROR", f"{name} must be a string")
    if len(value) > max_len:
        raise BankFail("PARAM_ERROR", f"{name} is longer than {max_len}")
    if pattern is not None and not pattern.match(value):
        raise BankFail("PARAM_ERROR", f"{name} has an invalid format")
    if choices is not None and value not in choices:
        raise BankFail("PARAM_ERROR", f"{name} must be one of {', '.join(choices)}")
    return value


def amount(msg: dict, name: str) -> int:
    value = msg.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BankFail("PARAM_ERROR", f"{name} must be an integer number of fen")
    if not 1 <= value <= 10_000_000_000:
        raise BankFail("PARAM_ERROR", f"{name} must be between 1 and 10000000000 fen")
    return value


def fee_of(total: int, rate: str) -> int:
    return int((Decimal(total) * Decimal(rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prorated(part: int, whole: int, value: int) -> int:
    return int((Decimal(value) * part / whole).quantize(Decimal(1), rounding=ROUND_HALF_UP))

"""Small conversions between Alipay's wire values and ours (channel-protocols.md B.1, B.5).

Alipay writes amounts as yuan strings with 2 decimals and times as ``yyyy-MM-dd HH:mm:ss`` in Beijing time.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from aggpay.money import MoneyError, yuan_to_fen
from channels.adapters.base import TradeState

BEIJING = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")

# B.5 trade_status → ours. TRADE_CLOSED is refined by ``trade_state`` (a paid-then-refunded trade is a success).
TRADE_STATES = {
    "WAIT_BUYER_PAY": TradeState.PENDING,
    "TRADE_SUCCESS": TradeState.SUCCEEDED,
    "TRADE_FINISHED": TradeState.SUCCEEDED,
    "TRADE_CLOSED": TradeState.CLOSED,
}


def trade_state(trade_status: str, *, paid: bool) -> str:
    """B.5 trade_status → TradeState. ``paid``: the answer shows a payment time (send_pay_date/gmt_payment).

    TRADE_CLOSED also means "paid, then fully refunded" (B.5 table): like WeChat's REFUND that stays a success,
    refunds being tracked on their own.
    """
    state = TRADE_STATES.get(trade_status)
    if state is None:
        raise ValueError(f"unknown trade_status {trade_status!r}")
    if state == TradeState.CLOSED and paid:
        return TradeState.SUCCEEDED
    return state


def fen_to_yuan(fen: int) -> str:
    """12345 → '123.45' (B.5: amounts are yuan strings with two decimals)."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise ValueError(f"amount must be a non-negative integer of fen, got {fen!r}")
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_or_none(text) -> int | None:
    """An amount from an Alipay answer, or None if absent; ValueError if present but not an amount."""
    if text in (None, ""):
        return None
    # B.5: plain yuan with at most 2 decimals. Anything else (exponents, Infinity, NaN, signs) is malformed.
    if not isinstance(text, str) or not AMOUNT.fullmatch(text):
        raise ValueError(f"{text!r} is not an amount in yuan")
    try:
        return yuan_to_fen(text)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


def beijing_now() -> str:
    return dt.datetime.now(BEIJING).strftime(TIME_FORMAT)


def beijing_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_time(text) -> dt.datetime | None:
    """``2024-05-01 12:00:00`` (Beijing) → aware datetime; None if absent; ValueError if malformed."""
    if text in (None, ""):
        return None
    text = str(text)
    # Refund notifies write gmt_refund with milliseconds (``2019-09-16 10:56:48.123``) (B.4).
    layout = TIME_FORMAT + ".%f" if "." in text else TIME_FORMAT
    return dt.datetime.strptime(text, layout).replace(tzinfo=BEIJING)

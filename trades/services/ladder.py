"""When to ask the channel again about an outcome we do not know (design §5 rule 2).

Barcode (payment code) orders: every 5 s for 1 min. Everything else: 1 min after creation, then every 10 min until
1 h, then hourly until 24 h; after that the order goes to a manual queue.
"""

from __future__ import annotations

import datetime as dt

BARCODE_STEP = dt.timedelta(seconds=5)
BARCODE_SPAN = dt.timedelta(minutes=1)
FIRST = dt.timedelta(minutes=1)
EARLY_STEP, EARLY_SPAN = dt.timedelta(minutes=10), dt.timedelta(hours=1)
LATE_STEP, LATE_SPAN = dt.timedelta(hours=1), dt.timedelta(hours=24)


def next_query_at(*, created_at: dt.datetime, now: dt.datetime, barcode: bool) -> dt.datetime | None:
    """The next time to query, or None when the ladder is exhausted (manual queue)."""
    age = now - created_at
    if barcode:
        step, span = BARCODE_STEP, BARCODE_SPAN
        if age >= span:
            return None
        return now + step
    if age < FIRST:
        return created_at + FIRST
    if age < EARLY_SPAN:
        return min(now + EARLY_STEP, created_at + EARLY_SPAN)
    if age < LATE_SPAN:
        return min(now + LATE_STEP, created_at + LATE_SPAN)
    return None


def ladder_start(*, created_at: dt.datetime, expires_at: dt.datetime, now: dt.datetime,
                 barcode: bool) -> dt.datetime:
    """When an order's ladder counts from: its creation — or, when a close the channel did not answer moved its
    ``expires_at`` (to the close's time, now past) beyond the end of that ladder (the order was in the manual
    queue: trades.services.orders._close_later), the close. An order's own expiry never lies that far
    (``expire_seconds`` ≤ 86400 = LATE_SPAN, merchant-api.md "Orders"), so only such a close does. Payment codes
    keep theirs (they end in a reverse)."""
    if not barcode and created_at + LATE_SPAN < expires_at <= now:
        return expires_at
    return created_at


def close_retry_waits(*, expires_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether a close the channel did not answer waits for a rung of a ladder counted from the order's expiry (the
    close's time: the expiry sweeper's, or the one a merchant's close sets) — 1 min, every 10 min to 1 h, hourly to
    24 h, then the manual queue (design §5 rule 2) — rather than for the expiry sweeper's next run. Within the
    first minute that run, a minute away at most, is the ladder's first rung."""
    return now - expires_at >= FIRST

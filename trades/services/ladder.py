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


# A payment code closed because its reverse heard "no such trade" (trades.services.orders._reverse_send) — its create
# had no definite answer, so it may still reach the channel and charge the payer — is asked about again this long
# after the close, then left alone. Design §5 rule 3: a success after a local close is never lost; WeChat Pay's
# codepay takes no notify_url and calls nobody back (channel-protocols.md A.7), so only a query finds it. Dense
# first, as the ladder of rule 2: a create held up in transit lands within seconds to a minute or two, and a payer
# then confirming (USERPAYING) takes minutes — +1 and +5 min find nearly all; +30 min and +2 h (the default life of
# an order, merchant-api.md "Orders": 7200 s) catch a channel that was itself backed up. Four queries per such
# order, then the watch ends; anything later still shows on the day's channel bill, reconciled each morning
# (design §1 "Money").
CLOSED_WATCH = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30), dt.timedelta(hours=2))


def next_watch_at(*, closed_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The next follow-up query of such a closed payment code (CLOSED_WATCH after ``closed_at``) still to come, or
    None when the watch is over. A sweep that ran late skips the follow-ups it missed, never the last one's end."""
    for wait in CLOSED_WATCH:
        if closed_at + wait > now:
            return closed_at + wait
    return None

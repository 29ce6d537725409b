"""Staff lists filtered by calendar days: the staff's local days (TIME_ZONE, Asia/Shanghai), not UTC ones, both ends
inclusive. One place for it, so every list treats the last day a date field accepts the same way."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone


def day_start(day: dt.date) -> dt.datetime:
    """Midnight at the start of ``day``, local time."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def on_days(queryset: QuerySet, field: str, *, date_from: dt.date | None = None,
            date_to: dt.date | None = None) -> QuerySet:
    """``queryset`` narrowed to the rows whose ``field`` (a datetime) falls on ``date_from`` … ``date_to``. The end
    is "before the next day starts"; the last day there is (9999-12-31, which a date field accepts) has no next day
    — adding one was an OverflowError, a 500 — so it sets no bound. Nor does the first day there is (0001-01-01):
    its local midnight is in the year 0 in UTC, another OverflowError, and nothing is earlier anyway."""
    if date_from and date_from > dt.date.min:
        queryset = queryset.filter(**{f"{field}__gte": day_start(date_from)})
    if date_to and date_to < dt.date.max:
        queryset = queryset.filter(**{f"{field}__lt": day_start(date_to + dt.timedelta(days=1))})
    return queryset

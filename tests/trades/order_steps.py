"""Steps the order-ladder tests share: bring the ladder's next rung forward, and read what the order went through."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from trades.models import ChannelCall, Event, Order


def rung_due(order_id: str) -> None:
    """The ladder's next rung is due now (its wait skipped)."""
    Order.objects.filter(pk=order_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))


def call_outcomes(order_id: str, verb: str) -> list[str]:
    """The outcomes of the order's channel calls of ``verb``, oldest first."""
    return list(ChannelCall.objects.filter(order_id=order_id, verb=verb).order_by("id")
                .values_list("outcome", flat=True))


def event_count(order_id: str, event_type: str) -> int:
    return Event.objects.filter(object_id=order_id, type=event_type).count()

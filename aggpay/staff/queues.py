"""What the home page shows per section: queues with real counts, only where the data exists today.

A section with nothing to count returns an empty list and the home page says "no items" — later issues add
their queues here (applications awaiting review, complaints near their deadline, discrepancies...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog


@dataclass(frozen=True)
class Queue:
    label: str
    count: int
    url: str
    tone: str = ""  # a badge colour hint: "", "warn", "bad", "ok"


def start_of_today():
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


def admin_queues(user) -> list[Queue]:
    queues = [Queue("Staff users", get_user_model().objects.filter(is_staff=True, is_active=True).count(),
                    reverse("staff:admin"))]
    if user.has_perm("aggpay.view_audit"):
        today = AuditLog.objects.filter(created_at__gte=start_of_today()).count()
        audit_url = f"{reverse('staff:audit')}?{urlencode({'date_from': timezone.localdate().isoformat()})}"
        queues.append(Queue("Audit entries today", today, audit_url))
    return queues


def onboarding_queues(user) -> list:
    from merchants import workbench

    return workbench.clerk_home_queues()


def risk_queues(user) -> list:
    from merchants import workbench

    return [*workbench.risk_home_queues(), *channel_risk_queues(user)]


def channel_risk_queues(user) -> list[Queue]:
    """The channels' risk notices about our sub-merchants no risk officer has handled yet (risk.notice_queue): the
    tile opens the queue on exactly those."""
    if not user.has_perm("risk.view_channelrisknotice"):
        return []
    from risk import notice_queue

    n = notice_queue.new_count()
    return [Queue("Channel risk notices to handle", n, notice_queue.queue_url(), "bad" if n else "")]


def trade_queues(user) -> list:
    """Support and operations work the trade queues (issue 5 "Staff pages"); counted only for those who may open
    them (trades.view_order)."""
    if not user.has_perm("trades.view_order"):
        return []
    from trades import workbench

    return workbench.home_queues()


def operations_queues(user) -> list:
    """Operations works the trade queues, and the callbacks its channel accounts received and did not process
    (channels.unprocessed): a broken account answers every notice "try again" until someone looks. The tile counts
    the open ones, what the queue opens on: marking them handled there brings it down."""
    queues = list(trade_queues(user))
    if user.has_perm("channels.view_channelcallback"):
        from channels import unprocessed

        n = unprocessed.open_count()
        queues.append(Queue("Callbacks not processed, open", n, unprocessed.queue_url(state="open"),
                            "bad" if n else ""))
    return queues


QUEUES = {
    "support": trade_queues,
    "operations": operations_queues,
    "onboarding": onboarding_queues,
    "risk": risk_queues,
    "admin": admin_queues,
}


def section_queues(slug: str, user) -> list[Queue]:
    producer = QUEUES.get(slug)
    return producer(user) if producer else []

"""Cross-cutting Celery tasks."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone


@shared_task(acks_late=True, ignore_result=True)
def heartbeat() -> str:
    """Record that beat and a worker are alive; /healthz shows the last beat time."""
    now = timezone.now().isoformat()
    cache.set("aggpay:heartbeat", now, timeout=3600)
    return now

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


@shared_task(acks_late=True, ignore_result=True)
def record_marker(key: str) -> None:
    """Test support: leave ``key`` in the cache so a test can see that a worker ran this task.

    tests/aggpay/test_celery_worker.py enqueues it with ``delay_on_commit`` to prove design §5 rule 8.
    """
    cache.set(key, timezone.now().isoformat(), timeout=600)

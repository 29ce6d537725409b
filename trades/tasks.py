"""Celery tasks for trades: thin — ids in, a service call (style.md §11, design §9).

Deliveries run on the ``notify`` queue (settings.CELERY_TASK_ROUTES ``trades.tasks.deliver_*``). Their retry policy
is the contract's ladder, kept in the database by ``trades.services.events`` and dispatched by ``sweep_deliveries``:
a task that dies or is lost is replaced by the sweeper, never retried blindly.
"""

from __future__ import annotations

from celery import shared_task

from trades.services import events


@shared_task(acks_late=True, ignore_result=True)
def deliver_event(delivery_id: int) -> None:
    """POST one due delivery. Idempotent: an acknowledged, exhausted, in-flight or not-yet-due delivery is left
    alone, so duplicates (redelivery after a lost worker, sweeper + original enqueue) send nothing twice at once."""
    events.delivery_attempt(delivery_id=delivery_id)


@shared_task(acks_late=True, ignore_result=True)
def sweep_deliveries() -> int:
    """Beat, every minute: enqueue due deliveries (retries, broker outages, workers that died) — all of them, 500 at
    a time, unless that takes more than the sweep's budget (45 s, inside the beat's minute); the next sweep goes on
    from the oldest still due. Returns how many were enqueued."""
    return len(events.deliveries_due())


# Orders and refunds: their tasks live beside their services; importing them here registers them with Celery.
from trades.tasks_orders import barcode_step, refund_late_payment, sync_due_orders  # noqa: E402,F401

"""Celery tasks for orders and refunds (thin: ids in, a service call, their own retry policy — style.md §11).
Imported by trades/tasks.py so Celery's autodiscovery registers them."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def barcode_step(order_id: str) -> None:
    from trades.services.orders import order_barcode_step

    order_barcode_step(order_id=order_id)


@shared_task(acks_late=True, ignore_result=True)
def sync_due_orders() -> int:
    """Beat, every minute: query orders and refunds whose outcome is unknown, expire overdue orders, and follow the
    refunds of late payments until the channel says how they ended.

    Each item is guarded: whatever one order or refund raises (a channel refusal, an answer that does not match —
    refund_apply_result's ValueError for another amount — a bug) is logged and the sweep goes on, so one bad item
    never holds up the others; it is tried again when it is next due."""
    from trades.services.late import late_payment_refund_sync, late_payments_refunding
    from trades.services.orders import order_barcode_step, order_expire, orders_due_for_query, orders_expired
    from trades.services.refunds import refund_sync, refunds_due_for_query

    due = orders_due_for_query()
    for order_id in due:
        _guarded("query order", order_id, order_barcode_step, order_id=order_id)
    for refund_id in refunds_due_for_query():
        _guarded("query refund", refund_id, refund_sync, refund_id=refund_id)
    for order_id in orders_expired():
        _guarded("expire order", order_id, order_expire, order_id=order_id)
    # Late payments whose refund is not settled yet (processing, unanswered, or never sent: design §5 rule 3).
    for late_id in late_payments_refunding():
        _guarded("query late payment refund", late_id, late_payment_refund_sync, late_payment_id=late_id)
    # ... and those whose automatic refund was never enqueued (the broker was down at commit: design §5 rule 8).
    _enqueue_lost_late_refunds()
    return len(due)


def _enqueue_lost_late_refunds() -> None:
    """Enqueue the automatic refund of late payments it was lost for (late_payments_never_refunded). Enqueued, not
    run here: the refund calls the channel, and a sweep must not wait on it. Running twice refunds once
    (late_payment_refund_automatically). A broker still down stops this part of the sweep (the next one tries)."""
    from kombu.exceptions import OperationalError

    from trades.services.late import late_payments_never_refunded

    for late_id in late_payments_never_refunded():
        try:
            refund_late_payment.delay(late_id)
        except OperationalError:
            logger.warning("sweeper: the broker is unreachable; late payment refunds wait for the next sweep")
            return
        except Exception:  # noqa: BLE001 - as _guarded: one item never stops the sweep
            logger.exception("sweeper: refund of late payment %s failed; going on with the others", late_id)


def _guarded(what: str, item_id: str, service, **kwargs) -> None:
    try:
        service(**kwargs)
    except Exception:  # noqa: BLE001 - a sweeper outlives any one item (see sync_due_orders)
        logger.exception("sweeper: %s %s failed; going on with the others", what, item_id)


@shared_task(acks_late=True, ignore_result=True)
def refund_late_payment(late_payment_id: int) -> None:
    """The automatic refund of a late payment (design §5 rule 3): enqueued when it is recorded, and by the sweeper
    when that enqueue was lost. Refunds only one never refunded, so two enqueues refund once."""
    from trades.services.late import late_payment_refund_automatically

    late_payment_refund_automatically(late_payment_id=late_payment_id)

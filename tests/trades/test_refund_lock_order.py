"""Who locks what first: every path that locks both an order and one of its refunds takes the order first — as a
refund create or retry does — so a channel's answer about a refund crossing a retry (or a new refund) of the same
order waits its turn instead of deadlocking (PostgreSQL would abort one of them with a 500 and a retry).

Staged on two PostgreSQL connections: "the retry" holds the order's lock and then writes the refund, the way
refund_create does; the channel's answer arrives in between.
"""

from __future__ import annotations

import threading
import time

from django.db import connection, transaction

from channels.adapters.base import RefundResult
from tests.trades.bank_flow import unreachable_bank_account
from tests.trades.test_refund_audit_races import _paid_order, _pending_refunds
from trades.models import Order, Refund
from trades.services.refunds import refund_apply_result


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def test_an_answer_about_a_refund_waits_for_a_retry_holding_its_order_instead_of_deadlocking(transactional_db,
                                                                                         tea_house_app):
    account = unreachable_bank_account("bank-lock-order")
    order = _paid_order(tea_house_app, account, amount=1_000, merchant_rate="0.0038", cost_rate="0.0023",
                        rebate_rate="0")
    (refund,) = _pending_refunds(order, [400])
    holding, errors, outcome = threading.Event(), [], {}

    def retry_like():  # refund_create's order of locks: the order, then the refund
        try:
            with transaction.atomic():
                Order.objects.select_for_update(no_key=True).get(pk=order.pk)
                holding.set()
                deadline = time.monotonic() + 10
                while not _someone_waits_for_a_lock() and time.monotonic() < deadline:
                    time.sleep(0.05)  # the answer has arrived and is waiting for a lock
                Refund.objects.filter(pk=refund.pk).update(reason="retry touched it")
        except Exception as exc:  # a deadlock aborts one side
            errors.append(exc)
        finally:
            connection.close()

    def answer():
        holding.wait(timeout=10)
        try:
            outcome["state"] = refund_apply_result(
                refund_id=refund.pk, result=RefundResult(state="succeeded", out_refund_no=refund.pk, amount=400)).state
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=retry_like), threading.Thread(target=answer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert outcome == {"state": "succeeded"}
    assert Order.objects.get(pk=order.pk).refunded_amount == 400

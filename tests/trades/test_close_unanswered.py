"""An expiry's close the channel does not answer (design §5 rules 2–3), over signed HTTP against the simulators:
the expiry's query is answered (the trade is still unpaid) but the close itself times out or gets a 5xx. The close
is tried again on the ladder counted from the expiry — not at every run of the expiry sweeper — and after the last
rung the order waits in the manual queue, where support sees it. A close answered on a later rung still closes the
order (``order.closed``), and a payment the ladder's query finds still makes it paid. A close answered "paid" while
the query says "not paid" is not settled either, and takes the same ladder.

The sweeper runs once a minute; its runs here follow each other at once, and the ladder's waits are skipped by
moving the order's times (no timed waits).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.trades.order_steps import call_outcomes as _calls
from tests.trades.order_steps import event_count as _events
from tests.trades.order_steps import rung_due as _due
from trades.models import LatePayment, Order
from trades.tasks_orders import sync_due_orders
from trades.workbench import queue_reason, unknown_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _create(shop, out_trade_no):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    return order


def _expired(order_id, ago: dt.timedelta):
    """The order expired ``ago`` (created two hours before that), its close not tried yet."""
    expires = timezone.now() - ago
    Order.objects.filter(pk=order_id).update(created_at=expires - dt.timedelta(hours=2), expires_at=expires)


def _closes_unanswered(shop, order_id, fault="http_500", times=20):
    """The channel answers the order's queries but not its close (only that path, only this order)."""
    shop.sim("wechatpay", "/_control/faults", fault=fault, times=times,
             match={"path": f"out-trade-no/{order_id}/close$"})


@pytest.mark.parametrize("fault", ["http_500", "http_503"])
def test_it_tries_an_unanswered_close_again_on_the_ladder_not_at_every_expiry_sweep(shop, fault):
    order = _create(shop, f"CU00000{1 if fault == 'http_500' else 2}")
    _expired(order["id"], dt.timedelta(minutes=2))
    _closes_unanswered(shop, order["id"], fault=fault)

    for _ in range(5):  # five runs of the sweeper, a minute apart, before the ladder's next rung (10 min)
        sync_due_orders()

    assert _calls(order["id"], "close") == ["unknown"]
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown" and stored.next_query_at > timezone.now()
    assert _events(order["id"], "order.closed") == 0


def test_it_tries_a_close_answered_paid_against_the_querys_unpaid_again_on_the_ladder_too(shop):
    order = _create(shop, "CU000006")
    _expired(order["id"], dt.timedelta(minutes=2))
    # The close says "paid" (WeChat ORDERPAID, A.6), the query still "not paid": whether it was paid is not settled.
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="ORDERPAID", message="订单已支付",
             status=400, times=20, match={"path": f"out-trade-no/{order['id']}/close$"})

    for _ in range(5):
        sync_due_orders()

    assert _calls(order["id"], "close") == ["error"]
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown" and stored.next_query_at > timezone.now()


def test_it_leaves_a_close_still_unanswered_after_the_last_rung_to_a_person_in_the_manual_queue(shop):
    order = _create(shop, "CU000003")
    _expired(order["id"], dt.timedelta(hours=23, minutes=50))  # ten minutes before the ladder's end
    _closes_unanswered(shop, order["id"])

    sync_due_orders()  # queried (unpaid), closed: no answer — the last rung, at the end of the day after expiry
    sync_due_orders()
    assert _calls(order["id"], "close") == ["unknown"]

    _expired(order["id"], dt.timedelta(hours=24, minutes=1))  # the last rung is due
    _due(order["id"])
    sync_due_orders()  # queried again (unpaid), closed: still no answer — the ladder has run out
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "manual" and stored.next_query_at is None
    for _ in range(3):
        sync_due_orders()
    assert _calls(order["id"], "close") == ["unknown", "unknown"]
    assert _events(order["id"], "order.closed") == 0

    queued = unknown_orders().get(pk=order["id"])  # support's unknown-outcomes / manual queue lists it
    assert queue_reason(queued) == "close not confirmed: the channel refused or never answered it; the ladder ran out"


def test_it_closes_the_order_when_the_channel_answers_the_close_on_a_later_rung(shop):
    order = _create(shop, "CU000004")
    _expired(order["id"], dt.timedelta(minutes=2))
    _closes_unanswered(shop, order["id"], times=1)

    sync_due_orders()
    sync_due_orders()  # not yet: the ladder's next rung is still to come
    assert Order.objects.get(pk=order["id"]).state == "pending"

    _due(order["id"])
    sync_due_orders()  # queried first (design §5 rule 3), then closed: answered this time
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "closed" and stored.sync_state == "ok" and stored.next_query_at is None
    assert _calls(order["id"], "close") == ["unknown", "closed"]
    assert _events(order["id"], "order.closed") == 1


def test_it_makes_the_order_paid_when_the_ladders_query_finds_the_payment(shop):
    order = _create(shop, "CU000005")
    _expired(order["id"], dt.timedelta(minutes=2))
    _closes_unanswered(shop, order["id"])

    sync_due_orders()
    # The payer pays before the close got through; the callback is held back, so only the query can tell.
    shop.sim("wechatpay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=600,
             match={"contains": order["id"]})
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])

    _due(order["id"])
    sync_due_orders()
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "succeeded" and stored.sync_state == "ok" and stored.next_query_at is None
    assert _calls(order["id"], "close") == ["unknown"]
    assert _events(order["id"], "order.succeeded") == 1 and _events(order["id"], "order.closed") == 0
    assert not LatePayment.objects.filter(order_id=order["id"]).exists()

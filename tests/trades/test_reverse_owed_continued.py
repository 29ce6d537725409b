"""A reverse still owed when the channel answers again is sent again, whoever's query heard the answer (docs/api.md
"Orders": "the query that finds it still unconfirmed after the minute, yours included, ends in the reverse").

Bug (an on-call fault drill on WeChat Pay, the payer's confirmation delayed to 300 s): queries and reverses failed
until the order reached the manual queue with its reverse owed (``reverse_requested_at``, the whole amount held).
After the faults were cleared the merchant's ``GET`` heard USERPAYING and did nothing; the next heard SUCCESS and
made the order ``succeeded`` (``order.succeeded``) with its money still held — refundable 0 — until support pressed
"Ask the channel again".

Against the simulators over signed HTTP, on a clock moved with time-machine (the simulators' thread shares it): the
channel's failures are the simulator's ``http_503`` fault, the payer's delay its account's ``userpaying_seconds``.
"""

from __future__ import annotations

import pytest
import requests
import time_machine
from django.core.cache import cache
from django.utils import timezone

from tests.trades.order_steps import call_outcomes, event_count
from trades.models import Event, LatePayment, Order
from trades.services.orders import QUERY_CLAIM_PREFIX
from trades.services.staff import order_sync_by_staff
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAYER_CONFIRMS = 300  # seconds after the create
CONFIRMING = "134567890123456785"  # the simulator's payer confirms it after ``userpaying_seconds`` (ends in 5)


def _reverse_owed_in_the_manual_queue(shop, clock, out_trade_no):
    """A payment code whose payer is confirming, its queries and reverses unanswered (503) through the ladder's
    minute and the reverse's: pending, in the manual queue, its reverse owed and its amount held. Then the channel
    comes back (the faults cleared)."""
    shop.sim("wechatpay", f"/_control/accounts/{shop.accounts['wechatpay'].config['sp_mchid']}/settings",
             userpaying_seconds=PAYER_CONFIRMS)
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.barcode", "subject": "tea",
        "auth_code": CONFIRMING})
    assert status == 201 and order["state"] == "pending", order
    for path in (f"out-trade-no/{order['id']}$", f"out-trade-no/{order['id']}/reverse$"):
        shop.sim("wechatpay", "/_control/faults", fault="http_503", times=100, match={"path": path})
    clock.shift(61)  # the ladder's minute: unanswered, so the code is reversed — unanswered too
    sync_due_orders()
    clock.shift(61)  # the reverse's minute: unanswered, so a person's
    sync_due_orders()
    owed = Order.objects.get(pk=order["id"])
    assert (owed.state, owed.sync_state, owed.refund_reserved) == ("pending", "manual", 1500), owed.sync_state
    assert owed.reverse_requested_at is not None and set(call_outcomes(order["id"], "reverse")) == {"unknown"}
    requests.delete(f"{shop.root}/wechatpay/_control/faults", timeout=10)
    return order


def _merchant_asks(shop, order):
    """GET /orders/{no}, let through the per-order rate limit (its claim runs on Redis's clock, not the travelled
    one)."""
    cache.delete(f"{QUERY_CLAIM_PREFIX}{order['id']}")
    status, _, polled = shop.client.request("GET", f"/api/v1/orders/{order['out_trade_no']}")
    assert status == 200, polled
    return polled


def _staff_syncs(shop, order, staff_member):
    synced = order_sync_by_staff(order_id=order["id"], actor=staff_member("support_agent", username="zhou"))
    return {"state": synced.state}


ASKERS = {"merchant GET": lambda shop, order, staff_member: _merchant_asks(shop, order),
          "staff Sync now": _staff_syncs}
OUT_TRADE_NOS = {"merchant GET": "ROCGET001", "staff Sync now": "ROCSTAFF1"}


@pytest.mark.parametrize("asker", ASKERS)
def test_a_query_that_hears_the_payer_still_confirming_sends_the_owed_reverse(shop, staff_member, asker):
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _reverse_owed_in_the_manual_queue(shop, clock, OUT_TRADE_NOS[asker])
        answered = ASKERS[asker](shop, order, staff_member)

    stored = Order.objects.get(pk=order["id"])
    assert answered["state"] == "reversed" and stored.state == "reversed", stored.sync_state
    assert stored.reverse_requested_at is None and stored.sync_state == "ok"
    assert stored.paid_at is None and stored.refunded_amount == 0 and stored.refund_reserved == 0
    assert call_outcomes(order["id"], "reverse")[-1] == "reversed"
    assert event_count(order["id"], "order.reversed") == 1 and event_count(order["id"], "order.succeeded") == 0


def test_a_query_that_hears_the_code_paid_reverses_it_and_records_the_payment_given_back(shop):
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _reverse_owed_in_the_manual_queue(shop, clock, "ROCPAID01")
        clock.shift(PAYER_CONFIRMS)  # the payer confirmed meanwhile: the channel says SUCCESS
        answered = _merchant_asks(shop, order)

    stored = Order.objects.get(pk=order["id"])
    assert answered["state"] == "reversed" and stored.state == "reversed", (stored.state, stored.refund_reserved)
    # The reverse refunded the payment (docs/api.md: "refunds a paid one in full"): nothing held, nothing owed.
    assert stored.reverse_requested_at is None and stored.sync_state == "ok" and stored.paid_at is not None
    assert stored.refunded_amount == 1500 and answered["refunded_amount"] == 1500
    assert call_outcomes(order["id"], "reverse")[-1] == "reversed"
    # The payment and its reversal, in that order by sequence, committed together (as a reverse that finds the code
    # paid itself: _paid_before_reverse); never a succeeded order left holding the money.
    events = list(Event.objects.filter(object_id=order["id"]).order_by("sequence").values_list("type", flat=True))
    assert events == ["order.succeeded", "order.reversed"]
    assert not LatePayment.objects.filter(order_id=order["id"]).exists()


def test_a_query_that_hears_nothing_leaves_the_reverse_owed_for_a_person(shop):
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _reverse_owed_in_the_manual_queue(shop, clock, "ROCSTILL1")
        shop.sim("wechatpay", "/_control/faults", fault="http_503", times=1,
                 match={"path": f"out-trade-no/{order['id']}$"})
        reverses = len(call_outcomes(order["id"], "reverse"))
        answered = _merchant_asks(shop, order)

    stored = Order.objects.get(pk=order["id"])
    assert answered["state"] == "pending" and stored.sync_state == "manual" and stored.refund_reserved == 1500
    assert len(call_outcomes(order["id"], "reverse")) == reverses  # no answer: the channel is not back

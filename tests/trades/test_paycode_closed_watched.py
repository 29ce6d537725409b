"""A payment code closed because the channel held no trade to reverse is still asked about for a while after the close,
so a payment its late create makes is found and returned to the payer (design §5 rule 3; docs/api.md: "Should that
create reach the channel after all and the payer pay, it is a late payment, returned to the payer").

Bug (an on-call fault drill on WeChat Pay, which sends no callback for payment codes): the create was slowed past
our read timeout, the ladder's queries and the reverse heard "no such trade", the order was closed — and when the
slowed create reached the channel and charged the payer, nobody asked again: the payment was never found.

Against the simulators over signed HTTP: the create is held by the simulator's ``latency`` fault (it answers after
we gave up, and then charges the payer), the clock moved with time-machine (the simulators' thread shares it).
"""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone

from channels.simulators import wechatpay as wechat_sim
from tests.trades.order_steps import call_outcomes, event_count
from trades.models import LatePayment, Order
from trades.tasks_orders import sync_due_orders
from trades.workbench import unknown_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

READ_TIMEOUT = 1.0
SLOW = READ_TIMEOUT + 2.5  # the create reaches the simulator after we gave up, and after the reverse
PAID_AT_ONCE = "134567890123456780"  # WeChat Pay's simulator charges it at once (ends in 0)


@pytest.fixture
def short_timeout(settings):
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = READ_TIMEOUT


def _create(shop, out_trade_no):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.barcode", "subject": "tea",
        "auth_code": PAID_AT_ONCE})
    assert status == 201 and order["state"] == "pending", order
    return order


def _sim_trade(shop, simulator_server, order_id):
    sp = shop.accounts["wechatpay"].config["sp_mchid"]
    return simulator_server.app.apps["wechatpay"].store.get(wechat_sim.NS_TRADES, f"{sp}:{order_id}")


def test_a_code_charged_after_its_reverse_found_no_trade_becomes_a_late_payment_returned_to_the_payer(
        shop, simulator_server, short_timeout):
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=SLOW, match={"path": "transactions/codepay$"})
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _create(shop, "PCW00001")
        clock.shift(61)  # the ladder's minute: its query hears "no such trade", and so does the reverse
        sync_due_orders()
        closed = Order.objects.get(pk=order["id"])
        assert closed.state == "closed" and call_outcomes(order["id"], "reverse") == ["error"], closed.state
        # The slowed create reaches the channel now, and the payer is charged.
        trade = shop.wait_for(lambda: (_sim_trade(shop, simulator_server, order["id"]) or {}).get("trade_state")
                              == "SUCCESS" and _sim_trade(shop, simulator_server, order["id"]),
                              message="the slowed create to charge the payer")
        clock.shift(61)  # the first follow-up after the close
        sync_due_orders()

    late = shop.wait_for(lambda: LatePayment.objects.filter(order_id=order["id"]).first(),
                         message="the late payment")
    assert late.amount == 1500 and late.channel_trade_no == trade["transaction_id"]
    assert late.state == "refunding"  # returned to the payer automatically (AGGPAY_LATE_PAYMENT_AUTO_REFUND)
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "closed" and stored.next_query_at is None  # found: nothing more to ask
    assert event_count(order["id"], "order.closed") == 1 and event_count(order["id"], "order.succeeded") == 0


def test_the_follow_ups_of_a_closed_code_end_and_never_list_it_as_an_unknown_outcome(shop, short_timeout):
    """A create the channel never took (dropped: the simulator's ``timeout`` fault answers 504 at once and forgets
    it), reversed by the merchant: closed, asked about four times after the close, then left alone."""
    shop.sim("wechatpay", "/_control/faults", fault="timeout", seconds=0, match={"path": "transactions/codepay$"})
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _create(shop, "PCW00002")
        status, _, reversed_ = shop.client.request("POST", f"/api/v1/orders/{order['out_trade_no']}/reverse")
        assert status == 200 and reversed_["state"] == "closed", reversed_
        watched = Order.objects.get(pk=order["id"])
        assert watched.sync_state == "ok" and watched.next_query_at is not None
        assert not unknown_orders().filter(pk=order["id"]).exists()  # not an unknown outcome: it is closed
        queries_before = len(call_outcomes(order["id"], "query"))
        for minutes in (1, 4, 25, 90, 60, 600):  # +1 min, +5 min, +30 min, +2 h after the close, then beyond
            clock.shift(minutes * 60 + 1)
            sync_due_orders()
            assert not unknown_orders().filter(pk=order["id"]).exists()

    stored = Order.objects.get(pk=order["id"])
    assert call_outcomes(order["id"], "query")[queries_before:] == ["not_found"] * 4
    assert stored.state == "closed" and stored.sync_state == "ok" and stored.next_query_at is None
    assert event_count(order["id"], "order.closed") == 1

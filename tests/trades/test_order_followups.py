"""Order sync, close and expiry follow-ups (design §5 rules 2–4, merchant-api.md "Orders" and "Errors",
channel-protocols.md A.11 / B.5, bank.md §6.3–§6.7), over signed HTTP against the simulators:

- a query answer that fails the cross-check is refused like such a callback: the order is not changed, a security
  event is recorded, the query counts as no answer, and the merchant gets 200 (never 500);
- a close of an order in the manual queue that the channel does not answer is carried on in the background;
- an expired order whose outcome is unknown is queried on the ladder, not by every run of the expiry sweeper;
- a payment code whose create never reached the channel is reversed when the ladder ends, not closed at expiry.

The ladder's waits are skipped by moving ``next_query_at`` (no timed waits).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aggpay.models import AuditLog
from channels.simulators import wechatpay as wechat_sim
from tests.trades.order_steps import call_outcomes as _calls
from tests.trades.order_steps import event_count as _events
from tests.trades.order_steps import rung_due as _due
from trades.models import ChannelCall, Order
from trades.services.staff import order_sync_by_staff
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _create(shop, out_trade_no, product="wechat.native", amount=1500, **extra):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea", **extra})
    assert status == 201, order
    return order


def _fault(shop, kind, fault, **rule):
    shop.sim(kind, "/_control/faults", fault=fault, **rule)


# --- 1. a query answer that does not match the order ---------------------------------------------------------------
def _paid_for_another_amount(shop, simulator_server, order):
    """The payer pays (the callback held back, so only a query can tell us), and the channel's record of the trade
    then states another amount: its signed query answer is a success that does not match the order."""
    _fault(shop, "wechatpay", "out_of_order_callback", phase="callback", seconds=600,
           match={"contains": order["id"]})
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    sim = simulator_server.app.apps["wechatpay"]
    sim.store.update(wechat_sim.NS_TRADES, f"{shop.accounts['wechatpay'].config['sp_mchid']}:{order['id']}",
                     total=1)


def test_a_query_answer_that_fails_the_cross_check_is_refused_recorded_and_counts_as_no_answer(
        shop, simulator_server, staff_member):
    order = _create(shop, "FU000001")
    _paid_for_another_amount(shop, simulator_server, order)

    status, _, answer = shop.client.request("GET", "/api/v1/orders/FU000001")
    assert status == 200 and answer["state"] == "pending", (status, answer)
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.paid_at is None and not stored.channel_trade_no
    assert stored.sync_state == "unknown" and stored.next_query_at > timezone.now()  # the ladder goes on
    refused = AuditLog.objects.get(action="security.query.mismatch", target_id=order["id"])
    assert "amount 1 differs" in refused.data["reason"] and refused.actor_label.startswith("channel:")
    assert _calls(order["id"], "query") == ["mismatch"]

    synced = order_sync_by_staff(order_id=order["id"], actor=staff_member("support_agent", username="zhou"))
    assert synced.state == "pending"

    status, _, answer = shop.client.request("POST", "/api/v1/orders/FU000001/close")
    assert status == 200 and answer["state"] == "pending", (status, answer)  # whether it was paid is not known

    _due(order["id"])
    sync_due_orders()
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown"
    assert _calls(order["id"], "query") == ["mismatch"] * 4
    assert AuditLog.objects.filter(action="security.query.mismatch", target_id=order["id"]).count() == 4
    assert _events(order["id"], "order.succeeded") == 0 and _events(order["id"], "order.closed") == 0


def test_support_sees_a_query_answer_that_failed_the_cross_check_marked_bad_on_the_trade(
        shop, simulator_server, staff_member, client):
    import re

    from django.urls import reverse

    order = _create(shop, "FU000009")
    _paid_for_another_amount(shop, simulator_server, order)
    shop.client.request("GET", "/api/v1/orders/FU000009")
    client.force_login(staff_member("support_agent", username="zhou"))
    page = client.get(reverse("trades:detail", args=[order["id"]])).content.decode()
    (call,) = ChannelCall.objects.filter(order_id=order["id"], verb="query")
    entry = re.search(rf'<li class="([^"]*)" id="call-{call.pk}"', page)
    assert entry and entry.group(1) == "bad"


# --- 2. a close of an order in the manual queue --------------------------------------------------------------------
def _in_the_manual_queue(order_id):
    """The order's ladder ran out a while ago: 25 h old, expired, nobody heard from the channel."""
    created = timezone.now() - dt.timedelta(hours=25)
    Order.objects.filter(pk=order_id).update(created_at=created, expires_at=created + dt.timedelta(hours=2),
                                             sync_state="manual", next_query_at=None)


def test_a_close_of_an_order_in_the_manual_queue_the_channel_does_not_answer_is_carried_on_in_the_background(shop):
    order = _create(shop, "FU000002")
    _in_the_manual_queue(order["id"])
    # The close's query and the next rung's go unanswered; the one after is answered.
    _fault(shop, "wechatpay", "http_503", times=2, match={"path": f"out-trade-no/{order['id']}$", "method": "GET"})

    status, _, answer = shop.client.request("POST", "/api/v1/orders/FU000002/close")
    assert status == 200 and answer["state"] == "pending", answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.sync_state == "unknown" and stored.next_query_at > timezone.now()  # on a ladder from the close

    _due(order["id"])
    sync_due_orders()  # still no answer: the next rung of the close's ladder, not the manual queue
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown" and stored.next_query_at > timezone.now()

    _due(order["id"])
    sync_due_orders()  # answered: not paid, so the close the merchant asked for is carried out
    assert Order.objects.get(pk=order["id"]).state == "closed"
    assert _events(order["id"], "order.closed") == 1


# --- 3. an expired order whose outcome is unknown ------------------------------------------------------------------
def test_an_expired_order_whose_outcome_is_unknown_is_queried_on_the_ladder_not_at_every_sweep(shop):
    order = _create(shop, "FU000003")
    Order.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    _fault(shop, "wechatpay", "http_503", times=5, match={"path": f"out-trade-no/{order['id']}$", "method": "GET"})

    sync_due_orders()  # the expiry queries first (design §5 rule 3): no answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown" and stored.next_query_at > timezone.now()
    for _ in range(3):  # the sweeper's next runs, a minute apart, before the ladder's next rung
        sync_due_orders()
    assert _calls(order["id"], "query") == ["unknown"]

    _due(order["id"])
    sync_due_orders()  # the rung: still unanswered, the next rung is scheduled
    assert _calls(order["id"], "query") == ["unknown"] * 2
    assert Order.objects.get(pk=order["id"]).next_query_at > timezone.now()


def test_an_expired_order_whose_outcome_becomes_known_on_its_rung_is_closed_in_that_run(shop):
    order = _create(shop, "FU000004")
    Order.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    _fault(shop, "wechatpay", "http_503", match={"path": f"out-trade-no/{order['id']}$", "method": "GET"})
    sync_due_orders()
    assert Order.objects.get(pk=order["id"]).state == "pending"
    _due(order["id"])
    sync_due_orders()
    assert Order.objects.get(pk=order["id"]).state == "closed"
    assert _events(order["id"], "order.closed") == 1


# --- 4. a payment code whose create never reached the channel ------------------------------------------------------
NEVER_REACHED = {
    # channel: (product, a payment code, the create's fault rule)
    "wechatpay": ("wechat.barcode", "134567890123456780", {"path": "transactions/codepay$"}),
    "alipay": ("alipay.barcode", "281234567890123450", {"contains": "method=alipay.trade.pay"}),
    "bank": ("unionpay.barcode", "6212345678901234560", {"path": "^/api/pay/micropay$"}),
}


@pytest.mark.parametrize("kind", list(NEVER_REACHED))
def test_a_payment_code_whose_create_never_reached_the_channel_is_reversed_when_the_ladder_ends(shop, kind):
    product, auth_code, where = NEVER_REACHED[kind]
    # The create times out at the channel's gateway (504) before the channel saw it: the outcome is unknown.
    _fault(shop, kind, "timeout", seconds=0, match=where)
    order = _create(shop, f"FU4{kind[:4]}", product=product, auth_code=auth_code)
    assert order["state"] == "pending", order

    _due(order["id"])
    sync_due_orders()  # the channel has no such trade (yet): still unclear, so the ladder goes on
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown" and stored.next_query_at > timezone.now()
    assert _calls(order["id"], "query") == ["not_found"]

    old = timezone.now() - dt.timedelta(minutes=2)  # the ladder's minute is over, and so is the order's
    Order.objects.filter(pk=order["id"]).update(created_at=old, expires_at=old + dt.timedelta(seconds=60),
                                                next_query_at=timezone.now() - dt.timedelta(seconds=1))
    sync_due_orders()  # the last rung: still not found, so reversed — which the channel answers "no such trade"

    stored = Order.objects.get(pk=order["id"])
    assert _calls(order["id"], "reverse") == ["error"]
    assert _calls(order["id"], "close") == []
    # followed up after the close (ladder.CLOSED_WATCH): a create that reaches the channel late is found
    assert (stored.state, stored.sync_state) == ("closed", "ok") and stored.next_query_at is not None
    assert stored.reverse_requested_at is None and stored.refund_reserved == 0
    assert _events(order["id"], "order.closed") == 1 and _events(order["id"], "order.reversed") == 0

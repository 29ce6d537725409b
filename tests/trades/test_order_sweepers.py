"""The once-a-minute sweeper (trades.tasks_orders.sync_due_orders) outlives any one order or refund: a query the
channel refuses moves that order to its next rung (or the manual queue after the last, design §5 rule 2), a close the
channel refuses takes the ladder and then the manual queue, a refund answer that does not match is logged — and the sweep
goes on with everything else. Faults are injected at the simulators, as in test_faults.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channels.simulators import wechatpay as wechat_sim
from tests.trades.order_steps import call_outcomes
from trades.models import ChannelCall, Order, Refund
from trades.tasks_orders import sync_due_orders
from trades.workbench import queue_reason, unknown_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _create(shop, out_trade_no, product="wechat.native", amount=1500):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea"})
    assert status == 201, order
    return order


def _fault(shop, kind, fault, **rule):
    shop.sim(kind, "/_control/faults", fault=fault, **rule)


def _hold_callbacks(shop, order_id):
    """The channel's callbacks about this order are held back: only a query can tell us about it."""
    _fault(shop, "wechatpay", "out_of_order_callback", phase="callback", seconds=600, times=5,
           match={"contains": order_id})


def _refuse_queries(shop, order_id, times=1):
    """The channel answers a query about this order with a definite refusal (A.6 403 NO_AUTH)."""
    _fault(shop, "wechatpay", "business_error", code="NO_AUTH", message="商户无权限", status=403, times=times,
           match={"path": f"out-trade-no/{order_id}$", "method": "GET"})


def _due(order_id, *, seconds_ago=1):
    Order.objects.filter(pk=order_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=seconds_ago),
                                             last_queried_at=None)


def _unknown(order_id, *, seconds_ago=1):
    Order.objects.filter(pk=order_id).update(sync_state="unknown")
    _due(order_id, seconds_ago=seconds_ago)


def test_one_order_whose_query_is_refused_does_not_stop_the_sweep_and_takes_its_next_rung(shop):
    refused, paid = _create(shop, "SW000001"), _create(shop, "SW000002")
    _hold_callbacks(shop, paid["id"])
    shop.sim("wechatpay", "/_payer/pay", code_url=paid["pay_params"]["code_url"])
    _unknown(refused["id"], seconds_ago=60)  # first in the sweeper's line
    _unknown(paid["id"])
    _refuse_queries(shop, refused["id"])

    sync_due_orders()

    assert Order.objects.get(pk=paid["id"]).state == "succeeded"
    stuck = Order.objects.get(pk=refused["id"])
    assert stuck.state == "pending" and stuck.sync_state == "unknown"
    assert stuck.next_query_at > timezone.now(), "the refused order stays first in line"
    assert ChannelCall.objects.filter(order_id=stuck.pk, verb="query", outcome="error").exists()


def test_a_refused_query_after_the_last_rung_puts_the_order_in_the_manual_queue(shop):
    order = _create(shop, "SW000003")
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - dt.timedelta(hours=25))
    _unknown(order["id"])
    _refuse_queries(shop, order["id"])

    sync_due_orders()

    stuck = Order.objects.get(pk=order["id"])
    assert stuck.state == "pending" and stuck.sync_state == "manual" and stuck.next_query_at is None


def test_one_order_whose_close_is_refused_does_not_stop_the_expiry_sweep(shop):
    refused, overdue = _create(shop, "SW000004"), _create(shop, "SW000005")
    Order.objects.filter(pk=refused["id"]).update(expires_at=timezone.now() - dt.timedelta(minutes=2))
    Order.objects.filter(pk=overdue["id"]).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    _fault(shop, "wechatpay", "business_error", code="TRADE_ERROR", message="交易错误", status=403,
           match={"path": f"out-trade-no/{refused['id']}/close$"})

    sync_due_orders()

    assert Order.objects.get(pk=overdue["id"]).state == "closed"
    assert Order.objects.get(pk=refused["id"]).state == "pending"
    sync_due_orders()  # a minute later: not yet — the close waits for the ladder's next rung (design §5 rule 2)
    assert _closes(refused["id"]) == ["error"]
    _due(refused["id"])
    sync_due_orders()  # that rung: queried (still unpaid), closed again — answered this time
    assert Order.objects.get(pk=refused["id"]).state == "closed"
    assert _closes(refused["id"]) == ["error", "closed"]


def test_a_close_the_channel_keeps_refusing_ends_in_the_manual_queue_not_in_a_call_every_minute(shop):
    order = _create(shop, "SW000009")
    expires = timezone.now() - dt.timedelta(hours=23, minutes=50)  # ten minutes before the ladder's end
    Order.objects.filter(pk=order["id"]).update(created_at=expires - dt.timedelta(hours=2), expires_at=expires)
    _fault(shop, "wechatpay", "business_error", code="TRADE_ERROR", message="交易错误", status=403, times=50,
           match={"path": f"out-trade-no/{order['id']}/close$"})

    for _ in range(3):  # three runs of the sweeper before the last rung is due
        sync_due_orders()
    assert _closes(order["id"]) == ["error"]

    expires = timezone.now() - dt.timedelta(hours=24, minutes=1)  # the last rung is due
    Order.objects.filter(pk=order["id"]).update(created_at=expires - dt.timedelta(hours=2), expires_at=expires)
    _due(order["id"])
    sync_due_orders()
    stuck = Order.objects.get(pk=order["id"])
    assert stuck.state == "pending" and stuck.sync_state == "manual" and stuck.next_query_at is None
    for _ in range(3):
        sync_due_orders()
    assert _closes(order["id"]) == ["error", "error"]
    queued = unknown_orders().get(pk=order["id"])  # support's manual queue says why it is there
    assert queue_reason(queued) == "close not confirmed: the channel refused or never answered it; the ladder ran out"


def test_the_queue_tells_a_close_waiting_for_its_rung_from_an_unknown_payment(shop):
    refused, unknown = _create(shop, "SW000010"), _create(shop, "SW000011")
    Order.objects.filter(pk=refused["id"]).update(expires_at=timezone.now() - dt.timedelta(minutes=2))
    _fault(shop, "wechatpay", "business_error", code="TRADE_ERROR", message="交易错误", status=403,
           match={"path": f"out-trade-no/{refused['id']}/close$"})
    _unknown(unknown["id"])
    _hold_callbacks(shop, unknown["id"])
    _fault(shop, "wechatpay", "http_500", times=1, match={"path": f"out-trade-no/{unknown['id']}$"})

    sync_due_orders()

    reasons = {order.pk: queue_reason(order) for order in unknown_orders()}
    assert reasons[refused["id"]] == "close not confirmed: asked again on the ladder"
    assert reasons[unknown["id"]] == "outcome unknown: queried on the ladder"


def _closes(order_id):
    return call_outcomes(order_id, "close")


def _paid(shop, out_trade_no, amount):
    order = _create(shop, out_trade_no, amount=amount)
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), message="paid")
    return order


def test_one_refund_whose_channel_amount_differs_does_not_stop_the_refund_sweep(shop, simulator_server):
    order = _paid(shop, "SW000006", 1000)
    # Only this order's refund notices (they name it as out_trade_no): a rule left unused must not hold back the
    # refund notices of tests that run after this one on the same simulator.
    _fault(shop, "wechatpay", "out_of_order_callback", phase="callback", seconds=600, times=10,
           match={"contains": order["id"]})
    refunds = []
    for number, amount in (("SWR00061", 100), ("SWR00062", 200)):
        status, _, refund = shop.client.request("POST", "/api/v1/orders/SW000006/refunds",
                                                json={"out_refund_no": number, "amount": amount})
        assert status == 201 and refund["state"] == "pending", refund
        refunds.append(refund)
    odd, good = refunds
    sp_mchid = shop.accounts["wechatpay"].config["sp_mchid"]
    # The channel's record of the first refund says another amount (what refund_apply_result refuses).
    simulator_server.app.apps["wechatpay"].store.update(wechat_sim.NS_REFUNDS, f"{sp_mchid}:{odd['id']}", refund=1)
    for refund, seconds_ago in ((odd, 60), (good, 1)):
        shop.sim("wechatpay", f"/_control/refunds/{refund['id']}", status="SUCCESS", sp_mchid=sp_mchid)
        Refund.objects.filter(pk=refund["id"]).update(
            next_query_at=timezone.now() - dt.timedelta(seconds=seconds_ago))
    expired = _create(shop, "SW000007")
    Order.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - dt.timedelta(minutes=1))

    sync_due_orders()

    assert Refund.objects.get(pk=good["id"]).state == "succeeded"
    assert Refund.objects.get(pk=odd["id"]).state == "pending"  # for a person; never applied with another amount
    assert Order.objects.get(pk=order["id"]).refunded_amount == 200
    assert Order.objects.get(pk=expired["id"]).state == "closed"  # the sweep went on to the expiries

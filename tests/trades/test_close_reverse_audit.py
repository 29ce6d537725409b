"""Expiry, close and reverse meeting the payment (design §5 rule 3, merchant-api.md "Orders"), staged with threads
against PostgreSQL and the simulators: the expiry sweeper closing an order while its success callback is applied
leaves it paid, with no ``order.closed`` and no late payment; a close the channel refuses as paid makes the order
paid (409 carrying it)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from channels.simulators import wechatpay as wechat_sim
from tests.trades.wechat_flow import success_notice
from trades.models import Event, LatePayment, Order
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

SLOW = 1.5


def _create(shop, out_trade_no, product="wechat.native", amount=1500):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea"})
    assert status == 201, order
    return order


def test_the_expiry_sweeper_closing_an_order_whose_success_is_applied_meanwhile_leaves_it_paid(shop,
                                                                                               simulator_server):
    order = _create(shop, "XC000001")
    Order.objects.filter(pk=order["id"]).update(expires_at=timezone.now())
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=SLOW,
             match={"path": f"out-trade-no/{order['id']}/close$"})
    def sweep():
        try:
            sync_due_orders()
        finally:
            connection.close()  # the thread's own connection: left open, it kept the test database from dropping

    sweeping = threading.Thread(target=sweep)
    sweeping.start()
    shop.wait_for(lambda: Order.objects.get(pk=order["id"]).last_queried_at, message="the expiry's query")
    success_notice(shop, simulator_server, order["id"])
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), message="paid")
    sweeping.join(timeout=30)

    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "succeeded"
    assert not Event.objects.filter(object_id=order["id"], type="order.closed").exists()
    assert not LatePayment.objects.filter(order_id=order["id"]).exists()


def test_a_close_the_channel_refuses_as_paid_makes_the_order_paid_and_answers_409(shop, simulator_server):
    order = _create(shop, "XC000002")
    # The payment lands at the channel between the close's query and the close itself; its callback is held.
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=SLOW,
             match={"path": f"out-trade-no/{order['id']}/close$"})
    answer = {}

    def close():
        answer["status"], _, answer["body"] = shop.client.request("POST", "/api/v1/orders/XC000002/close")

    closing = threading.Thread(target=close)
    closing.start()
    shop.wait_for(lambda: Order.objects.get(pk=order["id"]).last_queried_at, message="the close's query")
    sim = simulator_server.app.apps["wechatpay"]
    sp_mchid = shop.accounts["wechatpay"].config["sp_mchid"]
    sim.settle(sim.store.get(wechat_sim.NS_TRADES, f"{sp_mchid}:{order['id']}"), success=True)
    closing.join(timeout=30)

    assert answer["status"] == 409 and answer["body"]["error"]["code"] == "invalid_state", answer
    assert answer["body"]["order"]["state"] == "succeeded"
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "succeeded" and stored.channel_trade_no
    assert not Event.objects.filter(object_id=order["id"], type="order.closed").exists()

"""A channel callback's ``received_at`` is when it came in, not when its row was written after it was handled: the
trade's timeline (trades.workbench.order_timeline) shows the payment notice before the ``order.succeeded`` it
caused. Over signed HTTP against the simulators."""

from __future__ import annotations

import pytest

from channels.models import ChannelCallback
from trades.models import Event, Order
from trades.workbench import order_timeline

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _paid(shop, out_trade_no):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def test_the_payment_notice_is_dated_when_it_arrived_before_the_event_it_caused(shop):
    order = _paid(shop, "ARR00001")

    notice = _payment_notice(order)
    succeeded = Event.objects.get(object_id=order.pk, type="order.succeeded")
    assert notice.received_at < succeeded.created_at

    titles = [entry.title for entry in order_timeline(order)["entries"]]
    notice_at = next(i for i, title in enumerate(titles) if title.startswith("Callback from"))
    event_at = titles.index("Event order.succeeded #1")
    assert notice_at < event_at, titles


def _payment_notice(order) -> ChannelCallback:
    # The stored body is encrypted: pick the applied payment notice whose note names the order.
    return next(c for c in ChannelCallback.objects.filter(kind="payment", outcome="applied")
                if order.pk in c.message)

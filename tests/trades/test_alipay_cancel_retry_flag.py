"""A reverse (撤销) Alipay fails: its cancel's ``retry_flag`` decides (channel-protocols.md B.5, 是否需要重试).

``Y``: Alipay asks for the cancel again — not a verdict, so the merchant hears 200 with the order as it was and the
reverse is retried on the barcode ladder until it goes through (design §5 rule 2; order_reverse). ``N``: a definite
refusal — 502, and the order stays paid and refundable. Over signed HTTP against the simulators.
"""

from __future__ import annotations

import pytest

from tests.trades.order_steps import event_count, rung_due
from trades.models import Order
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID_AT_ONCE = "281234567890123450"  # an Alipay payment code the simulator charges at once (ends in 0)


def _paid_alipay_code(shop, out_trade_no):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "barcode", "subject": "tea",
        "auth_code": PAID_AT_ONCE})
    assert status == 201 and order["state"] == "succeeded", order
    assert Order.objects.get(pk=order["id"]).channel_product == "alipay.barcode"  # a 28… code is Alipay's
    return order


def _failing_cancel(shop, **rule):
    shop.sim("alipay", "/_control/faults", fault="business_error", match={"contains": "alipay.trade.cancel"}, **rule)


def test_a_cancel_alipay_asks_to_retry_is_200_and_the_reverse_is_retried_until_it_goes_through(shop):
    order = _paid_alipay_code(shop, "ACR00001")
    # A sub_code our table would call a refusal (it is not in it): Alipay's retry_flag=Y outranks the table.
    _failing_cancel(shop, code="AQC.SYSTEM_ERROR", message="系统错误", retry_flag="Y")

    status, _, answer = shop.client.request("POST", "/api/v1/orders/ACR00001/reverse", json={})

    assert status == 200 and answer["state"] == "succeeded" and answer["refundable_amount"] == 0, answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.reverse_requested_at and stored.refund_reserved == 1500 and stored.sync_state == "unknown"
    rung_due(order["id"])
    sync_due_orders()  # the ladder's next rung sends the cancel again; Alipay takes it now
    reversed_ = Order.objects.get(pk=order["id"])
    assert reversed_.state == "reversed" and reversed_.reverse_requested_at is None and reversed_.sync_state == "ok"
    assert event_count(order["id"], "order.reversed") == 1


def test_a_cancel_alipay_says_not_to_retry_is_502_and_leaves_the_order_refundable(shop):
    order = _paid_alipay_code(shop, "ACR00002")
    _failing_cancel(shop, code="ACQ.TRADE_CANCEL_TIME_OUT", message="超过撤销时间范围", retry_flag="N")

    status, _, answer = shop.client.request("POST", "/api/v1/orders/ACR00002/reverse", json={})

    assert status == 502 and answer["error"]["code"] == "channel_error", answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "succeeded" and stored.reverse_requested_at is None and stored.refund_reserved == 0
    status, _, refund = shop.client.request("POST", "/api/v1/orders/ACR00002/refunds",
                                            json={"out_refund_no": "ACRR0021", "amount": 100})
    assert status == 201, refund

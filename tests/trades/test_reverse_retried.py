"""A reverse sent again answers what the first one did (docs/api.md "Orders": sending the reverse again is safe). A
till whose reverse timed out retries it: once the first has ended the order, the retry gets `200` with the order —
`reversed`, or `closed` when the channel held no trade to reverse — and nothing is asked of the channel again. Bug:
the retry answered `409 invalid_state` "the order is reversed", though two reverses sent together both answered
`200`. An order that ended some other way (failed, closed by a close) is still `409` with the order.
"""

from __future__ import annotations

import pytest

from tests.trades.order_steps import call_outcomes as _calls
from tests.trades.order_steps import event_count as _events
from trades.models import ChannelCall, Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID_AT_ONCE = "134567890123456780"  # WeChat Pay's simulator charges it at once (ends in 0)
TOO_LITTLE_BALANCE = "134567890123456787"  # … declines it: insufficient balance (ends in 7)


def _create(shop, out_trade_no, **fields):
    return shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.barcode", "subject": "tea", **fields})


def _reverse(shop, out_trade_no):
    status, _, answer = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/reverse")
    return status, answer


def test_a_reverse_retried_after_it_reversed_a_paid_order_answers_200_with_the_reversed_order(shop):
    status, _, order = _create(shop, "RRT00001", auth_code=PAID_AT_ONCE)
    assert status == 201 and order["state"] == "succeeded", order
    first = _reverse(shop, "RRT00001")
    assert first[0] == 200 and first[1]["state"] == "reversed", first

    status, again = _reverse(shop, "RRT00001")

    assert status == 200, again
    assert again == {**first[1], "updated_at": again["updated_at"]}
    assert again["refunded_amount"] == 1500
    assert _calls(order["id"], "reverse") == ["reversed"]  # the channel was asked once
    assert _events(order["id"], "order.reversed") == 1


def test_a_reverse_retried_after_the_channel_held_no_trade_answers_200_with_the_closed_order(shop):
    # The create times out before the channel saw it (pending); the reverse hears "no such trade": closed.
    shop.sim("wechatpay", "/_control/faults", fault="timeout", seconds=0, match={"path": "transactions/codepay$"})
    status, _, order = _create(shop, "RRT00002", auth_code=PAID_AT_ONCE)
    assert status == 201 and order["state"] == "pending", order
    first = _reverse(shop, "RRT00002")
    assert first[0] == 200 and first[1]["state"] == "closed", first

    status, again = _reverse(shop, "RRT00002")

    assert status == 200 and again["state"] == "closed", again
    assert _calls(order["id"], "reverse") == ["error"]
    assert _events(order["id"], "order.closed") == 1


def test_a_reverse_of_a_failed_order_is_still_409_with_the_order(shop):
    status, _, answer = _create(shop, "RRT00003", auth_code=TOO_LITTLE_BALANCE)
    assert status == 502 and answer["order"]["state"] == "failed", answer

    status, refused = _reverse(shop, "RRT00003")

    assert status == 409 and refused["error"]["code"] == "invalid_state", refused
    assert refused["order"]["state"] == "failed"


def test_a_reverse_of_a_payment_code_order_closed_by_a_close_is_still_409(shop):
    shop.sim("wechatpay", "/_control/faults", fault="timeout", seconds=0, match={"path": "transactions/codepay$"})
    status, _, order = _create(shop, "RRT00004", auth_code=PAID_AT_ONCE)
    assert status == 201, order
    # Staged: the merchant's close ended it (the channel's close answered, the order closed).
    ChannelCall.objects.create(order_id=order["id"], verb="close", outcome="closed")
    Order.objects.filter(pk=order["id"]).update(state="closed")

    status, refused = _reverse(shop, "RRT00004")

    assert status == 409 and refused["error"]["code"] == "invalid_state", refused
    assert refused["order"]["state"] == "closed"
    assert _calls(order["id"], "reverse") == []

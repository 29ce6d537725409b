"""A close the channel refuses for good is `502 channel_error` carrying the order as it stays (pending), as a refused
reverse already did (docs/api.md "Errors": the envelope carries the order a refusal is about)."""

from __future__ import annotations

from trades.models import Order


def test_a_close_the_channel_refuses_answers_502_with_the_order_still_pending(shop):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CLR00001", "amount": 1500, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="TRADE_ERROR", message="交易错误",
             status=403, match={"path": f"out-trade-no/{order['id']}/close$"})

    status, _, answer = shop.client.request("POST", "/api/v1/orders/CLR00001/close")

    assert status == 502, answer
    assert (answer["error"]["code"], answer["error"]["channel_code"]) == ("channel_error", "TRADE_ERROR"), answer
    assert (answer["order"]["out_trade_no"], answer["order"]["state"]) == ("CLR00001", "pending")
    assert Order.objects.get(pk=order["id"]).state == "pending"

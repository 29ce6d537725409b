"""What a refund, new or the retry of a failed one, must find before it reserves anything (merchant-api.md
"Refunds" and "Errors"; design §5 rules 5 and 6), over signed HTTP against the WeChat Pay simulator:

- the retry of a failed refund moves money as a new refund does, so it needs a paid order too: on a reversed order
  it is ``409 invalid_state``;
- while a reverse (撤销) of the order is under way — it returns the whole payment — neither is taken:
  ``409 invalid_state``;
- an out_refund_no names one refund of one order: the same number and parameters on another order of the merchant
  is ``409 idempotency_conflict``, never the other order's refund replayed (the race: tests/trades/test_races.py).
"""

from __future__ import annotations

import pytest

from trades.models import ChannelCall, Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID_AT_ONCE = "134567890123456780"  # a WeChat payment code the simulator charges at once (ends in 0)
REFUNDS_PATH = "refund/domestic/refunds$"


def _paid_barcode(shop, out_trade_no: str, amount: int = 1500) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "barcode", "subject": "tea",
        "auth_code": PAID_AT_ONCE})
    assert status == 201 and order["state"] == "succeeded", order
    return order


def _paid_native(shop, out_trade_no: str, amount: int = 1500) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), message="paid")
    return order


def _fault(shop, fault, **rule):
    shop.sim("wechatpay", "/_control/faults", fault=fault, **rule)


def _post(shop, path, body=None):
    return shop.client.request("POST", path, json=body) if body is not None else shop.client.request("POST", path)


def _failed_refund(shop, out_trade_no: str, out_refund_no: str, amount: int) -> Refund:
    _fault(shop, "business_error", code="NOT_ENOUGH", message="基本账户余额不足", status=403,
           match={"path": REFUNDS_PATH, "method": "POST"})
    status, _, body = _post(shop, f"/api/v1/orders/{out_trade_no}/refunds",
                            {"out_refund_no": out_refund_no, "amount": amount})
    assert status == 502 and body["error"]["code"] == "channel_error", body
    return Refund.objects.get(pk=body["refund"]["id"], state="failed")


def _refund_calls(refund: Refund) -> int:
    return ChannelCall.objects.filter(refund=refund, verb="refund").count()


def test_retrying_a_failed_refund_of_a_reversed_order_is_refused(shop):
    order = _paid_barcode(shop, "RG000001")
    failed = _failed_refund(shop, "RG000001", "RGR00011", 300)
    status, _, reversed_ = _post(shop, "/api/v1/orders/RG000001/reverse")
    assert status == 200 and reversed_["state"] == "reversed", reversed_

    status, _, refused = _post(shop, "/api/v1/orders/RG000001/refunds", {"out_refund_no": "RGR00011", "amount": 300})
    assert status == 409 and refused["error"]["code"] == "invalid_state", refused
    assert "reversed" in refused["error"]["message"]
    failed.refresh_from_db()
    assert (failed.state, failed.channel_attempt, _refund_calls(failed)) == ("failed", 0, 1)  # the bank not asked
    stored = Order.objects.get(pk=order["id"])  # nothing beside the reversal, which refunded the whole payment
    assert stored.refund_reserved == stored.refunded_amount == 1500


def test_neither_a_refund_nor_a_retry_is_taken_while_a_reverse_is_under_way(shop):
    order = _paid_barcode(shop, "RG000002")
    failed = _failed_refund(shop, "RG000002", "RGR00021", 300)
    _fault(shop, "http_500", match={"path": f"out-trade-no/{order['id']}/reverse$"})
    status, _, answer = _post(shop, "/api/v1/orders/RG000002/reverse")
    assert status == 200 and answer["state"] == "succeeded", answer  # unanswered: the reverse carries on

    for out_refund_no in ("RGR00021", "RGR00022"):  # the retry, and a new refund
        status, _, refused = _post(shop, "/api/v1/orders/RG000002/refunds",
                                   {"out_refund_no": out_refund_no, "amount": 300})
        assert status == 409 and refused["error"]["code"] == "invalid_state", refused
        assert "a reverse of this order is under way" in refused["error"]["message"]
    failed.refresh_from_db()
    assert (failed.state, failed.channel_attempt, _refund_calls(failed)) == ("failed", 0, 1)
    assert list(Refund.objects.filter(order_id=order["id"])) == [failed]
    assert Order.objects.get(pk=order["id"]).refund_reserved == 1500  # the reverse's hold, nothing beside it


def test_a_retry_of_a_failed_refund_of_a_paid_order_is_still_taken(shop):
    order = _paid_native(shop, "RG000003")
    failed = _failed_refund(shop, "RG000003", "RGR00031", 300)
    status, _, retried = _post(shop, "/api/v1/orders/RG000003/refunds", {"out_refund_no": "RGR00031", "amount": 300})
    assert status == 201 and retried["id"] == failed.pk and retried["state"] in ("pending", "succeeded"), retried
    assert Refund.objects.get(pk=failed.pk).channel_attempt == 1
    assert Order.objects.get(pk=order["id"]).refund_reserved == 300


def test_the_same_out_refund_no_on_another_order_is_a_conflict_not_a_replay(shop):
    first = _paid_native(shop, "RG000004")
    second = _paid_native(shop, "RG000005")
    status, _, made = _post(shop, "/api/v1/orders/RG000004/refunds", {"out_refund_no": "RGR00041", "amount": 200})
    assert status == 201, made

    status, _, refused = _post(shop, "/api/v1/orders/RG000005/refunds", {"out_refund_no": "RGR00041", "amount": 200})
    assert status == 409 and refused["error"]["code"] == "idempotency_conflict", refused
    assert refused["error"]["param"] == "out_refund_no" and "another order" in refused["error"]["message"]
    assert list(Refund.objects.filter(out_refund_no="RGR00041").values_list("order_id", flat=True)) == [first["id"]]
    assert Order.objects.get(pk=second["id"]).refund_reserved == 0
    assert Order.objects.get(pk=first["id"]).refund_reserved == 200

"""A merchant sees only its own trades (design §5 rule 11) through every Orders, Refunds, Events and Statements
endpoint of merchant-api.md, whichever identifier it tries: the other merchant's `out_trade_no` and `out_refund_no`,
aggpay's own `ord_…` / `ref_…` ids, an `evt_…` or `ord_…` id as a list cursor. And within one merchant, only an app
with the `payments` scope reaches its trades.

These guard what already holds (found holding in review); the answers must not even tell "exists elsewhere" from
"does not exist": 404 `not_found` for an object, 400 naming `starting_after` for a cursor, as for a made-up one.
"""

from __future__ import annotations

import pytest

from aggpay.api import signing
from aggpay.api.client import AggpayClient
from merchants.services.merchants import merchant_activate
from tests.factories import MerchantAppFactory, MerchantFactory
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")


@pytest.fixture
def tea_house_paid_and_refunded(shop):
    """Tea House (``shop``) with a paid order ISO00001, a refund ISOR0001 of it and the events they made."""
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "ISO00001", "amount": 1000, "product": "barcode", "auth_code": "134567890123456780",
        "subject": "tea"})
    assert status == 201 and order["state"] == "succeeded", order
    status, _, refund = shop.client.request("POST", "/api/v1/orders/ISO00001/refunds",
                                            json={"out_refund_no": "ISOR0001", "amount": 100})
    assert status == 201, refund
    _, _, events = shop.client.request("GET", "/api/v1/events")
    assert events["data"], events
    return order, refund, events["data"][0]


@pytest.fixture
def coffee_shop_client(live_server):
    """Persona: 'Coffee Shop', another active merchant with its own HMAC payments app."""
    merchant = merchant_activate(merchant_id=MerchantFactory(short_name="Coffee Shop").pk, actor=None, reason="test")
    app = MerchantAppFactory(merchant=merchant, app_id="app_coffeeshop01", secret="coffee-shop-secret-0123456789")
    return AggpayClient(live_server.url, app.app_id, secret=app.secret)


def test_another_merchant_can_neither_see_nor_act_on_tea_houses_orders_and_refunds(
        shop, tea_house_paid_and_refunded, coffee_shop_client):
    order, refund, _ = tea_house_paid_and_refunded
    not_found = [
        ("GET", "/api/v1/orders/ISO00001", None), ("GET", f"/api/v1/orders/{order['id']}", None),
        ("POST", "/api/v1/orders/ISO00001/close", None), ("POST", "/api/v1/orders/ISO00001/reverse", None),
        ("GET", "/api/v1/orders/ISO00001/refunds", None),
        ("POST", "/api/v1/orders/ISO00001/refunds", {"out_refund_no": "COFFEE01", "amount": 100}),
        ("POST", "/api/v1/orders/ISO00001/refunds", {"out_refund_no": "ISOR0001", "amount": 100}),
        ("GET", "/api/v1/refunds/ISOR0001", None), ("GET", f"/api/v1/refunds/{refund['id']}", None),
    ]
    for method, path, body in not_found:
        status, headers, answer = (coffee_shop_client.request(method, path, json=body) if body is not None
                                   else coffee_shop_client.request(method, path))
        assert status == 404 and answer["error"]["code"] == "not_found", (method, path, answer)
        assert signing.SIGNATURE_HEADER in headers  # signed for Coffee Shop (the client verified it)
    paid = Order.objects.get(pk=order["id"])
    assert (paid.state, paid.refund_reserved) == ("succeeded", 100)
    assert list(Refund.objects.filter(order=paid).values_list("out_refund_no", flat=True)) == ["ISOR0001"]


def test_another_merchants_lists_hold_nothing_of_tea_house_and_its_ids_are_no_cursor(
        shop, tea_house_paid_and_refunded, coffee_shop_client):
    order, _, event = tea_house_paid_and_refunded
    for path in ("/api/v1/orders", "/api/v1/events"):
        status, _, answer = coffee_shop_client.request("GET", path)
        assert (status, answer) == (200, {"data": [], "has_more": False}), (path, answer)
    for path, theirs, made_up in (("/api/v1/orders", order["id"], "ord_doesnotexist"),
                                  ("/api/v1/events", event["id"], "evt_doesnotexist")):
        status, _, answer = coffee_shop_client.request("GET", path, params={"starting_after": theirs})
        _, _, unknown = coffee_shop_client.request("GET", path, params={"starting_after": made_up})
        assert status == 400 and answer["error"]["param"] == "starting_after", (path, answer)
        assert answer["error"]["message"].replace(theirs, "") == unknown["error"]["message"].replace(made_up, "")


def test_an_app_of_the_same_merchant_without_the_payments_scope_reaches_none_of_its_trades(
        shop, tea_house_paid_and_refunded, live_server):
    app = MerchantAppFactory(merchant=shop.merchant, app_id="app_teahouseonb1", scopes=["onboarding"],
                             secret="tea-house-onboarding-secret-0123")
    client = AggpayClient(live_server.url, app.app_id, secret=app.secret)
    for method, path in [("GET", "/api/v1/orders"), ("GET", "/api/v1/orders/ISO00001"),
                         ("POST", "/api/v1/orders/ISO00001/close"), ("POST", "/api/v1/orders/ISO00001/reverse"),
                         ("GET", "/api/v1/orders/ISO00001/refunds"), ("POST", "/api/v1/orders/ISO00001/refunds"),
                         ("GET", "/api/v1/refunds/ISOR0001"), ("GET", "/api/v1/bills/2020-01-01")]:
        status, _, answer = client.request(method, path)
        assert status == 403 and answer["error"]["code"] == "forbidden", (method, path, answer)
        assert "payments" in answer["error"]["message"]
    status, _, events = client.request("GET", "/api/v1/events")
    assert (status, events) == (200, {"data": [], "has_more": False})  # order and refund events are payments'
    assert Order.objects.get(out_trade_no="ISO00001", merchant=shop.merchant).state == "succeeded"

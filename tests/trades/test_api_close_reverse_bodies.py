"""Close and reverse take no request body (the OpenAPI document has none for them): nothing, or ``{}``. Anything else
is refused before the order is touched — a field with ``400 invalid_request`` naming it, as docs/api.md "Errors"
promises for a field an operation does not know. Bug: ``{"bogus": true}`` closed the order (200) and ``{"reason":
"x"}`` reversed a paid one (200), as if the body had been read."""

from __future__ import annotations

import pytest

from tests.trades.bank_flow import paid_by_code_at_the_bank
from trades.models import ChannelCall, Event, Order

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _pending(shop, out_trade_no: str) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201 and order["state"] == "pending", order
    return Order.objects.get(pk=order["id"])


def _snapshot(order: Order) -> tuple:
    """What a close or reverse would change: the order's state, expiry and reverse mark, the channel calls made for
    it and its events."""
    now = Order.objects.get(pk=order.pk)
    return (now.state, now.expires_at, now.reverse_requested_at, now.refunded_amount,
            list(ChannelCall.objects.filter(order_id=order.pk).order_by("pk").values_list("verb", flat=True)),
            list(Event.objects.filter(object_id=order.pk).order_by("pk").values_list("type", flat=True)))


def _refused(response, param):
    body = response.json()
    assert response.status_code == 400, body
    assert (body["error"]["code"], body["error"]["param"]) == ("invalid_request", param), body
    return body["error"]


def test_a_close_with_a_field_is_refused_naming_it_and_the_order_stays_pending(shop, signed_api):
    order = _pending(shop, "BODY0001")
    before = _snapshot(order)
    error = _refused(signed_api(shop.app).post("/api/v1/orders/BODY0001/close", json={"bogus": True}), "bogus")
    assert error["message"].startswith("bogus: unknown field")
    assert _snapshot(order) == before and before[0] == "pending"


def test_a_reverse_with_a_reason_is_refused_naming_it_and_the_paid_order_is_not_reversed(shop, signed_api):
    order = paid_by_code_at_the_bank(shop, "BODY0002")
    before = _snapshot(order)
    _refused(signed_api(shop.app).post("/api/v1/orders/BODY0002/reverse", json={"reason": "x"}), "reason")
    assert _snapshot(order) == before and before[:4] == ("succeeded", order.expires_at, None, 0)


@pytest.mark.parametrize("body", [b"[]", b"null", b'"close"', b"1"], ids=["list", "null", "string", "number"])
def test_a_close_whose_body_is_json_but_not_an_object_is_refused_without_a_param(shop, signed_api, body):
    order = _pending(shop, "BODY0003")
    before = _snapshot(order)
    error = _refused(signed_api(shop.app).post("/api/v1/orders/BODY0003/close", body=body), None)
    assert "takes no body" in error["message"]
    assert _snapshot(order) == before


def test_a_close_whose_body_is_not_json_is_refused(shop, signed_api):
    order = _pending(shop, "BODY0004")
    before = _snapshot(order)
    response = signed_api(shop.app).post("/api/v1/orders/BODY0004/close", body=b"reason=x",
                                         content_type="application/x-www-form-urlencoded")
    _refused(response, None)
    assert _snapshot(order) == before


@pytest.mark.parametrize("body", [b"", b"{}"], ids=["empty", "empty-object"])
def test_a_close_with_no_body_or_an_empty_object_still_closes(shop, signed_api, body):
    _pending(shop, "BODY0005")
    response = signed_api(shop.app).post("/api/v1/orders/BODY0005/close", body=body)
    assert response.status_code == 200 and response.json()["state"] == "closed", response.json()


def test_a_reverse_with_an_empty_object_still_reverses(shop, signed_api):
    paid_by_code_at_the_bank(shop, "BODY0006")
    response = signed_api(shop.app).post("/api/v1/orders/BODY0006/reverse", json={})
    assert response.status_code == 200 and response.json()["state"] == "reversed", response.json()


def test_the_field_is_named_before_the_order_is_looked_up(shop, signed_api):
    # "Before anything happens": the same answer whether or not the order exists.
    _refused(signed_api(shop.app).post("/api/v1/orders/NOSUCH01/close", json={"note": 1}), "note")

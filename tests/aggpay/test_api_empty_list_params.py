"""A list's known query parameter given empty is refused naming it (docs/api.md "Errors": a parameter a list does not
know is ignored, the values of those it knows are checked — never an answer that reads as filtered when it is not).

Bug: DRF reads a query string as an HTML form, where an empty optional field counts as not sent: `?wallet=` and
`?type=` listed everything unfiltered, `?state=` on an order's refunds too, and `?limit=` gave 20. And an app asking
for an event type its scopes never receive (`?type=merchant.submitted` from a payments app) got `200 {"data": []}`,
which reads as "no such event happened".
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from tests.factories import MerchantAppFactory
from trades.models import Order
from trades.services.events import event_emit

pytestmark = pytest.mark.django_db


def _refused(response, param: str) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param), error
    return error


def _order(app) -> Order:
    return Order.objects.create(merchant=app.merchant, app=app, out_trade_no="EMPTY0001", amount=1000,
                                product="wechat.native", subject="tea", request_fingerprint="x" * 64,
                                expires_at=timezone.now() + dt.timedelta(hours=2))


@pytest.mark.parametrize("query", ["state=", "wallet=", "limit=", "starting_after=", "created_gte=", "created_lt=",
                                   "wallet", "state=pending&wallet="])
def test_an_empty_value_of_an_orders_list_parameter_is_refused_naming_it(signed_api, tea_house_app, query):
    _order(tea_house_app)
    param = query.rsplit("&", 1)[-1].split("=", 1)[0]
    error = _refused(signed_api(tea_house_app).get(f"/api/v1/orders?{query}"), param)
    assert "empty" in error["message"]


@pytest.mark.parametrize("query", ["state=", "limit="])
def test_an_empty_value_of_an_orders_refunds_list_parameter_is_refused_naming_it(signed_api, tea_house_app, query):
    _order(tea_house_app)
    _refused(signed_api(tea_house_app).get(f"/api/v1/orders/EMPTY0001/refunds?{query}"), query.rstrip("="))


@pytest.mark.parametrize("query", ["type=", "limit=", "starting_after="])
def test_an_empty_value_of_an_events_list_parameter_is_refused_naming_it(signed_api, tea_house_app, query):
    _refused(signed_api(tea_house_app).get(f"/api/v1/events?{query}"), query.rstrip("="))


def test_a_parameter_the_list_does_not_know_is_still_ignored_even_empty(signed_api, tea_house_app):
    _order(tea_house_app)
    response = signed_api(tea_house_app).get("/api/v1/orders?_=&state=pending")
    assert response.status_code == 200, response.content
    assert [order["out_trade_no"] for order in response.json()["data"]] == ["EMPTY0001"]


def test_a_payments_app_asking_for_a_partner_event_type_is_refused_naming_type(signed_api, tea_house_app):
    error = _refused(signed_api(tea_house_app).get("/api/v1/events?type=merchant.submitted"), "type")
    assert "onboarding" in error["message"]


def test_an_onboarding_app_asking_for_an_order_event_type_is_refused_naming_type(signed_api, westlake_app):
    error = _refused(signed_api(westlake_app).get("/api/v1/events?type=order.succeeded"), "type")
    assert "payments" in error["message"]


def test_an_app_with_both_scopes_lists_either_kind(signed_api, westlake_app):
    both = MerchantAppFactory(merchant=westlake_app.merchant, scopes=["payments", "onboarding"])
    with transaction.atomic():
        event = event_emit(merchant=both.merchant, type="merchant.submitted", obj_type="merchant", obj_id="M1",
                           data={"merchant_no": "M1"})
    api = signed_api(both)
    submitted = api.get("/api/v1/events?type=merchant.submitted")
    assert submitted.status_code == 200 and [e["id"] for e in submitted.json()["data"]] == [event.event_id]
    assert api.get("/api/v1/events?type=order.succeeded").json()["data"] == []

"""GET /api/v1/events — the pull fallback for merchants who miss notifications (merchant-api.md "Notifications and
events", list conventions of "Conventions")."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote

import pytest
from django.db import transaction

from aggpay.api import signing
from tests.factories import MerchantAppFactory, MerchantFactory
from trades.models import Event
from trades.services.events import event_body, event_emit

pytestmark = pytest.mark.django_db


def emit(merchant, *, type="order.succeeded", obj_type="order", obj_id="ord_1", data=None) -> Event:
    with transaction.atomic():
        return event_emit(merchant=merchant, type=type, obj_type=obj_type, obj_id=obj_id,
                          data=data or {"id": obj_id})


def ids(response) -> list[str]:
    return [item["id"] for item in response.json()["data"]]


def test_it_lists_the_merchants_events_newest_first_as_the_notifications_carry_them(signed_api, tea_house_app):
    first = emit(tea_house_app.merchant, obj_id="ord_1")
    second = emit(tea_house_app.merchant, type="order.closed", obj_id="ord_2")
    response = signed_api(tea_house_app).get("/api/v1/events")
    assert response.status_code == 200
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)
    body = response.json()
    assert body["has_more"] is False
    assert ids(response) == [second.event_id, first.event_id]
    assert body["data"][1] == json.loads(event_body(first))  # the same object the notify URL received


def test_it_pages_with_limit_and_starting_after(signed_api, tea_house_app):
    events = [emit(tea_house_app.merchant, obj_id=f"ord_{i}") for i in range(5)]
    newest_first = [e.event_id for e in reversed(events)]
    api = signed_api(tea_house_app)

    page1 = api.get("/api/v1/events?limit=2")
    assert ids(page1) == newest_first[:2] and page1.json()["has_more"] is True
    page2 = api.get(f"/api/v1/events?limit=2&starting_after={newest_first[1]}")
    assert ids(page2) == newest_first[2:4] and page2.json()["has_more"] is True
    page3 = api.get(f"/api/v1/events?limit=2&starting_after={newest_first[3]}")
    assert ids(page3) == newest_first[4:] and page3.json()["has_more"] is False


def test_events_created_in_the_same_instant_keep_a_stable_order(signed_api, tea_house_app):
    # Three events with one timestamp: the id breaks the tie, so pages neither repeat nor skip an event.
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for i in range(3):  # rows written directly: event_emit always stamps "now"
        Event.objects.create(merchant=tea_house_app.merchant, type="order.succeeded", object_type="order",
                             object_id=f"ord_t{i}", sequence=1, data={}, created_at=moment)
    api = signed_api(tea_house_app)
    everything = ids(api.get("/api/v1/events?limit=100"))
    seen, cursor = [], None
    while True:
        target = "/api/v1/events?limit=1" + (f"&starting_after={cursor}" if cursor else "")
        response = api.get(target)
        seen += ids(response)
        if not response.json()["has_more"]:
            break
        cursor = seen[-1]
    assert seen == everything and len(set(seen)) == 3


def test_it_filters_by_type_and_creation_time(signed_api, tea_house_app):
    paid = emit(tea_house_app.merchant, obj_id="ord_1")
    emit(tea_house_app.merchant, type="order.closed", obj_id="ord_2")
    api = signed_api(tea_house_app)
    assert ids(api.get("/api/v1/events?type=order.succeeded")) == [paid.event_id]
    after = quote((paid.created_at + dt.timedelta(microseconds=1)).isoformat())
    assert paid.event_id not in ids(api.get(f"/api/v1/events?created_gte={after}"))
    assert ids(api.get(f"/api/v1/events?created_lt={after}")) == [paid.event_id]


@pytest.mark.parametrize("query, param", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
    ("starting_after=evt_doesnotexist", "starting_after"), ("type=Order%20Paid", "type"),
    ("type=order.paid", "type"),  # shaped like a type but not one: an empty list would read as "no payments"
    ("created_gte=yesterday", "created_gte"),
])
def test_bad_parameters_are_400s_naming_the_parameter(signed_api, tea_house_app, query, param):
    response = signed_api(tea_house_app).get(f"/api/v1/events?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["param"] == param


def test_another_merchants_events_are_invisible_even_as_a_cursor(signed_api, tea_house_app):
    theirs = emit(MerchantFactory(), obj_id="ord_theirs")
    mine = emit(tea_house_app.merchant, obj_id="ord_mine")
    api = signed_api(tea_house_app)
    assert ids(api.get("/api/v1/events")) == [mine.event_id]
    response = api.get(f"/api/v1/events?starting_after={theirs.event_id}")
    assert response.status_code == 400 and response.json()["error"]["param"] == "starting_after"


def test_partners_list_the_merchant_events_of_their_merchants_and_payments_apps_do_not(signed_api, westlake_app):
    onboarded = MerchantFactory(partner=westlake_app.merchant)
    merchant_event = emit(westlake_app.merchant, type="merchant.submitted", obj_type="merchant",
                          obj_id=onboarded.merchant_no)
    order_event = emit(westlake_app.merchant, obj_id="ord_partner_own")
    payments_app = MerchantAppFactory(merchant=westlake_app.merchant, scopes=["payments"])

    assert ids(signed_api(westlake_app).get("/api/v1/events")) == [merchant_event.event_id]
    assert ids(signed_api(payments_app).get("/api/v1/events")) == [order_event.event_id]
    # The onboarded merchant's own app does not see what its partner is told.
    assert ids(signed_api(MerchantAppFactory(merchant=onboarded)).get("/api/v1/events")) == []

"""``starting_after`` is a position in the caller's list, which the list's filters narrow (aggpay/api/lists.py
``page``), as Stripe's cursors are: a cursor taken from the unfiltered list pages a filtered one from there. Bug:
`GET /api/v1/events?type=refund.succeeded&starting_after=<an order.succeeded event>` was a 400 "no object … in this
list", though the event is the merchant's and was in the list the merchant had read."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from tests.factories import MerchantAppFactory, MerchantFactory
from trades.models import Order
from trades.services.events import event_emit

pytestmark = pytest.mark.django_db


def _emit(merchant, type_: str, obj_id: str):
    obj_type = type_.split(".")[0]
    with transaction.atomic():
        return event_emit(merchant=merchant, type=type_, obj_type=obj_type, obj_id=obj_id, data={"id": obj_id})


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["data"]]


@pytest.fixture
def feed(tea_house_app):
    """Oldest first: refund R1 succeeded, order O2 succeeded, refund R3 succeeded, order O4 succeeded."""
    merchant = tea_house_app.merchant
    return [_emit(merchant, "refund.succeeded", "ref_1"), _emit(merchant, "order.succeeded", "ord_2"),
            _emit(merchant, "refund.succeeded", "ref_3"), _emit(merchant, "order.succeeded", "ord_4")]


def test_a_cursor_from_the_unfiltered_list_pages_a_filtered_one_from_there(signed_api, tea_house_app, feed):
    r1, o2, r3, o4 = feed
    api = signed_api(tea_house_app)
    assert _ids(api.get(f"/api/v1/events?type=refund.succeeded&starting_after={o4.event_id}")) == [r3.event_id,
                                                                                                  r1.event_id]
    assert _ids(api.get(f"/api/v1/events?type=refund.succeeded&starting_after={o2.event_id}")) == [r1.event_id]
    assert _ids(api.get(f"/api/v1/events?type=order.succeeded&starting_after={r1.event_id}")) == []


def test_paging_within_a_filter_is_unchanged(signed_api, tea_house_app, feed):
    r1, _, r3, _ = feed
    api = signed_api(tea_house_app)
    first = api.get("/api/v1/events?type=refund.succeeded&limit=1")
    assert _ids(first) == [r3.event_id] and first.json()["has_more"] is True
    second = api.get(f"/api/v1/events?type=refund.succeeded&limit=1&starting_after={r3.event_id}")
    assert _ids(second) == [r1.event_id] and second.json()["has_more"] is False


def test_a_cursor_the_app_cannot_see_is_still_refused(signed_api, tea_house_app, feed):
    other = MerchantFactory()
    MerchantAppFactory(merchant=other)
    theirs = _emit(other, "refund.succeeded", "ref_9")
    response = signed_api(tea_house_app).get(f"/api/v1/events?type=refund.succeeded&starting_after={theirs.event_id}")
    assert response.status_code == 400 and response.json()["error"]["param"] == "starting_after"


def _order(app, out_trade_no: str, state: str, minutes_ago: int) -> Order:
    order = Order.objects.create(merchant=app.merchant, app=app, out_trade_no=out_trade_no, amount=100,
                                 product="wechat.native", subject="tea", request_fingerprint="x" * 64,
                                 expires_at=timezone.now() + dt.timedelta(hours=2), state=state)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - dt.timedelta(minutes=minutes_ago))
    return order


def test_the_orders_state_filter_takes_a_cursor_of_another_state(signed_api, tea_house_app):
    oldest = _order(tea_house_app, "CUR00001", "succeeded", 30)
    pending = _order(tea_house_app, "CUR00002", "pending", 20)
    _order(tea_house_app, "CUR00003", "succeeded", 10)
    response = signed_api(tea_house_app).get(f"/api/v1/orders?state=succeeded&starting_after={pending.pk}")
    assert _ids(response) == [oldest.pk]

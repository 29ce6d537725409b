"""Staff moving an app's notify URL (merchants.services.apps.merchant_app_notify_url_set): the notifications still
owed at the old address follow it — the next attempt and a support resend go to the new receiver — while delivered
ones stay history and an order's own notify_url is left alone."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from aggpay.models import AuditLog
from merchants.services.apps import merchant_app_notify_url_set
from trades.models import Delivery, DeliveryState
from trades.services.events import deliveries_resend, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db

OLD_URL = "http://127.0.0.1:9/gone"  # nothing listens on the discard port: every attempt there fails


def _emit(app, obj_id: str, *, notify_url: str | None = None) -> Delivery:
    order = {"id": obj_id, "out_trade_no": "T" + obj_id[-6:], "amount": 990, "state": "succeeded"}
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id=obj_id,
                           data=order, app=app, notify_url=notify_url)
    return event.deliveries.get()


def _due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


@pytest.fixture
def moving_shop(tea_house_app):
    tea_house_app.notify_url = OLD_URL
    tea_house_app.save()
    return tea_house_app


def test_a_failing_notification_goes_to_the_new_url_once_staff_change_it(moving_shop, clerk_wang,
                                                                         callback_receiver):
    delivery = delivery_attempt(delivery_id=_emit(moving_shop, "ord_000001").pk)
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1  # the old receiver is gone

    merchant_app_notify_url_set(app_id=moving_shop.app_id, actor=clerk_wang, notify_url=callback_receiver.url)
    _due(delivery)
    delivery = delivery_attempt(delivery_id=delivery.pk)

    assert delivery.state == DeliveryState.DELIVERED
    assert [r["body"] for r in callback_receiver.requests] and delivery.url == callback_receiver.url
    changed = AuditLog.objects.get(action="merchants.app.notify_url_changed")
    assert changed.data["deliveries_moved"] == 1


def test_an_exhausted_notification_resent_by_support_goes_to_the_new_url(moving_shop, clerk_wang, callback_receiver,
                                                                         staff_member):
    delivery = _emit(moving_shop, "ord_000002")
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.EXHAUSTED, next_attempt_at=None)

    merchant_app_notify_url_set(app_id=moving_shop.app_id, actor=clerk_wang, notify_url=callback_receiver.url)
    deliveries_resend(delivery_id=delivery.pk, actor=staff_member("support_agent"), reason="merchant moved")
    delivery = delivery_attempt(delivery_id=delivery.pk)

    assert delivery.state == DeliveryState.DELIVERED and len(callback_receiver.requests) == 1


def test_delivered_notifications_and_an_orders_own_url_stay_where_they_were(moving_shop, clerk_wang,
                                                                            callback_receiver):
    delivered = _emit(moving_shop, "ord_000003")
    Delivery.objects.filter(pk=delivered.pk).update(state=DeliveryState.DELIVERED)
    own = _emit(moving_shop, "ord_000004", notify_url="http://127.0.0.1:9/the-orders-own")

    merchant_app_notify_url_set(app_id=moving_shop.app_id, actor=clerk_wang, notify_url=callback_receiver.url)

    assert Delivery.objects.get(pk=delivered.pk).url == OLD_URL
    assert Delivery.objects.get(pk=own.pk).url == "http://127.0.0.1:9/the-orders-own"


def test_clearing_the_url_leaves_the_owed_notifications_where_they_were(moving_shop, clerk_wang):
    delivery = _emit(moving_shop, "ord_000005")
    merchant_app_notify_url_set(app_id=moving_shop.app_id, actor=clerk_wang, notify_url="")
    assert Delivery.objects.get(pk=delivery.pk).url == OLD_URL

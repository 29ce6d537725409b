"""Notifications owed to an app that staff deactivate, reactivate or give a new secret (merchant-api.md
"Authentication and signing", "Notifications and events"; trades.services.events, the note above ``_claim``):

- a deactivated app's pending notifications are held — not posted, not counted as attempts, never exhausted by the
  wait — while its events stay in the merchant's pull feed; once the app is reactivated the next sweep sends them,
  and a delivery part-way up the retry ladder goes on from the rung it had reached;
- after a secret rotation every notification, a retry of an older event too, is signed with the current secret.

Real POSTs to a local receiver; the apps change through the staff services (merchants.services.apps)."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from aggpay.api import signing
from merchants.models import MerchantApp
from merchants.services.apps import (
    merchant_app_deactivate,
    merchant_app_reactivate,
    merchant_app_secret_rotate,
)
from tests.trades.events_feed import new_events
from tests.trades.test_deliveries import emit, make_due
from trades.models import Delivery, DeliveryAttempt
from trades.services.events import deliveries_due, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(tea_house_app, callback_receiver):
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    return tea_house_app


def _deactivate(app, clerk):
    merchant_app_deactivate(app_id=app.app_id, actor=clerk, reason="merchant moving its systems")


def _reactivate(app, clerk):
    merchant_app_reactivate(app_id=app.app_id, actor=clerk, reason="merchant moved")


def test_a_deactivated_apps_pending_notification_is_neither_posted_nor_counted(shop, callback_receiver, clerk_wang):
    delivery = emit(shop)
    _deactivate(shop, clerk_wang)

    held = delivery_attempt(delivery_id=delivery.pk)  # the task enqueued when the event was written

    assert callback_receiver.requests == []
    assert (held.state, held.attempts, held.claimed_until) == ("pending", 0, None)
    assert not DeliveryAttempt.objects.filter(delivery=delivery).exists()
    assert deliveries_due() == []  # the sweeper leaves it alone while the app is inactive


def test_waiting_longer_than_the_whole_ladder_does_not_exhaust_it(shop, callback_receiver, clerk_wang):
    delivery = emit(shop)
    _deactivate(shop, clerk_wang)

    for _ in range(20):  # more tries than the ladder's 17 attempts
        make_due(delivery)
        deliveries_due()
        delivery = delivery_attempt(delivery_id=delivery.pk)

    assert (delivery.state, delivery.attempts) == ("pending", 0) and callback_receiver.requests == []


def test_the_held_notification_is_sent_by_the_first_sweep_after_reactivation(shop, callback_receiver, clerk_wang):
    delivery = emit(shop)
    _deactivate(shop, clerk_wang)
    delivery_attempt(delivery_id=delivery.pk)
    _reactivate(shop, clerk_wang)

    assert deliveries_due() == [delivery.pk]  # Celery runs eagerly here: the enqueued task posts at once

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    [request] = callback_receiver.requests
    assert json.loads(request["body"])["id"] == delivery.event.event_id
    assert signing.verify_response(request["headers"], request["body"], secret=shop.secret)


def test_a_delivery_part_way_up_the_ladder_goes_on_from_its_rung(shop, callback_receiver, clerk_wang):
    callback_receiver.status = 500
    delivery = emit(shop)
    for _ in range(2):  # two failures: the third attempt is next
        delivery = delivery_attempt(delivery_id=delivery.pk)
        make_due(delivery)
    _deactivate(shop, clerk_wang)
    delivery_attempt(delivery_id=delivery.pk)
    _reactivate(shop, clerk_wang)
    callback_receiver.status = 200

    deliveries_due()

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 3)
    assert [a.status_code for a in delivery.attempt_log.order_by("number")] == [500, 500, 200]


def test_its_events_stay_in_the_pull_feed_for_when_the_app_is_back(shop, callback_receiver, clerk_wang, signed_api):
    before = emit(shop)
    _deactivate(shop, clerk_wang)
    delivery_attempt(delivery_id=before.pk)
    _reactivate(shop, clerk_wang)

    feed = new_events(signed_api(MerchantApp.objects.get(pk=shop.pk)), set())

    assert [item["id"] for item in feed] == [before.event.event_id]
    assert feed[0]["data"]["object"]["id"] == "ord_42"


def test_after_a_rotation_a_retry_is_signed_with_the_new_secret(shop, callback_receiver, clerk_wang):
    callback_receiver.status = 503
    delivery = delivery_attempt(delivery_id=emit(shop).pk)  # signed with the old secret, refused
    old_secret = shop.secret
    _, new_secret = merchant_app_secret_rotate(app_id=shop.app_id, actor=clerk_wang, reason="leaked")
    callback_receiver.status = 200
    make_due(delivery)

    delivery = delivery_attempt(delivery_id=delivery.pk)

    first, retry = callback_receiver.requests
    assert signing.verify_response(first["headers"], first["body"], secret=old_secret)
    assert signing.verify_response(retry["headers"], retry["body"], secret=new_secret)
    assert not signing.verify_response(retry["headers"], retry["body"], secret=old_secret)
    assert delivery.state == "delivered" and first["body"] == retry["body"]


def test_an_order_of_a_deactivated_app_gets_no_delivery_but_is_in_the_feed(shop, clerk_wang):
    # Unchanged rule, pinned here beside the held ones: an event emitted while the app is inactive makes no delivery
    # (trades.services.events._recipients); the merchant reads it from GET /api/v1/events once the app is back.
    _deactivate(shop, clerk_wang)
    app = MerchantApp.objects.get(pk=shop.pk)
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id="ord_43",
                           data={"id": "ord_43"}, app=app)
    assert not Delivery.objects.filter(event=event).exists()

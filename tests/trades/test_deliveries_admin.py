"""The admin shows events and deliveries read-only and resends through the service, with a reason (style.md §15)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction

from aggpay.models import AuditLog
from tests.factories import UserFactory
from trades.models import Delivery
from trades.services.events import event_emit

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(tea_house_app):
    with transaction.atomic():
        event = event_emit(merchant=tea_house_app.merchant, type="order.succeeded", obj_type="order",
                           obj_id="ord_admin", data={"id": "ord_admin"})
    return event.deliveries.get()


def _staff(client, *codenames):
    user = UserFactory(username="li.support")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="trades", codename__in=codenames))
    client.force_login(user)
    return user


def test_staff_see_events_and_deliveries_but_cannot_edit_them(client, delivery):
    _staff(client, "view_event", "view_delivery")
    assert delivery.event.event_id in client.get("/admin/trades/event/").content.decode()
    page = client.get(f"/admin/trades/delivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b'name="url"' not in page.content  # read-only
    assert client.get("/admin/trades/delivery/add/").status_code == 403


def test_the_resend_action_asks_for_a_reason_and_calls_the_service(client, delivery, callback_receiver,
                                                                 django_capture_on_commit_callbacks):
    user = _staff(client, "view_delivery", "resend_delivery")
    Delivery.objects.filter(pk=delivery.pk).update(url=callback_receiver.url)
    form = {"action": "resend", "_selected_action": [delivery.pk]}
    asked = client.post("/admin/trades/delivery/", form)
    assert asked.status_code == 200 and b"reason" in asked.content
    with django_capture_on_commit_callbacks(execute=True):  # the action's commit enqueues; Celery is eager
        client.post("/admin/trades/delivery/", {**form, "apply": "1", "reason": "merchant asked"})
    audit = AuditLog.objects.get(action="trades.delivery.resent")
    assert (audit.actor, audit.reason) == (user, "merchant asked")
    assert len(callback_receiver.requests) == 1


def test_without_the_permission_there_is_no_resend_action(client, delivery):
    _staff(client, "view_delivery")
    page = client.get("/admin/trades/delivery/")
    assert b'value="resend"' not in page.content

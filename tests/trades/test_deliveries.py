"""Posting notifications (merchant-api.md "Notifications and events"): signed bodies to a real local receiver, any
2xx acknowledges, the contract's retry ladder, exhaustion, support's resend and the sweeper."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from aggpay.api import signing
from aggpay.errors import Forbidden, InvalidRequest
from aggpay.models import AuditLog
from aggpay.platform_keys import platform_key
from tests.factories import MerchantAppFactory, UserFactory
from trades.models import Delivery, DeliveryAttempt
from trades.services.events import deliveries_due, deliveries_resend, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db

ORDER = {"id": "ord_42", "out_trade_no": "T1042", "amount": 990, "state": "succeeded"}
# merchant-api.md: 1 min, 5 min ×2, 10 min ×5, 1 h ×5, 6 h ×3 — written out here, not read from the code.
LADDER_SECONDS = [60, 300, 300, 600, 600, 600, 600, 600, 3600, 3600, 3600, 3600, 3600, 21600, 21600, 21600]


def emit(app, *, type="order.succeeded", obj_id="ord_42", data=ORDER) -> Delivery:
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type=type, obj_type="order", obj_id=obj_id, data=data)
    return event.deliveries.get()


def make_due(delivery: Delivery) -> None:
    """Time passes: the next attempt's time has come."""
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


@pytest.fixture
def shop(tea_house_app, callback_receiver):
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    return tea_house_app


def test_a_delivery_posts_the_signed_event_and_a_2xx_acknowledges(shop, callback_receiver):
    callback_receiver.status, callback_receiver.body = 204, b""
    delivery = delivery_attempt(delivery_id=emit(shop).pk)

    [request] = callback_receiver.requests
    body, headers = request["body"], request["headers"]
    assert signing.verify_response(headers, body, secret=shop.secret)
    assert not signing.verify_response(headers, body + b" ", secret=shop.secret)
    payload = json.loads(body)
    event = delivery.event
    assert payload == {"id": event.event_id, "type": "order.succeeded", "created_at": payload["created_at"],
                       "sequence": 1, "data": {"object": ORDER}}
    assert dt.datetime.fromisoformat(payload["created_at"]) == event.created_at
    assert headers["aggpay-event-id"] == event.event_id
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert delivery.state == "delivered" and delivery.delivered_at is not None
    assert delivery.next_attempt_at is None and delivery.claimed_until is None


def test_an_rsa_apps_notification_verifies_with_the_platform_public_key(tea_house_rsa_app, callback_receiver):
    tea_house_rsa_app.notify_url = callback_receiver.url
    tea_house_rsa_app.save()
    delivery_attempt(delivery_id=emit(tea_house_rsa_app).pk)
    [request] = callback_receiver.requests
    assert signing.verify_response(request["headers"], request["body"],
                                   platform_public_key_pem=platform_key().public_key_pem)


def test_every_attempt_is_logged_with_status_latency_and_a_bounded_snippet(shop, callback_receiver):
    callback_receiver.status, callback_receiver.body = 500, b"E" * 5000
    delivery = delivery_attempt(delivery_id=emit(shop).pk)
    [attempt] = delivery.attempt_log.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 500, "")
    assert attempt.duration_ms is not None and attempt.finished_at >= attempt.started_at
    assert attempt.response_snippet == "E" * 1024


def test_failed_attempts_follow_the_contracts_ladder_exactly(shop, callback_receiver):
    callback_receiver.status = 503
    delivery = emit(shop)
    waits = []
    for number in range(1, 17):
        delivery = delivery_attempt(delivery_id=delivery.pk)
        attempt = delivery.attempt_log.get(number=number)
        assert delivery.state == "pending" and delivery.attempts == number
        waits.append((delivery.next_attempt_at - attempt.finished_at).total_seconds())
        make_due(delivery)
    assert waits == LADDER_SECONDS
    assert sum(waits) / 3600 == pytest.approx(24.0, abs=1.5)  # "about 24 h in all"


def test_the_delivery_is_exhausted_when_the_last_retry_fails(shop, callback_receiver):
    callback_receiver.status = 500
    delivery = emit(shop)
    for _ in range(16):
        delivery = delivery_attempt(delivery_id=delivery.pk)
        make_due(delivery)
    assert delivery.state == "pending"  # 16 failures: one retry (6 h) is still to come
    delivery = delivery_attempt(delivery_id=delivery.pk)
    assert delivery.state == "exhausted" and delivery.next_attempt_at is None
    assert delivery.attempt_log.count() == 17 == len(callback_receiver.requests)
    make_due(delivery)
    delivery_attempt(delivery_id=delivery.pk)
    assert len(callback_receiver.requests) == 17  # nothing more is sent


def test_a_later_2xx_acknowledges_after_failures(shop, callback_receiver):
    callback_receiver.status = 502
    delivery = delivery_attempt(delivery_id=emit(shop).pk)
    make_due(delivery)
    callback_receiver.status = 200
    delivery = delivery_attempt(delivery_id=delivery.pk)
    assert delivery.state == "delivered"
    assert [a.status_code for a in delivery.attempt_log.all()] == [502, 200]
    ids = {json.loads(r["body"])["id"] for r in callback_receiver.requests}
    assert ids == {delivery.event.event_id}  # a retry is the same event


def test_a_delivered_delivery_is_not_sent_again(shop, callback_receiver):
    delivery = delivery_attempt(delivery_id=emit(shop).pk)
    make_due(delivery)
    again = delivery_attempt(delivery_id=delivery.pk)
    assert again.state == "delivered" and len(callback_receiver.requests) == 1


def test_a_duplicate_task_before_the_retry_is_due_sends_nothing(shop, callback_receiver):
    callback_receiver.status = 500
    delivery = delivery_attempt(delivery_id=emit(shop).pk)
    again = delivery_attempt(delivery_id=delivery.pk)
    assert len(callback_receiver.requests) == 1 and again.attempts == 1


def test_a_delivery_in_flight_on_another_worker_is_not_sent_twice(shop, callback_receiver):
    delivery = emit(shop)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() + dt.timedelta(seconds=30))
    delivery_attempt(delivery_id=delivery.pk)
    assert callback_receiver.requests == []


def test_an_unreachable_receiver_is_an_error_and_a_retry(tea_house_app):
    tea_house_app.notify_url = "http://127.0.0.1:9/notify"  # nothing listens on the discard port
    tea_house_app.save()
    delivery = delivery_attempt(delivery_id=emit(tea_house_app).pk)
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None and "ConnectionError" in attempt.error
    assert delivery.state == "pending" and delivery.next_attempt_at > timezone.now()


def test_non_http_notify_urls_are_refused_without_a_request(tea_house):
    app = MerchantAppFactory(merchant=tea_house, notify_url="file:///etc/passwd")
    delivery = delivery_attempt(delivery_id=emit(app).pk)
    [attempt] = delivery.attempt_log.all()
    assert attempt.error.startswith("refused") and attempt.status_code is None
    assert delivery.state == "pending"


@pytest.fixture
def redirector(callback_receiver):
    """Answers every POST with 302 to the callback receiver: following it would deliver there."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - stdlib naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(302)
            self.send_header("Location", callback_receiver.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/moved"
    server.shutdown()
    server.server_close()


def test_redirects_are_not_followed(tea_house, redirector, callback_receiver):
    app = MerchantAppFactory(merchant=tea_house, notify_url=redirector)
    delivery = delivery_attempt(delivery_id=emit(app).pk)
    assert delivery.attempt_log.get().status_code == 302
    assert delivery.state == "pending"
    assert callback_receiver.requests == []


# --- the sweeper ---------------------------------------------------------------------------------------------------
def test_the_sweeper_sends_exactly_the_due_deliveries(shop, callback_receiver):
    due_new = emit(shop, obj_id="ord_a")
    due_retry = emit(shop, obj_id="ord_b")
    callback_receiver.status = 500
    due_retry = delivery_attempt(delivery_id=due_retry.pk)
    make_due(due_retry)
    not_yet = delivery_attempt(delivery_id=emit(shop, obj_id="ord_c").pk)
    in_flight = emit(shop, obj_id="ord_d")
    Delivery.objects.filter(pk=in_flight.pk).update(claimed_until=timezone.now() + dt.timedelta(seconds=30))
    callback_receiver.status = 200
    done = delivery_attempt(delivery_id=emit(shop, obj_id="ord_e").pk)
    posted_before = len(callback_receiver.requests)

    swept = deliveries_due()  # Celery is eager in tests: the enqueued tasks run here

    assert sorted(swept) == sorted([due_new.pk, due_retry.pk])
    sent = {r["headers"]["aggpay-event-id"] for r in callback_receiver.requests[posted_before:]}
    assert sent == {due_new.event.event_id, due_retry.event.event_id}
    for delivery in (due_new, due_retry):
        delivery.refresh_from_db()
        assert delivery.state == "delivered"
    for delivery, state in ((not_yet, "pending"), (in_flight, "pending"), (done, "delivered")):
        delivery.refresh_from_db()
        assert delivery.state == state


def test_the_sweeper_retakes_a_delivery_whose_worker_died(shop, callback_receiver):
    # A worker claimed the delivery and died before recording an answer: its lease lapses, the sweeper picks the
    # delivery up, and the receiver gets the same event; the lost attempt is marked abandoned.
    delivery = emit(shop)
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(attempts=1, claimed_until=now - dt.timedelta(seconds=1))
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=now - dt.timedelta(seconds=61))

    assert deliveries_due() == [delivery.pk]

    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    lost, retried = delivery.attempt_log.all()
    assert lost.error.startswith("abandoned") and lost.status_code is None
    assert (retried.number, retried.status_code) == (2, 200)
    assert callback_receiver.requests[0]["headers"]["aggpay-event-id"] == delivery.event.event_id


# --- support resends --------------------------------------------------------------------------------------------------
@pytest.fixture
def support_agent(db):
    user = UserFactory(username="chen.support")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="trades", codename="resend_delivery"))
    return type(user).objects.get(pk=user.pk)


def _exhaust(delivery: Delivery) -> Delivery:
    for _ in range(17):
        delivery = delivery_attempt(delivery_id=delivery.pk)
        make_due(delivery)
    assert delivery.state == "exhausted"
    return delivery


def test_support_resends_an_exhausted_delivery_and_it_is_audited(shop, callback_receiver, support_agent):
    callback_receiver.status = 500
    delivery = _exhaust(emit(shop))
    callback_receiver.status = 200

    [resent] = deliveries_resend(delivery_id=delivery.pk, actor=support_agent, reason="merchant fixed its server")
    assert (resent.state, resent.attempts) == ("pending", 0)
    delivery = delivery_attempt(delivery_id=delivery.pk)
    assert delivery.state == "delivered"
    assert callback_receiver.requests[-1]["headers"]["aggpay-event-id"] == delivery.event.event_id
    audit = AuditLog.objects.get(action="trades.delivery.resent")
    assert (audit.actor, audit.reason, audit.data["from"]) == (support_agent, "merchant fixed its server",
                                                               "exhausted")


def test_support_resends_all_exhausted_deliveries_of_a_merchant(shop, callback_receiver, support_agent):
    callback_receiver.status = 500
    exhausted = [_exhaust(emit(shop, obj_id=f"ord_{i}")) for i in range(2)]
    still_trying = delivery_attempt(delivery_id=emit(shop, obj_id="ord_x").pk)
    other_app = MerchantAppFactory(notify_url=callback_receiver.url)
    elsewhere = _exhaust(emit(other_app, obj_id="ord_y"))

    resent = deliveries_resend(merchant=shop.merchant, actor=support_agent, reason="after the outage")

    assert sorted(d.pk for d in resent) == sorted(d.pk for d in exhausted)
    for delivery, state in ((still_trying, "pending"), (elsewhere, "exhausted")):
        delivery.refresh_from_db()
        assert delivery.state == state
    assert AuditLog.objects.filter(action="trades.delivery.resent").count() == 2


def test_resending_a_delivered_notification_sends_it_again(shop, callback_receiver, support_agent):
    delivery = delivery_attempt(delivery_id=emit(shop).pk)
    deliveries_resend(delivery_id=delivery.pk, actor=support_agent, reason="merchant lost it")
    delivery = delivery_attempt(delivery_id=delivery.pk)
    assert delivery.state == "delivered" and len(callback_receiver.requests) == 2


def test_resending_needs_the_permission_and_a_reason(shop, support_agent):
    delivery = emit(shop)
    with pytest.raises(Forbidden):
        deliveries_resend(delivery_id=delivery.pk, actor=UserFactory(username="nobody"), reason="because")
    with pytest.raises(InvalidRequest) as excinfo:
        deliveries_resend(delivery_id=delivery.pk, actor=support_agent, reason="  ")
    assert excinfo.value.param == "reason"
    with pytest.raises(InvalidRequest) as excinfo:
        deliveries_resend(actor=support_agent, reason="which one?")
    assert excinfo.value.param == "delivery_id"
    assert not AuditLog.objects.filter(action="trades.delivery.resent").exists()

"""The merchant-notification queues support works (a support lead's trial of the demo):

- *Exhausted deliveries* said "Resend one" with no button on the rows: each row has its own Resend, and shows the
  trade's out_trade_no, the last attempt's error and when it was made;
- after a resend the message says what happened — acknowledged, or refused again and retried on the ladder (the
  demo sends at once) — not "will be sent again" for an attempt already refused;
- notifications failing but not exhausted yet (retried on the ~24 h ladder) were visible only in the raw admin: a
  *Failing, still being retried* tab of the deliveries queue lists them with the same row, and the home page counts
  them;
- the lists cost a fixed few queries however many deliveries they hold.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from trades.models import Delivery
from trades.services.events import delivery_attempt, event_emit

pytestmark = pytest.mark.django_db(transaction=True)  # a resend sends at once, on commit, as in the demo

EXHAUSTED = reverse("trades:queue", args=["exhausted"])
FAILING = f"{EXHAUSTED}?show=failing"


@pytest.fixture
def receiver_down(tea_house_app, callback_receiver):
    """The merchant's notify URL answers 500 (its order server is broken)."""
    callback_receiver.status = 500
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    return callback_receiver


def _failing(app, no: str) -> Delivery:
    """An order.succeeded notification of order ``no``, sent at once and refused: pending on the ladder."""
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id=f"ord_{no}",
                           data={"id": f"ord_{no}", "out_trade_no": no, "amount": 2350})
    delivery = event.deliveries.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1), delivery
    return delivery


def _exhausted(app, no: str) -> Delivery:
    delivery = _failing(app, no)
    while delivery.state == "pending":  # every attempt of the ladder, each one due at once
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
        delivery = delivery_attempt(delivery_id=delivery.pk)
    return delivery


def _row(html: str, delivery: Delivery) -> str:
    match = re.search(rf'<tr data-delivery="{delivery.pk}">(.*?)</tr>', html, re.S)
    assert match, html
    return match.group(1)


def _said(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_an_exhausted_row_shows_the_trade_the_last_error_and_when_and_resends_itself(
        tea_house_app, receiver_down, client, agent):
    delivery = _exhausted(tea_house_app, "EX-ROW-1")
    row = _row(client.get(EXHAUSTED).content.decode(), delivery)
    assert f'data-out-trade-no="{delivery.pk}">EX-ROW-1<' in row
    assert re.search(rf'data-last-error="{delivery.pk}">HTTP 500<', row)
    last = delivery.attempt_log.order_by("-pk").first()
    assert f"{timezone.localtime(last.started_at):%Y-%m-%d %H:%M:%S}" in row
    assert f'data-resend="{delivery.pk}"' in row and ">Resend</button>" in row

    # Still broken: the resend's attempt is refused at once, and the message says so.
    response = client.post(reverse("trades:delivery-resend", args=[delivery.pk]), {"reason": "merchant asked"},
                           follow=True)
    assert response.redirect_chain[-1][0] == EXHAUSTED
    said = _said(response)
    assert said and "refused it again (HTTP 500)" in said[0] and "retried on the ladder" in said[0], said
    assert "will be sent again" not in said[0]
    assert AuditLog.objects.get(action="trades.delivery.resent", target_id=str(delivery.pk)).actor == agent

    # Fixed: acknowledged, and said so.
    receiver_down.status = 200
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    said = _said(client.post(reverse("trades:delivery-resend", args=[delivery.pk]), {"reason": "fixed"},
                             follow=True))
    assert "acknowledged it (HTTP 200)" in said[0], said
    assert Delivery.objects.get(pk=delivery.pk).state == "delivered"


def test_resending_all_of_a_merchants_exhausted_says_how_each_went(tea_house_app, receiver_down, client, agent):
    for no in ("EX-ALL-1", "EX-ALL-2"):
        _exhausted(tea_house_app, no)
    response = client.post(reverse("trades:resend-exhausted", args=[tea_house_app.merchant.merchant_no]),
                           {"reason": "receiver fixed, they say"}, follow=True)
    said = _said(response)
    assert "2 failed again (HTTP 500) and retried on the ladder" in said[0], said


def test_failing_deliveries_still_retried_are_counted_and_listed_for_support(tea_house_app, receiver_down, client,
                                                                             agent):
    failing = _failing(tea_house_app, "FAIL-1")
    exhausted = _exhausted(tea_house_app, "FAIL-2")
    home = client.get("/staff/support/").content.decode()
    tile = re.search(r'<a href="([^"]+)">Failing deliveries, still retried</a> <span class="count[^"]*">(\d+)', home)
    assert tile and tile.groups() == (FAILING, "1"), home

    html = client.get(FAILING).content.decode()
    assert re.search(r'data-show="failing">Failing, still being retried <span class="n warn" data-count="1">', html)
    row = _row(html, failing)
    assert "FAIL-1" in row and re.search(rf'data-last-error="{failing.pk}">HTTP 500<', row)
    assert f"{timezone.localtime(failing.next_attempt_at):%Y-%m-%d %H:%M}" in row and ">Send now</button>" in row
    assert f'data-delivery="{exhausted.pk}"' not in html  # exhausted ones are on the other tab
    assert f'data-delivery="{failing.pk}"' not in client.get(EXHAUSTED).content.decode()

    receiver_down.status = 200
    response = client.post(reverse("trades:delivery-resend", args=[failing.pk]),
                           {"reason": "merchant fixed its server", "show": "failing"}, follow=True)
    assert response.redirect_chain[-1][0] == FAILING
    assert "acknowledged it (HTTP 200)" in _said(response)[0]
    assert "No failing deliveries" in client.get(FAILING).content.decode()


def test_the_delivery_lists_cost_a_fixed_few_queries(tea_house_app, receiver_down, client, agent):
    _exhausted(tea_house_app, "QX-1")
    _failing(tea_house_app, "QF-1")
    client.get(EXHAUSTED)  # warm the session
    with CaptureQueriesContext(connection) as few_exhausted:
        client.get(EXHAUSTED)
    with CaptureQueriesContext(connection) as few_failing:
        client.get(FAILING)
    for n in range(2, 6):
        _exhausted(tea_house_app, f"QX-{n}")
        _failing(tea_house_app, f"QF-{n}")
    with CaptureQueriesContext(connection) as many_exhausted:
        assert client.get(EXHAUSTED).content.decode().count('<tr data-delivery="') == 5
    with CaptureQueriesContext(connection) as many_failing:
        assert client.get(FAILING).content.decode().count('<tr data-delivery="') == 5
    assert len(many_exhausted.captured_queries) == len(few_exhausted.captured_queries)
    assert len(many_failing.captured_queries) == len(few_failing.captured_queries)


def test_a_receiver_that_cannot_be_reached_is_said_in_a_few_words(tea_house_app, client, agent):
    tea_house_app.notify_url = "http://127.0.0.1:9/old-notify"  # the discard port: nothing listens
    tea_house_app.save()
    delivery = _exhausted(tea_house_app, "EX-DOWN-1")
    row = _row(client.get(EXHAUSTED).content.decode(), delivery)
    assert re.search(rf'data-last-error="{delivery.pk}" title="[^"]*Errno[^"]*">could not connect: connection '
                     rf'refused<', row), row
    said = _said(client.post(reverse("trades:delivery-resend", args=[delivery.pk]), {"reason": "try once more"},
                             follow=True))
    assert "could not be reached again (could not connect: connection refused)" in said[0], said

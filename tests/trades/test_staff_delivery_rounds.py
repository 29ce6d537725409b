"""A trade page's delivery attempts after a resend (issue 5 "Staff pages"). A support agent's trial on the demo: the
"Started" column showed a time without a date, and the seed's exhausted delivery — a day of retries played at once,
dated over the day after the order — had the resend's new attempt ("1 05:00:16") sorted in among the old ones. Each
attempt shows its date, and the attempts come in rounds, in the order they were made, the resend's round last and
marked the latest."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from tests.trades.test_staff_workbench import _order
from trades.models import DeliveryAttempt
from trades.services.events import MAX_ATTEMPTS, deliveries_resend, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db


@pytest.fixture
def exhausted_then_resent(tea_house_app, callback_receiver, agent):
    """An order's notification refused for a day of retries, played at once with each retry's clock (as the demo's
    seed plays it), then resent by support and delivered."""
    callback_receiver.status = 500
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    order = _order(tea_house_app.merchant, "ROUNDS-1", state="succeeded")
    with transaction.atomic():
        event = event_emit(merchant=order.merchant, type="order.succeeded", obj_type="order", obj_id=order.pk,
                           data={"id": order.pk})
    delivery = event.deliveries.get()
    for _ in range(MAX_ATTEMPTS):
        if delivery.state != "pending":
            break
        delivery = delivery_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    assert delivery.state == "exhausted"
    callback_receiver.status = 200
    deliveries_resend(delivery_id=delivery.pk, actor=agent, reason="the shop's server is back")
    delivery = delivery_attempt(delivery_id=delivery.pk)
    assert delivery.state == "delivered"
    return order, delivery


def test_the_resends_attempt_comes_last_in_its_own_round_marked_latest(exhausted_then_resent, client):
    order, delivery = exhausted_then_resent
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("pk"))
    resent = attempts[-1]
    assert resent.number == 1 and resent.started_at < attempts[-2].started_at  # the old ones are dated ahead

    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()

    table = html[html.index(f'id="delivery-{delivery.pk}"'):]
    shown = [int(pk) for pk in re.findall(r'data-attempt="(\d+)"', table)]
    assert shown == [a.pk for a in attempts]  # made first, shown first: the resend's attempt last
    rounds = re.findall(r'data-round="(\d+)"><th colspan="5">([^<]+)</th>', table)
    assert rounds == [("1", "Round 1 · first sending"), ("2", "Round 2 · resent · latest")]
    assert table.index('data-round="2"') < table.index(f'data-attempt="{resent.pk}"')
    assert table.index(f'data-attempt="{attempts[-2].pk}"') < table.index('data-round="2"')


def test_each_attempt_shows_the_day_it_started_with_its_time(exhausted_then_resent, client):
    order, delivery = exhausted_then_resent

    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()

    for attempt in DeliveryAttempt.objects.filter(delivery=delivery):
        started = timezone.localtime(attempt.started_at).strftime("%Y-%m-%d %H:%M:%S")
        assert re.search(rf'data-attempt="{attempt.pk}"><td>{attempt.number}</td><td class="nowrap">{started}</td>',
                         html), attempt


def test_a_delivery_of_one_round_shows_no_round_headings(tea_house_app, callback_receiver, client, agent):
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    order = _order(tea_house_app.merchant, "ROUNDS-2", state="succeeded")
    with transaction.atomic():
        event = event_emit(merchant=order.merchant, type="order.succeeded", obj_type="order", obj_id=order.pk,
                           data={"id": order.pk})
    delivery = delivery_attempt(delivery_id=event.deliveries.get().pk)

    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()

    assert f'data-attempt="{delivery.attempt_log.get().pk}"' in html and "data-round=" not in html

"""The sweeper drains a backlog (issue 5: "a sweeper re-enqueues due deliveries so a broker outage delays but loses
nothing"; design §5 rule 8): one sweep goes on in batches of 500, oldest due first, until nothing is due or its time
budget is spent, enqueues each delivery once, and leaves alone what already waits in the broker.

The tasks are published to a real Redis broker under a key prefix of this test run's own, where no worker consumes
them: what a sweep enqueued is read back from the ``notify`` queue, message by message.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import random
import threading
import uuid

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from tests.factories import MerchantAppFactory
from tests.trades.test_deliveries_worker import DEAD_BROKER_URL, publishing_to
from trades.models import Delivery
from trades.services.events import deliveries_due, delivery_attempt, event_emit
from trades.tasks import sweep_deliveries

BACKLOG = 1300  # two full batches of 500 and a part one

# This run's Redis (REDIS_URL), not another's: the prefix keeps the queue apart from any worker's.
BROKER_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def broker():
    """A notify queue on the real broker that only this test reads: yields a function returning the delivery ids
    published to it so far, first published first."""
    prefix = f"aggpay-sweep-test-{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(BROKER_URL)

    def published() -> list[int]:
        ids = []
        for raw in reversed(client.lrange(f"{prefix}notify", 0, -1)):  # kombu LPUSHes: the oldest is last
            message = json.loads(raw)
            assert message["headers"]["task"] == "trades.tasks.deliver_event"
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            ids.append(args[0])
        return ids

    with publishing_to(BROKER_URL, prefix):
        yield published
    keys = client.keys(f"{prefix}*")
    if keys:
        client.delete(*keys)


def backlog(count: int = BACKLOG) -> list[int]:
    """``count`` deliveries that a broker outage kept from being enqueued, due over the past hours; their ids
    oldest due first (not in id order)."""
    app = MerchantAppFactory(notify_url="")  # so that the event itself has no delivery and enqueues nothing
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id="ord_backlog",
                           data={"id": "ord_backlog"})
    now = timezone.now()
    ages = random.Random(5).sample(range(1, 10 * count), count)  # seconds overdue, in no particular order
    rows = Delivery.objects.bulk_create(
        Delivery(event=event, app=app, url=f"http://127.0.0.1:9/notify/{n}", next_attempt_at=now - dt.timedelta(
            seconds=age)) for n, age in enumerate(ages))
    return [row.pk for row in sorted(rows, key=lambda row: row.next_attempt_at)]


class SteppingClock:
    """The sweep's clock: ``seconds`` pass at every reading."""

    def __init__(self, seconds: float):
        self.seconds, self.now = seconds, 0.0

    def __call__(self) -> float:
        reading, self.now = self.now, self.now + self.seconds
        return reading


@pytest.mark.django_db
def test_one_sweep_enqueues_the_whole_backlog_once_each_oldest_due_first(broker):
    due = backlog()

    # The beat's task, run here as a worker runs it. Its value is read off the result, not with get(): get() asks
    # celery's process-wide "inside a task?" flag, which any other thread of the run running an eager task (the live
    # server answering a late simulator callback, say) holds set for that moment — a RuntimeError seen once in CI.
    result = sweep_deliveries.apply()
    assert result.successful() and result.result == BACKLOG

    assert broker() == due  # 1,300 messages, one per delivery, in the order they fell due


@pytest.mark.django_db
def test_a_sweep_stops_at_its_time_budget_and_the_next_one_takes_the_rest(broker):
    due = backlog()

    # 30 s pass per batch: after the second the 45 s budget is spent, with 300 deliveries still due.
    first = deliveries_due(budget_seconds=45, clock=SteppingClock(30))
    assert first == due[:1000]
    assert broker() == due[:1000]

    # The next sweep sends the 300 left, not the 1,000 still waiting in the broker a second time.
    second = deliveries_due()
    assert second == due[1000:]
    assert broker() == due


@pytest.mark.django_db
def test_a_budget_spent_after_the_first_batch_still_sends_that_batch(broker):
    due = backlog(600)
    assert deliveries_due(budget_seconds=0, clock=SteppingClock(1)) == due[:500]
    assert broker() == due[:500]


@pytest.mark.django_db
def test_a_delivery_waiting_in_the_broker_is_not_enqueued_again_but_its_retry_is(broker, callback_receiver):
    app = MerchantAppFactory(notify_url=callback_receiver.url)
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id="ord_1",
                           data={"id": "ord_1"})
    delivery = event.deliveries.get()  # the test's transaction never commits: the emit enqueued nothing

    assert deliveries_due() == [delivery.pk]
    assert deliveries_due() == []  # a minute later, no worker has taken it yet
    assert broker() == [delivery.pk]

    callback_receiver.status = 500
    delivery = delivery_attempt(delivery_id=delivery.pk)  # a worker takes it; the receiver fails
    assert delivery.state == "pending" and delivery.attempts == 1
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))

    assert deliveries_due() == [delivery.pk]  # the retry is a new attempt: sent at once
    assert broker() == [delivery.pk, delivery.pk]


@pytest.mark.django_db
def test_what_a_broker_outage_kept_from_a_sweep_is_sent_by_the_next_one(broker):
    due = backlog(3)
    with publishing_to(DEAD_BROKER_URL, "aggpay-sweep-test-dead:"), pytest.raises(OperationalError):
        deliveries_due()  # the first enqueue fails: the sweep stops, as it always has
    assert deliveries_due() == due  # the broker is back: nothing was left marked as enqueued
    assert broker() == due


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_enqueue_each_delivery_once(broker):
    due = backlog()
    results: dict[str, list[int]] = {}
    start = threading.Barrier(2)

    def sweep(name: str) -> None:
        try:
            start.wait(10)
            results[name] = deliveries_due()
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(results["a"] + results["b"]) == sorted(due)
    assert sorted(broker()) == sorted(due)

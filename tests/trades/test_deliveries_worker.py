"""Notifications through a real Celery worker on Redis (issue 5 "How it is checked"): a worker delivers an event
to a local receiver; a worker killed mid-delivery is replaced and the same event id arrives again; with the broker
down the change still commits and its notification arrives once the broker is back.

Each worker is a separate ``celery worker`` process on the test database, consuming the ``notify`` queue from
Redis under a key prefix of its own (``global_keyprefix``), so neither another test module's worker nor a
colleague's test run on the same Redis can take these tasks. The delivery lease is shortened to a few seconds in
the worker (``AGGPAY_DELIVERY_LEASE_SECONDS``) so that a killed worker's claim lapses quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from aggpay.api import signing
from aggpay.celery import app as celery_app
from tests.factories import MerchantAppFactory
from trades.models import Delivery, Event
from trades.services.events import deliveries_due, event_emit

pytestmark = [pytest.mark.worker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3
ORDER = {"id": "ord_w1", "out_trade_no": "TW0001", "amount": 100, "state": "succeeded"}


def _broker_url() -> str:
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path="/12"))


BROKER_URL = _broker_url()
DEAD_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there: the broker is "down"

# The worker's entry point: the production settings module, with the lease shortened and a private key prefix.
BOOT = """
import os, django
django.setup()
from django.conf import settings
settings.AGGPAY_DELIVERY_LEASE_SECONDS = float(os.environ["TEST_DELIVERY_LEASE_SECONDS"])
from aggpay.celery import app
app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                     "global_keyprefix": os.environ["TEST_BROKER_KEYPREFIX"]}
app.worker_main(["worker", "--pool=solo", "--concurrency=1", "--queues=notify,default", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
                 "--hostname=" + os.environ["TEST_WORKER_NAME"]])
"""


def _test_database_url() -> str:
    db = connection.settings_dict
    user = quote(db.get("USER") or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, prefix: str):
        env = {key: value for key, value in os.environ.items() if key not in ("CACHE_URL", "REDIS_URL")}
        name = f"aggpay-h10-{uuid.uuid4().hex[:8]}@%h"
        env.update(
            DJANGO_SETTINGS_MODULE="aggpay.settings", DEBUG="1", PYTHONUNBUFFERED="1",
            DATABASE_URL=_test_database_url(), CELERY_BROKER_URL=BROKER_URL,
            AGGPAY_ENCRYPTION_KEYS=",".join(settings.AGGPAY_ENCRYPTION_KEYS),
            TEST_DELIVERY_LEASE_SECONDS=str(LEASE_SECONDS), TEST_BROKER_KEYPREFIX=prefix, TEST_WORKER_NAME=name,
        )
        self.output: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-c", BOOT], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def read():
            for line in self.process.stdout:
                self.output.append(line)
                if " ready." in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(90):
            self.process.kill()
            pytest.fail("the Celery worker did not become ready within 90 s:\n" + self.log())

    def log(self) -> str:
        return "".join(self.output[-40:])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _reset_producer_pools() -> None:
    # Celery caches its producer pool on first publish; drop it so the next publish uses the broker set here.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def publishing_to(broker_url: str, prefix: str):
    """Publish from this process to ``broker_url`` under ``prefix`` instead of running tasks eagerly."""
    conf = celery_app.conf
    saved = {"broker_url": conf.broker_url, "task_always_eager": conf.task_always_eager,
             "broker_transport_options": conf.broker_transport_options}
    conf.broker_url = broker_url
    conf.task_always_eager = False
    conf.broker_transport_options = {**(saved["broker_transport_options"] or {}), "global_keyprefix": prefix}
    _reset_producer_pools()
    try:
        yield
    finally:
        conf.update(saved)
        _reset_producer_pools()


def _new_prefix() -> str:
    return f"aggpay-h10-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="module")
def notify_worker(django_db_setup, django_db_blocker):
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {BROKER_URL} ({exc}); start it: see `make test` / README")
    prefix = _new_prefix()
    with django_db_blocker.unblock():
        worker = Worker(prefix)
    yield prefix, worker
    worker.stop()


@pytest.fixture
def real_broker(notify_worker):
    prefix, worker = notify_worker
    with publishing_to(BROKER_URL, prefix):
        yield worker


def _emit(app, obj_id: str = "ord_w1") -> Event:
    with transaction.atomic():
        return event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id=obj_id,
                          data=ORDER)


def _wait_for_state(delivery: Delivery, state: str, worker: Worker, timeout: float = 20.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.state == state:
            return delivery
        time.sleep(0.1)
    pytest.fail(f"delivery {delivery.pk} is {delivery.state}, not {state}, after {timeout} s:\n" + worker.log())


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_a_signed_event_to_a_local_receiver(real_broker, callback_receiver):
    app = MerchantAppFactory(notify_url=callback_receiver.url)
    event = _emit(app)

    [request] = callback_receiver.wait_for(1, timeout=30) or pytest.fail("nothing arrived:\n" + real_broker.log())
    assert signing.verify_response(request["headers"], request["body"], secret=app.secret)
    assert json.loads(request["body"])["id"] == request["headers"]["aggpay-event-id"] == event.event_id
    delivery = _wait_for_state(event.deliveries.get(), "delivered", real_broker)
    assert delivery.attempt_log.get().status_code == 200


class HoldingReceiver:
    """Holds the first POST open (until released) so that a worker can be killed in the middle of it."""

    def __init__(self):
        self.requests: list[dict] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - stdlib naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if len(receiver.requests) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the killed worker's connection is gone

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_is_replaced_and_the_same_event_id_arrives(notify_worker):
    receiver = HoldingReceiver()
    prefix = _new_prefix()  # a queue only the two workers of this test consume
    first = second = None
    try:
        with publishing_to(BROKER_URL, prefix):
            first = Worker(prefix)
            app = MerchantAppFactory(notify_url=receiver.url)
            event = _emit(app, obj_id="ord_killed")
            assert receiver.first_arrived.wait(30), "the first worker never posted:\n" + first.log()
            first.kill()  # SIGKILL in the middle of the POST: no answer is recorded
            receiver.release.set()

            delivery = event.deliveries.get()
            assert (delivery.state, delivery.attempts) == ("pending", 1)
            assert delivery.attempt_log.get().finished_at is None

            second = Worker(prefix)
            # The killed worker's claim lapses after the lease; the sweeper (beat, every minute) then finds it.
            while timezone.now() <= delivery.claimed_until:
                time.sleep(0.2)
            assert deliveries_due() == [delivery.pk]
            delivery = _wait_for_state(delivery, "delivered", second)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        receiver.close()

    assert len(receiver.requests) == 2
    assert {r["headers"]["aggpay-event-id"] for r in receiver.requests} == {event.event_id}
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]  # the same event, byte for byte
    lost, delivered = delivery.attempt_log.all()
    assert lost.error.startswith("abandoned") and delivered.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_change_commits_and_the_notification_follows_its_return(notify_worker,
                                                                                        callback_receiver):
    prefix, worker = notify_worker
    app = MerchantAppFactory(notify_url=callback_receiver.url)
    with publishing_to(DEAD_BROKER_URL, prefix):
        started = time.monotonic()
        event = _emit(app, obj_id="ord_outage")  # commits; enqueuing fails and is only logged
        assert time.monotonic() - started < 15
    delivery = event.deliveries.get()
    assert delivery.state == "pending" and Event.objects.filter(pk=event.pk).exists()
    time.sleep(1)
    assert callback_receiver.requests == []

    with publishing_to(BROKER_URL, prefix):  # the broker is back; beat runs the sweeper
        assert deliveries_due() == [delivery.pk]
        callback_receiver.wait_for(1, timeout=30)
        _wait_for_state(delivery, "delivered", worker)
    assert [r["headers"]["aggpay-event-id"] for r in callback_receiver.requests] == [event.event_id]

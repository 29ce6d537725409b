"""A real Celery worker on Redis runs a task enqueued with ``delay_on_commit`` only after the commit.

Design §5 rule 8: side effects are enqueued after commit, so a worker never acts on a row it cannot see yet,
and a rolled-back change enqueues nothing. The worker is a separate ``celery -A aggpay worker`` process on a
Redis database of its own (REDIS_URL's server, database 14, so a ``make up`` worker on database 0 never takes
these tasks). ``record_marker`` leaves a key in that same Redis, where this test process reads it.

Ordering argument used below: the worker runs one task at a time (solo pool, prefetch 1) from one FIFO queue,
so once a *sentinel* published later has run, anything published before it has run too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings

from aggpay.celery import app as celery_app
from aggpay.tasks import record_marker

pytestmark = [pytest.mark.worker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKER_REDIS_DB = 14


def _redis_url(db: int) -> str:
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path=f"/{db}"))


BROKER_URL = _redis_url(WORKER_REDIS_DB)


class Boom(Exception):
    pass


def _reset_producer_pools() -> None:
    # Celery caches its producer pool on first publish; drop the reference so the next publish looks the pool
    # up again for the broker_url set here (kombu keeps one pool per broker URL; no public API for this).
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture(scope="module")
def celery_worker_process():
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {BROKER_URL} ({exc}); start it: see `make test` / README")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="aggpay.settings",
        DEBUG="1",
        DATABASE_URL=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/aggpay",
        CELERY_BROKER_URL=BROKER_URL,
        CACHE_URL=BROKER_URL,
        PYTHONUNBUFFERED="1",
    )
    name = f"aggpay-test-{uuid.uuid4().hex[:8]}@%h"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "aggpay", "worker", "--pool=solo", "--concurrency=1",
         "--queues=default", "--without-gossip", "--without-mingle", "--loglevel=INFO", f"--hostname={name}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def read_output():
        for line in process.stdout:
            output.append(line)
            if " ready." in line:
                ready.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    if not ready.wait(90):
        process.kill()
        pytest.fail("the Celery worker did not become ready within 90 s:\n" + "".join(output[-40:]))
    yield output
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def real_broker(celery_worker_process):
    """Publish from this process to the worker's Redis instead of running tasks eagerly (the test default)."""
    saved = {"broker_url": celery_app.conf.broker_url, "task_always_eager": celery_app.conf.task_always_eager}
    celery_app.conf.broker_url = BROKER_URL
    celery_app.conf.task_always_eager = False
    _reset_producer_pools()
    redis_cache = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": BROKER_URL}}
    with override_settings(CACHES=redis_cache):
        yield celery_worker_process
    celery_app.conf.update(saved)
    _reset_producer_pools()


def _marker() -> str:
    return f"aggpay-test-marker:{uuid.uuid4().hex}"


def _wait_for_marker(key: str, worker_output: list[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cache.get(key)
        if value is not None:
            return value
        time.sleep(0.05)
    pytest.fail(f"the worker did not run record_marker({key!r}) within {timeout} s:\n" + "".join(worker_output[-40:]))


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_an_on_commit_task_only_after_the_commit(real_broker):
    after_commit, sentinel = _marker(), _marker()
    with transaction.atomic():
        record_marker.delay_on_commit(after_commit)
        # Published now, outside the transaction's control: when it has run, the queue before it is drained.
        record_marker.delay(sentinel)
        _wait_for_marker(sentinel, real_broker)
        assert cache.get(after_commit) is None, "the task ran while its transaction was still open"
    ran_at = _wait_for_marker(after_commit, real_broker)
    assert ran_at > cache.get(sentinel)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_enqueues_nothing(real_broker):
    rolled_back, sentinel = _marker(), _marker()
    with pytest.raises(Boom), transaction.atomic():
        record_marker.delay_on_commit(rolled_back)
        raise Boom
    record_marker.delay(sentinel)
    _wait_for_marker(sentinel, real_broker)
    assert cache.get(rolled_back) is None


@pytest.mark.django_db(transaction=True)
def test_an_inner_savepoint_rolled_back_drops_only_its_own_task(real_broker):
    kept, dropped = _marker(), _marker()
    with transaction.atomic():
        record_marker.delay_on_commit(kept)
        with pytest.raises(Boom), transaction.atomic():
            record_marker.delay_on_commit(dropped)
            raise Boom
    _wait_for_marker(kept, real_broker)
    sentinel = _marker()
    record_marker.delay(sentinel)
    _wait_for_marker(sentinel, real_broker)
    assert cache.get(dropped) is None


def test_the_app_is_configured_for_reliable_delivery():
    # design §3 / issue 2: late acks, requeue on a lost worker, one message at a time, and a visibility
    # timeout longer than the longest countdown (6 h notification retries) so Redis does not redeliver early.
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > 6 * 3600
    assert {queue.name for queue in conf.task_queues} == {"default", "notify", "channel", "recon"}
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovers <app>/tasks.py
    for entry in conf.beat_schedule.values():
        assert entry["task"] in celery_app.tasks, f"beat schedules an unknown task {entry['task']}"

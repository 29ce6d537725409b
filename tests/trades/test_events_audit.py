"""Audit of events against merchant-api.md "Notifications and events": the pull fallback ``GET /api/v1/events`` as
a merchant who missed notifications uses it while aggpay is busy — events committed out of the order in which they
were written must not slip behind what the merchant has already read."""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

import pytest
from django.db import connection, transaction

from tests.factories import MerchantAppFactory, MerchantFactory
from tests.trades.events_feed import new_events
from trades.models import Event
from trades.services.events import event_emit

ORDER = {"id": "ord_feed", "state": "succeeded"}


def _emit(merchant, obj_id: str) -> Event:
    return event_emit(merchant=merchant, type="order.succeeded", obj_type="order", obj_id=obj_id,
                      data={**ORDER, "id": obj_id})


def _waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 30  # a safety net, not a timing: each condition is reached at once when it holds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never {what}")
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_a_newer_one_is_not_skipped_by_a_merchant_catching_up(signed_api):
    app = MerchantAppFactory(merchant=MerchantFactory())
    api = signed_api(app)
    slow_written, release_slow = threading.Event(), threading.Event()
    fast_done = threading.Event()
    errors: list[BaseException] = []

    def slow():  # e.g. a callback's transaction: the event is written, the commit comes a little later
        try:
            with transaction.atomic():
                _emit(app.merchant, "ord_slow")
                slow_written.set()
                release_slow.wait(60)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def fast():  # another change of the same merchant, written and committed meanwhile
        try:
            with transaction.atomic():
                _emit(app.merchant, "ord_fast")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            fast_done.set()
            connection.close()

    slow_thread = threading.Thread(target=slow)
    slow_thread.start()
    fast_thread = None
    try:
        _until(slow_written.is_set, "wrote the slow event")
        fast_thread = threading.Thread(target=fast)
        fast_thread.start()
        _until(lambda: fast_done.is_set() or _waiting_for_a_lock(), "committed or waited")

        seen = {item["id"] for item in new_events(api, set())}  # the merchant reads what is there now
        newest_seen = api.get("/api/v1/events?limit=1").json()["data"]
    finally:
        release_slow.set()
        slow_thread.join(60)
        if fast_thread is not None:
            fast_thread.join(60)
    assert not errors, errors

    everything = set(Event.objects.filter(merchant=app.merchant).values_list("event_id", flat=True))
    assert len(everything) == 2
    caught_up = seen | {item["id"] for item in new_events(api, seen)}
    assert caught_up == everything
    if newest_seen:  # or by time: everything created at or after the newest event it had read
        since = quote(newest_seen[0]["created_at"])
        later = {item["id"] for item in api.get(f"/api/v1/events?created_gte={since}").json()["data"]}
        assert seen | later == everything

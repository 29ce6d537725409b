"""Review of GET /api/v1/events against merchant-api.md "Notifications and events" and docs/api.md "Pulling
events": a merchant pages through its events while aggpay keeps writing new ones, from several transactions at
once (threads against PostgreSQL, each in its own connection) — some of which hold their event a while before they
commit, as a callback's transaction does. No page may repeat an event, and no event may be missed: neither by
walking the list with ``starting_after`` nor by the documented catch-up (newest first until one already seen)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, transaction

from tests.factories import MerchantAppFactory, MerchantFactory
from tests.trades.events_feed import new_events
from trades.models import Event
from trades.services.events import event_emit

WRITERS, PER_WRITER = 4, 25


def _walk(api, *, limit: int) -> list[str]:
    """Every page from the newest, following ``starting_after`` to the end: the ids in the order listed."""
    found, cursor = [], None
    while True:
        target = f"/api/v1/events?limit={limit}" + (f"&starting_after={cursor}" if cursor else "")
        response = api.get(target)
        assert response.status_code == 200, response.content
        page = response.json()
        found += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            return found
        cursor = page["data"][-1]["id"]


@pytest.mark.django_db(transaction=True)
def test_paging_while_events_are_written_concurrently_neither_repeats_nor_misses_one(signed_api):
    app = MerchantAppFactory(merchant=MerchantFactory())
    api = signed_api(app)
    start = threading.Barrier(WRITERS + 1)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        rng = random.Random(index)
        try:
            start.wait(30)
            for n in range(PER_WRITER):
                with transaction.atomic():
                    event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order",
                               obj_id=f"ord_w{index}_{n}", data={"id": f"ord_w{index}_{n}"})
                    time.sleep(rng.uniform(0, 0.02))  # the rest of the change's transaction, before it commits
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    walks: list[tuple[set[str], list[str]]] = []
    seen: set[str] = set()
    try:
        start.wait(30)
        rounds = 0
        while any(thread.is_alive() for thread in threads):
            seen |= {item["id"] for item in new_events(api, seen, limit=2)}
            if rounds % 4 == 0:
                before = set(Event.objects.filter(merchant=app.merchant).values_list("event_id", flat=True))
                walks.append((before, _walk(api, limit=5)))
            rounds += 1
    finally:
        for thread in threads:
            thread.join(60)
    assert not errors, errors

    everything = set(Event.objects.filter(merchant=app.merchant).values_list("event_id", flat=True))
    assert len(everything) == WRITERS * PER_WRITER
    assert len(walks) > 1  # the reader really read while the writers wrote
    for committed_before, listed in walks:
        assert len(listed) == len(set(listed)), "a page repeated an event"
        assert committed_before <= set(listed), "a walk missed an event committed before it began"
    seen |= {item["id"] for item in new_events(api, seen, limit=2)}
    assert seen == everything

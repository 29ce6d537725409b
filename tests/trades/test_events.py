"""Events are an outbox (design §5 rule 8): written with the change, in its transaction, and numbered per object
(merchant-api.md "Notifications and events": "order by sequence (per object)")."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from tests.factories import MerchantAppFactory, MerchantFactory
from trades.models import Delivery, Event
from trades.services.events import event_emit

ORDER = {"id": "ord_1", "out_trade_no": "T1001", "amount": 1234, "state": "succeeded"}


class Boom(Exception):
    pass


def emit(merchant, *, type="order.succeeded", obj_id="ord_1", data=None, **kwargs):
    with transaction.atomic():
        return event_emit(merchant=merchant, type=type, obj_type="order", obj_id=obj_id,
                          data=data or ORDER, **kwargs)


@pytest.mark.django_db
def test_the_event_and_its_delivery_are_written_and_enqueued_only_on_commit(tea_house_app,
                                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = emit(tea_house_app.merchant)
    assert event.event_id.startswith("evt_") and event.sequence == 1
    assert event.data == ORDER
    delivery = Delivery.objects.get(event=event)
    assert (delivery.url, delivery.app, delivery.state) == (tea_house_app.notify_url, tea_house_app, "pending")
    assert len(callbacks) == 1  # one delivery task, waiting for the commit


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_event_no_delivery_and_enqueues_nothing(tea_house_app,
                                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(Boom), transaction.atomic():
            event_emit(merchant=tea_house_app.merchant, type="order.succeeded", obj_type="order", obj_id="ord_1",
                       data=ORDER)
            raise Boom
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert callbacks == []


@pytest.mark.django_db(transaction=True)
def test_event_emit_refuses_to_run_outside_the_changes_transaction(tea_house_app):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        event_emit(merchant=tea_house_app.merchant, type="order.succeeded", obj_type="order", obj_id="ord_1",
                   data=ORDER)
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_an_order_event_goes_to_the_orders_own_notify_url(tea_house_app):
    event = emit(tea_house_app.merchant, app=tea_house_app, notify_url="https://shop.example.com/paid")
    assert list(event.deliveries.values_list("url", "app__app_id")) == [("https://shop.example.com/paid",
                                                                          tea_house_app.app_id)]


@pytest.mark.django_db
def test_without_a_notify_url_the_event_is_kept_for_pulling_but_not_posted(tea_house):
    MerchantAppFactory(merchant=tea_house, notify_url="")
    event = emit(tea_house)
    assert Event.objects.filter(pk=event.pk).exists()
    assert not event.deliveries.exists()


@pytest.mark.django_db
def test_each_app_gets_the_events_its_scope_receives_once_per_url(westlake_agency):
    onboarding = MerchantAppFactory(merchant=westlake_agency, scopes=["onboarding"], notify_url="https://a.example/n")
    MerchantAppFactory(merchant=westlake_agency, scopes=["onboarding"], notify_url="https://a.example/n")  # same URL
    both = MerchantAppFactory(merchant=westlake_agency, scopes=["payments", "onboarding"],
                              notify_url="https://b.example/n")
    payments = MerchantAppFactory(merchant=westlake_agency, scopes=["payments"], notify_url="https://c.example/n")
    MerchantAppFactory(merchant=westlake_agency, scopes=["onboarding"], notify_url="https://d.example/n",
                       active=False)

    merchant_event = emit(westlake_agency, type="merchant.submitted", obj_id="M1")
    order_event = emit(westlake_agency, type="order.succeeded", obj_id="ord_9")

    assert sorted(merchant_event.deliveries.values_list("url", "app")) == [
        ("https://a.example/n", onboarding.pk), ("https://b.example/n", both.pk)]
    assert sorted(order_event.deliveries.values_list("url", "app")) == [
        ("https://b.example/n", both.pk), ("https://c.example/n", payments.pk)]


@pytest.mark.django_db
def test_the_sequence_counts_up_per_object_and_objects_are_independent(tea_house_app):
    first = [emit(tea_house_app.merchant, obj_id="ord_1").sequence for _ in range(3)]
    other = emit(tea_house_app.merchant, obj_id="ord_2").sequence
    fourth = emit(tea_house_app.merchant, obj_id="ord_1", type="order.closed").sequence
    assert (first, other, fourth) == ([1, 2, 3], 1, 4)


@pytest.mark.django_db
def test_event_types_and_data_are_checked(tea_house_app):
    with pytest.raises(ValueError, match="order.succeeded"):
        emit(tea_house_app.merchant, type="Order Succeeded")
    with pytest.raises(ValueError, match="dict"):
        with transaction.atomic():
            event_emit(merchant=tea_house_app.merchant, type="order.succeeded", obj_type="order", obj_id="o",
                       data=["not", "an", "object"])


@pytest.mark.django_db
def test_events_are_append_only(tea_house_app):
    event = emit(tea_house_app.merchant)
    event.type = "order.failed"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        Event.objects.filter(pk=event.pk).update(type="order.failed")
    assert Event.objects.get(pk=event.pk).type == "order.succeeded"


@pytest.mark.django_db(transaction=True)
def test_concurrent_emitters_for_one_object_get_distinct_consecutive_sequences():
    # Threads against PostgreSQL, each in its own transaction and connection, all at once (issue 5 "Races").
    merchant = MerchantFactory()
    threads_count, per_thread = 8, 5
    barrier = threading.Barrier(threads_count)
    seen: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            mine = []
            for _ in range(per_thread):
                with transaction.atomic():
                    mine.append(event_emit(merchant=merchant, type="order.succeeded", obj_type="order",
                                           obj_id="ord_race", data=ORDER).sequence)
            seen[index] = mine
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    everything = sorted(s for mine in seen.values() for s in mine)
    assert everything == list(range(1, threads_count * per_thread + 1))
    for mine in seen.values():
        assert mine == sorted(mine)  # monotonic within each emitter too
    stored = list(Event.objects.filter(object_id="ord_race").order_by("sequence").values_list("sequence", flat=True))
    assert stored == everything

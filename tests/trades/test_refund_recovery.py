"""Refunds that would otherwise wait for ever (design §5 rules 2 and 7; merchant-api.md "Refunds").

- The transaction that records a refund's intent (its amount reserved) also schedules a query a minute on, so a
  refund whose channel call never happened — the worker died after the commit, the adapter raised something that
  is not a channel error, the bank never got the request — is picked up by the sweeper. When the channel says it
  has no such refund, the refund is sent again under the same number, which every channel treats as the same refund
  (channel-protocols.md A.10, B.5; docs/channels/bank.md §7.1). An answered call replaces that schedule as before.
- An answer naming another amount than ours moves no money: the refund goes to the abnormal queue for a person,
  with an audit row, off the query ladder — instead of staying due and failing every minute.

End to end on the bank simulator; the sweeper is run by hand after making the refund due.
"""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.utils import timezone

import channels.adapters.bank as bank_adapter
from aggpay.models import AuditLog
from channels.simulators.bank_state import ns
from tests.trades.bank_flow import (
    at_the_bank,
    bank_refunds,
    bank_simulator,
    due_now,
    paid_at_the_bank,
    refund,
    refund_in_state,
)
from trades import workbench
from trades.models import ChannelCall, Event, Order, Refund
from trades.services.refunds import AMOUNT_MISMATCH, refund_create, refunds_due_for_query
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _calls(refund_id: str) -> list[tuple[str, str]]:
    return list(ChannelCall.objects.filter(refund_id=refund_id).order_by("created_at", "id")
                .values_list("verb", "outcome"))


def _the_worker_dies_before_the_refund_call():
    """The process is killed once the refund's intent is committed, before the bank is asked: staged at the one
    outbound HTTP function (style.md §4), which raises something that is not a channel error."""
    real = bank_adapter.channel_request

    def send(method, url, **kwargs):
        if url.endswith("/api/refund/apply"):
            raise RuntimeError("the worker was killed")
        return real(method, url, **kwargs)

    return mock.patch.object(bank_adapter, "channel_request", autospec=True, side_effect=send)


def test_a_refund_whose_worker_died_before_the_channel_call_is_sent_by_the_sweeper(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-REC-0001")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=0)
    with _the_worker_dies_before_the_refund_call(), pytest.raises(RuntimeError, match="killed"):
        refund_create(order=order, out_refund_no="RK-0001", amount=400, actor_label="api:test")

    stuck = Refund.objects.get(order=order, out_refund_no="RK-0001")
    assert stuck.state == "pending" and stuck.sync_state == "unknown"
    assert timezone.now() < stuck.next_query_at <= timezone.now() + dt.timedelta(minutes=1)
    assert Order.objects.get(pk=order.pk).refund_reserved == 400
    assert stuck in workbench.unknown_refunds()
    assert at_the_bank(shop, simulator_server, stuck.pk) is None and _calls(stuck.pk) == []

    due_now(stuck.pk)
    sync_due_orders()  # the bank has no such refund: sent again, under the same number
    shop.sim("bank", "/_control/flush")
    refunded = refund_in_state(shop, stuck.pk, "succeeded")
    assert refunded.channel_attempt == 0 and at_the_bank(shop, simulator_server, stuck.pk)["refund_amount"] == 400
    assert _calls(stuck.pk)[:2] == [("query_refund", "not_found"), ("refund", "processing")]
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved, paid.refund_state) == (400, 400, "partial")


def test_a_refund_call_the_bank_never_got_is_sent_again_when_the_sweeper_finds_nothing(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-REC-0002")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=0)
    shop.sim("bank", "/_control/faults", fault="http_503", times=1, match={"path": "refund/apply$"})
    status, body = refund(shop, order, "RK-0002", 500)
    assert status == 201 and body["state"] == "pending", body  # unknown, not failed (design §5 rule 2)
    assert at_the_bank(shop, simulator_server, body["id"]) is None

    due_now(body["id"])
    sync_due_orders()
    shop.sim("bank", "/_control/flush")
    refund_in_state(shop, body["id"], "succeeded")
    assert _calls(body["id"])[:3] == [("refund", "unknown"), ("query_refund", "not_found"), ("refund", "processing")]
    assert Order.objects.get(pk=order.pk).refunded_amount == 500


def test_a_refund_the_channel_does_not_know_yet_is_not_sent_again_before_its_answer_is_overdue(shop,
                                                                                                simulator_server):
    order = paid_at_the_bank(shop, "T-REC-0003")
    with _the_worker_dies_before_the_refund_call(), pytest.raises(RuntimeError):
        refund_create(order=order, out_refund_no="RK-0003", amount=300, actor_label="api:test")
    # The merchant asks at once — the refund call may still be on its way, so the bank's "no such refund" is not
    # taken for a lost call.
    status, _, body = shop.client.request("GET", "/api/v1/refunds/RK-0003")
    assert status == 200 and body["state"] == "pending", body
    assert at_the_bank(shop, simulator_server, body["id"]) is None
    assert _calls(body["id"]) == [("query_refund", "not_found")]
    assert Refund.objects.get(pk=body["id"]).next_query_at > timezone.now()  # asked again on the ladder


def test_a_refund_flagged_for_a_person_is_not_sent_again(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-REC-0004")
    with _the_worker_dies_before_the_refund_call(), pytest.raises(RuntimeError):
        refund_create(order=order, out_refund_no="RK-0004", amount=300, actor_label="api:test")
    flagged = Refund.objects.get(order=order)
    Refund.objects.filter(pk=flagged.pk).update(abnormal=True)  # e.g. an earlier attempt's money went back
    due_now(flagged.pk)
    sync_due_orders()
    assert at_the_bank(shop, simulator_server, flagged.pk) is None
    assert _calls(flagged.pk) == [("query_refund", "not_found")]
    assert Refund.objects.get(pk=flagged.pk).state == "pending"


def test_an_answered_refund_call_replaces_the_intents_schedule(shop):
    order = paid_at_the_bank(shop, "T-REC-0005")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, body = refund(shop, order, "RK-0005", 100)
    assert status == 201, body
    answered = Refund.objects.get(pk=body["id"])
    assert (answered.sync_state, answered.query_attempts) == ("ok", 0)  # processing: the ladder, not "unknown"
    assert answered.next_query_at == answered.created_at + dt.timedelta(minutes=1)
    assert answered not in workbench.unknown_refunds()

    shop.sim("bank", "/_control/faults", fault="http_503", times=1, match={"path": "refund/apply$"})
    status, body = refund(shop, order, "RK-0006", 100)
    unknown = Refund.objects.get(pk=body["id"])
    assert (unknown.sync_state, unknown.query_attempts) == ("unknown", 1)
    assert unknown.next_query_at == unknown.created_at + dt.timedelta(minutes=1)


def test_an_answer_naming_another_amount_holds_the_refund_for_a_person(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-REC-0007")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, body = refund(shop, order, "RK-0007", 500)
    assert status == 201, body
    # The bank's record of the refund says 499 fen (a mix-up at one end): its answers say so.
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    row = bank.store.get(ns("refunds", org), body["id"])
    bank.store.put(ns("refunds", org), body["id"], {**row, "refund_amount": 499})
    due_now(body["id"])
    sync_due_orders()

    held = Refund.objects.get(pk=body["id"])
    assert (held.state, held.abnormal, held.next_query_at) == ("pending", True, None)
    assert "reported refund amount 499" in held.failure_message and "ours is 500" in held.failure_message
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refund_reserved, paid.refunded_amount) == (500, 0)  # no money moved on it
    row = AuditLog.objects.get(action=AMOUNT_MISMATCH, target_id=held.pk)
    assert row.actor_label == f"channel:{shop.accounts['bank'].code}"
    assert (row.data["reported"], row.data["amount"], row.data["verb"]) == (499, 500, "query_refund")
    assert list(workbench.abnormal_refunds()) == [held]
    assert held.pk not in refunds_due_for_query()  # off the ladder: not asked (and logged) every minute

    # The merchant asking gets the pending refund, not an error; nothing is written twice.
    status, _, answer = shop.client.request("GET", "/api/v1/refunds/RK-0007")
    assert status == 200 and answer["state"] == "pending" and answer["failure"] is None, answer
    assert AuditLog.objects.filter(action=AMOUNT_MISMATCH, target_id=held.pk).count() == 1
    assert not Event.objects.filter(object_id=held.pk).exists()

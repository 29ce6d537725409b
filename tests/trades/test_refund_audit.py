"""Refunds audited against merchant-api.md "Refunds" and design §5 (rules 2, 5, 6), end to end over the merchant
API and the simulators: a retried refund's own query ladder, the amount's edges, idempotency, and the orders that
cannot be refunded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aggpay.models import AuditLog
from tests.trades.bank_flow import (
    bank_refunds,
    paid_after_close,
    paid_at_the_bank,
    paid_by_code_at_the_bank,
    paid_by_code_unanswered,
    refund,
    refund_in_state,
    settle_now,
)
from trades.models import Order, Refund, SyncState

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _asked_a_day_ago(refund_id: str) -> None:
    """Stand-in for the day between a refund's failure and the merchant's retry (no timed tests)."""
    Refund.objects.filter(pk=refund_id).update(created_at=timezone.now() - dt.timedelta(days=2))


def test_it_queries_a_refund_retried_days_after_it_was_asked_on_a_ladder_of_its_own(shop, simulator_server):
    """Design §5 rule 2: an outcome we do not know is queried on the ladder, then goes to the manual queue. The
    ladder of a retried refund (merchant-api.md: a failed refund may be retried with the same out_refund_no — e.g.
    the next day, after a top-up) counts from the retry, not from when the refund was first asked: otherwise a retry
    the bank answers PROCESSING lands in the manual queue at once and is never asked about."""
    order = paid_at_the_bank(shop, "T-AUD-LAD1", amount=1000)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    status, first = refund(shop, order, "RA-LAD-0001", 400)
    assert status == 201 and first["state"] == "pending", first
    settle_now(shop, simulator_server, first["id"])
    refund_in_state(shop, first["id"], "failed")
    _asked_a_day_ago(first["id"])

    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, retried = refund(shop, order, "RA-LAD-0001", 400)
    assert status == 201 and retried["id"] == first["id"] and retried["state"] == "pending", retried
    stored = Refund.objects.get(pk=first["id"])
    assert stored.channel_attempt == 1
    assert stored.sync_state != SyncState.MANUAL and stored.next_query_at is not None, (
        stored.sync_state, stored.next_query_at)
    assert stored.next_query_at > timezone.now()
    retry = AuditLog.objects.get(action="trades.refund.retried", target_id=stored.pk)  # on the trade timeline
    assert retry.actor_label == f"api:{shop.app.app_id}" and retry.data["attempt"] == 1


def test_a_retry_the_bank_does_not_answer_is_unknown_and_queried_not_sent_to_the_manual_queue(shop,
                                                                                              simulator_server):
    """Design §5 rule 2 for the retry's own call: a 5xx is unknown, queried on the ladder counted from the retry."""
    order = paid_at_the_bank(shop, "T-AUD-LAD2", amount=1000)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    status, first = refund(shop, order, "RA-LAD-0002", 400)
    assert status == 201, first
    settle_now(shop, simulator_server, first["id"])
    refund_in_state(shop, first["id"], "failed")
    _asked_a_day_ago(first["id"])

    shop.sim("bank", "/_control/faults", fault="http_503", times=1,
             match={"path": "refund/apply$", "contains": f"{first['id']}_1"})
    status, retried = refund(shop, order, "RA-LAD-0002", 400)
    assert status == 201 and retried["state"] == "pending", retried
    stored = Refund.objects.get(pk=first["id"])
    assert (stored.sync_state, stored.channel_attempt) == (SyncState.UNKNOWN, 1)
    assert stored.next_query_at is not None and stored.next_query_at > timezone.now()
    assert Order.objects.get(pk=order.pk).refund_reserved == 400


@pytest.mark.parametrize("amount", [-1, True, None, 10**11 + 1])
def test_it_refuses_a_bad_amount_naming_it_and_reserves_nothing(shop, amount):
    order = paid_at_the_bank(shop, "T-AUD-AMT1", amount=1000)
    status, answer = refund(shop, order, "RA-AMT-0001", amount)
    assert status == 400 and answer["error"]["code"] == "invalid_request" and answer["error"]["param"] == "amount"
    assert Order.objects.get(pk=order.pk).refund_reserved == 0
    assert not Refund.objects.filter(order=order).exists()


def test_it_takes_exactly_what_remains_and_refuses_one_fen_more(shop):
    order = paid_at_the_bank(shop, "T-AUD-AMT2", amount=1000)
    assert refund(shop, order, "RA-AMT-0002", 999)[0] == 201
    status, answer = refund(shop, order, "RA-AMT-0003", 2)
    assert status == 422 and answer["error"]["code"] == "refund_amount_exceeded", answer
    assert answer["error"]["param"] == "amount"
    status, last = refund(shop, order, "RA-AMT-0004", 1)
    assert status == 201, last
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refund_reserved, paid.refundable_amount) == (1000, 0)
    status, answer = refund(shop, order, "RA-AMT-0005", 1)
    assert status == 422 and answer["error"]["code"] == "refund_amount_exceeded", answer


def test_the_same_out_refund_no_replays_with_the_same_body_and_conflicts_with_another(shop):
    order = paid_at_the_bank(shop, "T-AUD-IDM1", amount=1000)
    body = {"out_refund_no": "RA-IDM-0001", "amount": 300, "reason": "broken cup", "notify_url": "https://m.example/n"}
    path = f"/api/v1/orders/{order.out_trade_no}/refunds"
    status, _, made = shop.client.request("POST", path, json=body)
    assert status == 201, made
    status, headers, again = shop.client.request("POST", path, json=body)
    assert status == 200 and headers.get("Idempotent-Replayed") == "true" and again["id"] == made["id"]
    for change in ({"amount": 301}, {"reason": "two broken cups"}, {"notify_url": "https://m.example/other"}):
        status, _, conflict = shop.client.request("POST", path, json={**body, **change})
        assert status == 409 and conflict["error"]["code"] == "idempotency_conflict", (change, conflict)
        assert conflict["error"]["param"] == "out_refund_no"
    assert Order.objects.get(pk=order.pk).refund_reserved == 300
    assert Refund.objects.filter(order=order).count() == 1


def test_a_pending_or_closed_order_is_refused_with_invalid_state(shop):
    status, _, pending = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "T-AUD-STA1", "amount": 1000, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201 and pending["state"] == "pending"
    order = Order.objects.get(pk=pending["id"])
    status, answer = refund(shop, order, "RA-STA-0001", 100)
    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    status, _, closed = shop.client.request("POST", "/api/v1/orders/T-AUD-STA1/close")
    assert status == 200 and closed["state"] == "closed", closed
    status, answer = refund(shop, order, "RA-STA-0002", 100)
    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    assert not Refund.objects.filter(order=order).exists()


def test_an_order_whose_payment_is_still_unknown_is_refused_with_invalid_state(shop):
    order = paid_by_code_unanswered(shop, "T-AUD-STA2", amount=1000)  # charged at the bank, unknown here
    assert Order.objects.get(pk=order.pk).sync_state == SyncState.UNKNOWN
    status, answer = refund(shop, order, "RA-STA-0003", 100)
    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    assert Order.objects.get(pk=order.pk).refund_reserved == 0


def test_a_reversed_order_is_refused_with_invalid_state(shop):
    order = paid_by_code_at_the_bank(shop, "T-AUD-STA3", amount=1000)
    status, _, reversed_ = shop.client.request("POST", "/api/v1/orders/T-AUD-STA3/reverse")
    assert status == 200 and reversed_["state"] == "reversed", reversed_
    status, answer = refund(shop, order, "RA-STA-0004", 100)
    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    assert not Refund.objects.filter(order=order).exists()


def test_a_late_payment_is_not_refunded_through_the_merchant_api(shop, simulator_server, settings):
    """Its money goes back through the late-payment refund (design §5 rule 3), never beside it."""
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False
    late = paid_after_close(shop, simulator_server, "T-AUD-STA4", amount=1000)
    order = Order.objects.get(pk=late.order_id)
    assert order.state == "closed"
    status, answer = refund(shop, order, "RA-STA-0005", 1000)
    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    assert not Refund.objects.filter(order=order).exists()


def test_an_abnormal_refund_keeps_its_money_reserved_and_waits_for_a_person(shop, simulator_server):
    """Design §4: an ``abnormal`` channel outcome (the wallet could not take the money back) goes to a manual queue;
    the money may still go out by another way, so it stays reserved and the merchant's retry is a replay."""
    from trades import workbench

    order = paid_at_the_bank(shop, "T-AUD-ABN1", amount=1000)
    bank_refunds(shop, refund_outcome="ABNORMAL", refund_seconds=600)
    status, asked = refund(shop, order, "RA-ABN-0001", 800)
    assert status == 201 and asked["state"] == "pending", asked
    settle_now(shop, simulator_server, asked["id"])
    stored = shop.wait_for(lambda: Refund.objects.filter(pk=asked["id"], abnormal=True).first(), message="abnormal")
    assert (stored.state, stored.next_query_at) == ("pending", None)
    assert stored in workbench.abnormal_refunds()
    status, again = refund(shop, order, "RA-ABN-0001", 800)
    assert status == 200 and again["state"] == "pending", again
    status, more = refund(shop, order, "RA-ABN-0002", 201)
    assert status == 422 and more["error"]["code"] == "refund_amount_exceeded", more
    status, _, queried = shop.client.request("GET", "/api/v1/refunds/RA-ABN-0001")
    assert status == 200 and queried["state"] == "pending", queried
    assert Order.objects.get(pk=order.pk).refund_reserved == 800


def test_a_closed_refund_gives_its_money_back_to_refund(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-AUD-CLO1", amount=1000)
    bank_refunds(shop, refund_outcome="CLOSED", refund_seconds=600)
    status, asked = refund(shop, order, "RA-CLO-0001", 800)
    assert status == 201, asked
    settle_now(shop, simulator_server, asked["id"])
    refund_in_state(shop, asked["id"], "closed")
    assert Order.objects.get(pk=order.pk).refund_reserved == 0
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, other = refund(shop, order, "RA-CLO-0002", 1000)
    assert status == 201, other

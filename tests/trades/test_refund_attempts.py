"""A retried refund's attempts (design §5 rule 6): a failed refund retried with its out_refund_no goes to the channel
under a new number, ``<refund id>_<attempt>``. Only an answer about the current attempt changes the refund. An answer
about an earlier one (a re-delivered notice, a slow reply) is acknowledged and changes nothing — unless it says that
attempt succeeded: then the money went back once already and the retry may return it again, so the refund goes to
the abnormal queue for a person, whatever its state.

The first part drives the services with the channels' parsed answers; the second runs the bank simulator end to end
(its refund notices are signed, re-delivered and verified over live HTTP)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from channels.adapters.base import CallbackEvent, RefundResult
from channels.callbacks import CallbackDuplicate, CallbackRejected
from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback
from tests.trades.bank_flow import (
    bank_refunds,
    paid_at_the_bank,
    settle_now,
    succeeded_after_all,
    unreachable_bank_account,
)
from trades import workbench
from trades.models import Order, Refund
from trades.services.callbacks import refund_callback
from trades.services.refunds import (
    EARLIER_ATTEMPT_SUCCEEDED,
    refund_apply_result,
    refund_create,
    refund_fingerprint,
    refund_sync,
)

# --- the services, with the channel's parsed answers ----------------------------------------------------------------


@pytest.fixture
def bank_account(db):
    return unreachable_bank_account("bank-attempts")


@pytest.fixture
def paid_order(tea_house_app, bank_account):
    return Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-ATTEMPTS",
                                amount=1000, product="unionpay.qr", subject="tea", request_fingerprint="x" * 64,
                                expires_at=timezone.now() + dt.timedelta(hours=2), channel_account=bank_account,
                                state="succeeded", refund_reserved=1000)


@pytest.fixture
def retried(paid_order):
    """Refund R1 of the whole order: attempt 0 failed at the channel, the merchant retried, attempt 1 is pending."""
    return Refund.objects.create(order=paid_order, merchant=paid_order.merchant, out_refund_no="R1", amount=1000,
                                 request_fingerprint=refund_fingerprint(out_refund_no="R1", amount=1000, reason="",
                                                                        notify_url=""),
                                 requested_by="api:x", channel_attempt=1)


def _notice(account, refund, state, *, attempt, event_id="n"):
    number = refund.pk if attempt == 0 else f"{refund.pk}_{attempt}"
    return refund_callback(account=account, event=CallbackEvent(kind="refund", event_id=event_id, refund=RefundResult(
        state=state, out_refund_no=number, amount=refund.amount)))


def _reserved(refund) -> int:
    return Order.objects.get(pk=refund.order_id).refund_reserved


def test_a_stale_fail_notice_for_the_first_attempt_is_acknowledged_and_leaves_the_retry_pending(bank_account,
                                                                                                   retried):
    with pytest.raises(CallbackDuplicate, match=rf"attempt 0 \({retried.pk}\).*nothing changed"):
        _notice(bank_account, retried, "failed", attempt=0, event_id="old")
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal, _reserved(retried)) == ("pending", False, 1000)


def test_after_a_stale_fail_the_retrys_own_success_applies(bank_account, retried):
    with pytest.raises(CallbackDuplicate):
        _notice(bank_account, retried, "failed", attempt=0, event_id="old")
    note = _notice(bank_account, retried, "succeeded", attempt=1, event_id="new")
    assert note == f"refund {retried.pk}: pending → succeeded"
    retried.refresh_from_db()
    order = Order.objects.get(pk=retried.order_id)
    assert (retried.state, retried.abnormal) == ("succeeded", False)
    assert (order.refunded_amount, order.refund_reserved, order.refund_state) == (1000, 1000, "full")


@pytest.mark.parametrize("state", ["failed", "closed", "processing", "abnormal", "not_found"])
def test_no_answer_but_success_about_an_earlier_attempt_changes_the_refund(bank_account, retried, state):
    with pytest.raises(CallbackDuplicate, match="nothing changed"):
        _notice(bank_account, retried, state, attempt=0)
    answered = refund_apply_result(refund_id=retried.pk, result=RefundResult(state=state, out_refund_no=retried.pk))
    assert (answered.state, answered.abnormal, answered.next_query_at) == ("pending", False, None)
    assert _reserved(retried) == 1000 and not AuditLog.objects.filter(target_id=retried.pk).exists()


def test_the_current_attempts_notices_still_apply_and_their_duplicates_change_nothing(bank_account, retried):
    assert _notice(bank_account, retried, "failed", attempt=1) == f"refund {retried.pk}: pending → failed"
    assert _reserved(retried) == 0  # released: the merchant may retry again
    with pytest.raises(CallbackDuplicate, match="already failed"):
        _notice(bank_account, retried, "failed", attempt=1)
    # The channel then says that attempt returned the money after all: the state machine is final (still failed,
    # nothing reserved again), but the success is not dropped as a copy — flagged for a person (possible double
    # refund; tests/trades/test_lifecycle_review_refund_words.py).
    assert "needs a person" in _notice(bank_account, retried, "succeeded", attempt=1)
    retried.refresh_from_db()
    assert (retried.state, _reserved(retried), retried.abnormal) == ("failed", 0, True)


def test_a_refund_number_we_never_gave_the_channel_is_refused(bank_account, retried):
    with pytest.raises(CallbackRejected, match="is at attempt 1"):
        _notice(bank_account, retried, "failed", attempt=2)
    for number in (f"{retried.pk}_0", f"{retried.pk}_01", f"{retried.pk}_x"):
        with pytest.raises(CallbackRejected):
            refund_callback(account=bank_account, event=CallbackEvent(kind="refund", event_id="n", refund=RefundResult(
                state="failed", out_refund_no=number)))
    retried.refresh_from_db()
    assert retried.state == "pending"


def test_a_late_success_for_the_first_attempt_flags_the_pending_retry_for_a_person(bank_account, retried):
    note = _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    assert "flagged abnormal" in note and retried.pk in note  # the callback row's note: on the trade timeline
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal, _reserved(retried)) == ("pending", True, 1000)
    row = AuditLog.objects.get(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=retried.pk)
    assert row.actor_label == "channel:bank-attempts" and "double refund" in row.reason
    assert row.data["attempt"] == 0 and row.data["current_attempt"] == 1 and row.data["state"] == "pending"
    assert list(workbench.abnormal_refunds()) == [retried]

    with pytest.raises(CallbackDuplicate, match="already flagged"):  # the channel repeats its notice
        _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    assert AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED).count() == 1

    # The retry succeeds too: the money went back twice. Recorded, and still in front of a person.
    _notice(bank_account, retried, "succeeded", attempt=1)
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("succeeded", True)
    assert list(workbench.abnormal_refunds()) == [retried]


def test_a_late_success_for_the_first_attempt_flags_a_failed_retry_and_blocks_another(bank_account, retried):
    _notice(bank_account, retried, "failed", attempt=1)
    assert _reserved(retried) == 0
    _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("failed", True)
    assert list(workbench.abnormal_refunds()) == [retried]
    # A retry now could return the money a second time: refused until a person has settled it.
    with pytest.raises(InvalidState, match="held for review"):
        refund_create(order=retried.order, out_refund_no="R1", amount=1000, actor_label="api:x")
    retried.refresh_from_db()
    assert (retried.state, retried.channel_attempt, _reserved(retried)) == ("failed", 1, 0)


def test_a_late_success_for_the_first_attempt_flags_a_retry_that_succeeded_as_a_double_refund(bank_account,
                                                                                                retried):
    _notice(bank_account, retried, "succeeded", attempt=1)
    _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("succeeded", True)
    row = AuditLog.objects.get(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=retried.pk)
    assert row.data["state"] == "succeeded"
    assert list(workbench.abnormal_refunds()) == [retried]


def test_a_slow_query_answer_about_the_previous_attempt_does_not_settle_the_retry(retried, monkeypatch):
    """Staged: a query for attempt 1 is in flight; meanwhile attempt 1 fails and the merchant retries (attempt 2).
    The slow answer — without a refund number, as some answers come — is about attempt 1, not attempt 2."""
    retried.order.refund_reserved = 1000
    retried.order.save()

    class SlowBank:
        def query_refund(self, *, trade, out_refund_no):
            assert out_refund_no == f"{retried.pk}_1"
            refund_callback(account=retried.order.channel_account, event=CallbackEvent(
                kind="refund", event_id="f1", refund=RefundResult(state="failed", out_refund_no=out_refund_no)))
            refund_create(order=retried.order, out_refund_no="R1", amount=1000, actor_label="api:x")
            return RefundResult(state="succeeded", amount=1000)

    class NoSend:
        def refund(self, request):
            assert request.out_refund_no == f"{retried.pk}_2"
            return RefundResult(state="processing", out_refund_no=request.out_refund_no)

    adapters = iter([SlowBank(), NoSend()])
    monkeypatch.setattr(ChannelAccount, "adapter", lambda self: next(adapters))
    monkeypatch.setattr("trades.services.refunds._trade_ref", lambda order: None)
    answered = refund_sync(refund_id=retried.pk)
    assert (answered.channel_attempt, answered.state) == (2, "pending")
    # It said attempt 1 succeeded, though attempt 1 was reported failed: a person must look.
    assert answered.abnormal and AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED).count() == 1
    assert Order.objects.get(pk=retried.order_id).refunded_amount == 0


# --- end to end on the bank simulator -------------------------------------------------------------------------------


def _refund(shop, order: Order, out_refund_no: str, amount: int):
    return shop.client.request("POST", f"/api/v1/orders/{order.out_trade_no}/refunds",
                               json={"out_refund_no": out_refund_no, "amount": amount})


def _notices(shop, number: str, state: str) -> list[dict]:
    items = requests.get(f"{shop.root}/bank/_control/notifications", timeout=10).json()["notifications"]
    return [n for n in items if json.loads(n["body"]).get("out_refund_no") == number
            and json.loads(n["body"]).get("refund_state") == state]


def _failed_then_retried(shop, out_trade_no: str) -> tuple[Order, Refund]:
    """Attempt 0 fails at the bank (its FAIL notice applied); the merchant retries; attempt 1 waits at the bank."""
    order = paid_at_the_bank(shop, out_trade_no)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=0)
    status, _, first = _refund(shop, order, "R-ATT-1", 500)
    # Pending, or already failed when the bank's FAIL notice beat its own answer to us (502 channel_error).
    assert (status, first.get("state")) == (201, "pending") or first["error"]["code"] == "channel_error", first
    shop.sim("bank", "/_control/flush")
    refund = shop.wait_for(lambda: Refund.objects.filter(order=order, out_refund_no="R-ATT-1", state="failed").first(),
                           message="failed")
    assert Order.objects.get(pk=order.pk).refund_reserved == 0

    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, _, retry = _refund(shop, order, "R-ATT-1", 500)
    assert status == 201 and retry["id"] == refund.pk and retry["state"] == "pending", retry
    refund.refresh_from_db()
    assert refund.channel_attempt == 1 and Order.objects.get(pk=order.pk).refund_reserved == 500
    return order, refund


def test_a_re_delivered_fail_notice_for_the_first_attempt_does_not_fail_the_retry_end_to_end(
        shop, simulator_server):
    order, refund = _failed_then_retried(shop, "T-ATT-E2E-1")
    (old,) = _notices(shop, refund.pk, "FAIL")

    # The bank sends attempt 0's FAIL notice again, signed as before, while attempt 1 is pending.
    answer = requests.post(old["url"], data=old["body"].encode(), timeout=10,
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert (answer.status_code, answer.text) == (200, "SUCCESS")  # acknowledged: the bank stops re-sending
    refund.refresh_from_db()
    assert refund.state == "pending" and Order.objects.get(pk=order.pk).refund_reserved == 500
    stale = ChannelCallback.objects.filter(account=shop.accounts["bank"], kind="refund").latest("received_at")
    assert stale.outcome == CallbackOutcome.DUPLICATE and "attempt 0" in stale.message and refund.pk in stale.message

    # Attempt 1's SUCCESS notice then applies — it is not taken for a duplicate.
    settle_now(shop, simulator_server, f"{refund.pk}_1")
    shop.wait_for(lambda: Refund.objects.filter(pk=refund.pk, state="succeeded").exists(), message="refunded")
    applied = shop.wait_for(lambda: ChannelCallback.objects.filter(
        account=shop.accounts["bank"], outcome=CallbackOutcome.APPLIED, message__contains=f"{refund.pk}: pending → "
        "succeeded").first(), message="attempt 1's notice applied")
    assert applied.kind == "refund"
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved, paid.refund_state) == (500, 500, "partial")
    refund.refresh_from_db()
    assert not refund.abnormal


def test_a_late_success_notice_for_the_first_attempt_lands_in_the_abnormal_queue_end_to_end(
        shop, simulator_server, client, agent):
    order, refund = _failed_then_retried(shop, "T-ATT-E2E-2")
    # The bank changes its mind about attempt 0: it returned the money after all, and says so in a signed notice.
    succeeded_after_all(shop, simulator_server, refund.pk)
    shop.wait_for(lambda: Refund.objects.filter(pk=refund.pk, abnormal=True).exists(), message="flagged")
    refund.refresh_from_db()
    assert refund.state == "pending" and Order.objects.get(pk=order.pk).refund_reserved == 500

    queue = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert f'data-refund="{refund.pk}"' in queue
    timeline = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert EARLIER_ATTEMPT_SUCCEEDED in timeline and "flagged abnormal" in timeline

    # Attempt 1 succeeds as well: recorded, and the refund stays in front of a person (money went back twice).
    settle_now(shop, simulator_server, f"{refund.pk}_1")
    shop.wait_for(lambda: Refund.objects.filter(pk=refund.pk, state="succeeded").exists(), message="refunded")
    refund.refresh_from_db()
    assert refund.abnormal
    assert f'data-refund="{refund.pk}"' in client.get(reverse("trades:queue", args=["abnormal"])).content.decode()

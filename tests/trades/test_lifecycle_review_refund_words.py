"""What the channel says about a refund after the fact (design §5 rules 3 and 4), found in a review of the order
lifecycle:

- The refund of a late payment returns its whole amount (trades.services.late). A channel's word about that refund
  naming another amount is not about our refund as we asked it: a callback saying so is refused and recorded like
  any mismatch, and an answer to our own call or query saying so holds the late payment for a person — never
  resolves it, which would leave the payer short with nobody following the money.
- A merchant's refund the channel failed, and then says succeeded after all (bank.md §7.3: FAIL is "refundable
  again", not the end of the money's story): the success is never acknowledged as a copy and dropped — the money
  went back while the merchant was told the refund failed (and may refund again), so it goes to a person.

Driven with the channel's parsed answers, as tests/trades/test_late_retry.py and test_refund_attempts.py do."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from channels.adapters.base import CallbackEvent, PaymentResult, RefundResult
from channels.callbacks import CallbackDuplicate, CallbackRejected
from tests.trades.bank_flow import unreachable_bank_account
from trades import workbench
from trades.models import LatePayment, Order, Refund
from trades.services.callbacks import refund_callback
from trades.services.late import late_payment_apply_refund_result, late_refund_no
from trades.services.refunds import EARLIER_ATTEMPT_SUCCEEDED, refund_create, refund_fingerprint


@pytest.fixture
def bank_account(db):
    return unreachable_bank_account("bank-review")


@pytest.fixture
def refunding(tea_house_app, bank_account):
    """A late payment of 1000 fen whose automatic refund (attempt 0) the channel is working on."""
    order = Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-REV-LATE",
                                 amount=1000, product="unionpay.qr", subject="tea", request_fingerprint="x" * 64,
                                 expires_at=timezone.now() - dt.timedelta(minutes=5), channel_account=bank_account,
                                 state="closed")
    return LatePayment.objects.create(order=order, channel_trade_no="B0001", amount=1000, state="refunding",
                                      refund_attempts=1)


def _late_word(late, state, *, amount):
    return RefundResult(state=state, out_refund_no=late_refund_no(late.order_id, 0), amount=amount,
                        channel_refund_no="R0001")


def test_a_late_refund_notice_naming_another_amount_is_refused_and_resolves_nothing(bank_account, refunding):
    with pytest.raises(CallbackRejected, match="amount 1 .*1000"):
        refund_callback(account=bank_account, event=CallbackEvent(kind="refund", event_id="n1", refund=_late_word(
            refunding, "succeeded", amount=1)))
    refunding.refresh_from_db()
    assert (refunding.state, refunding.abnormal) == ("refunding", False)
    # The whole amount's notice still applies.
    refund_callback(account=bank_account, event=CallbackEvent(kind="refund", event_id="n2", refund=_late_word(
        refunding, "succeeded", amount=1000)))
    assert LatePayment.objects.get(pk=refunding.pk).state == "resolved"


@pytest.mark.parametrize("source", ["query", "refund"])
def test_an_answer_naming_another_amount_holds_the_late_payment_for_a_person(refunding, source):
    late, changed = late_payment_apply_refund_result(late_payment_id=refunding.pk, result=_late_word(
        refunding, "succeeded", amount=1), source=source)
    assert changed
    assert (late.state, late.abnormal) == ("open", True)  # off the sweeper's list, in the late-payment queue
    assert "amount 1" in late.resolution and "needs a person" in late.resolution
    assert late.pk in {row.pk for row in workbench.open_late_payments()}
    row = AuditLog.objects.get(action="trades.late_payment.refund", target_id=late.order_id)
    assert (row.data["to"], row.data["reported_amount"], row.data["amount"]) == ("open", 1, 1000)
    # Asked again, the channel repeats itself: nothing more is written.
    late_payment_apply_refund_result(late_payment_id=refunding.pk, result=_late_word(refunding, "succeeded", amount=1),
                                     source=source)
    assert AuditLog.objects.filter(action="trades.late_payment.refund", target_id=late.order_id).count() == 1


@pytest.fixture
def failed_refund(tea_house_app, bank_account):
    """A paid order of 1000 fen with a refund of 400 whose only attempt the bank failed."""
    order = Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-REV-FAIL",
                                 amount=1000, product="unionpay.qr", subject="tea", request_fingerprint="x" * 64,
                                 expires_at=timezone.now() + dt.timedelta(hours=2), channel_account=bank_account,
                                 state="succeeded")
    return Refund.objects.create(order=order, merchant=order.merchant, out_refund_no="R-REV-1", amount=400,
                                 request_fingerprint=refund_fingerprint(out_refund_no="R-REV-1", amount=400, reason="",
                                                                      notify_url=""),
                                 requested_by="api:test", state="failed",
                                 failure_code="FAIL", failure_message="merchant balance")


def _refund_word(refund, state, *, event_id="b1"):
    trade = PaymentResult(state="succeeded", out_trade_no=refund.order_id, sub_mchid="", currency="")
    return refund_callback(account=refund.order.channel_account, event=CallbackEvent(
        kind="refund", event_id=event_id, payment=trade, refund=RefundResult(
            state=state, out_refund_no=refund.pk, amount=refund.amount, channel_refund_no="R9001")))


def test_a_failed_refunds_success_after_all_goes_to_a_person_not_dropped_as_a_copy(failed_refund):
    note = _refund_word(failed_refund, "succeeded")
    assert failed_refund.pk in note and "needs a person" in note
    failed_refund.refresh_from_db()
    assert (failed_refund.state, failed_refund.abnormal) == ("failed", True)
    assert failed_refund.pk in {row.pk for row in workbench.abnormal_refunds()}
    row = AuditLog.objects.get(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=failed_refund.pk)
    assert (row.data["attempt"], row.data["state"], row.data["channel_refund_no"]) == (0, "failed", "R9001")
    # The merchant retrying that out_refund_no is held back: the money may already be with the payer.
    with pytest.raises(InvalidState, match="held for review"):
        refund_create(order=failed_refund.order, out_refund_no="R-REV-1", amount=400, actor_label="api:test")
    # The bank re-delivers its notice: a copy now.
    with pytest.raises(CallbackDuplicate):
        _refund_word(failed_refund, "succeeded", event_id="b2")
    assert AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=failed_refund.pk).count() == 1


@pytest.mark.parametrize("state", ["failed", "closed", "processing"])
def test_any_other_word_about_a_failed_refund_is_still_a_copy(failed_refund, state):
    with pytest.raises(CallbackDuplicate, match="already failed"):
        _refund_word(failed_refund, state)
    failed_refund.refresh_from_db()
    assert (failed_refund.state, failed_refund.abnormal) == ("failed", False)

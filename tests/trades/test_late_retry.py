"""A late payment's refund retried after the channel failed it (design §5 rule 3: a late payment is never lost).

A channel treats an out_refund_no as one refund forever (channel-protocols.md A.10 "same out_refund_no is
idempotent"; docs/channels/bank.md §7.1 "the same out_refund_no with the same trade and amount answers the existing
refund"): asked again under the number of a failed refund, it answers that failed refund. So each retry after a
definite "no" goes out under a new number — the first attempt keeps ``late_<order id>`` — and only an answer about
the current attempt moves the late payment. An answer about an earlier attempt changes nothing, unless it says that
attempt succeeded: then the money may have gone back twice, and the late payment is flagged for a person.

Bank A's simulator fails the first refund (its ``refund_outcome`` setting) and keeps it failed, as a real bank does.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from channels.adapters.base import CallbackEvent, RefundResult
from channels.callbacks import CallbackDuplicate, CallbackRejected
from channels.models import CallbackOutcome, ChannelCallback
from tests.trades.bank_flow import (
    at_the_bank,
    bank_refunds,
    late_refund_failed_first,
    settle_now,
    succeeded_after_all,
    unreachable_bank_account,
)
from trades import workbench
from trades.models import ChannelCall, LatePayment, Order
from trades.services.callbacks import refund_callback
from trades.services.late import (
    EARLIER_ATTEMPT_SUCCEEDED,
    late_payment_refund,
    late_refund_no,
    late_refund_no_split,
)
from trades.services.staff import late_payment_settle_by_staff

pytestmark = pytest.mark.usefixtures("quiet_channels")

REASON = "the bank failed the first refund; send it again"  # "Refund to payer" needs one


# --- the numbers ----------------------------------------------------------------------------------------------------
def test_the_first_attempt_keeps_its_number_and_each_retry_gets_one_that_fits_the_channels():
    order_id = "ord_" + "Ab3" * 7 + "Z"  # an order id: ord_ + 22 base62 characters
    assert late_refund_no(order_id) == late_refund_no(order_id, 0) == f"late_{order_id}"
    for attempt in (1, 2, 10, 9999):
        number = late_refund_no(order_id, attempt)
        assert number == f"late_{order_id[4:]}_{attempt}" and 6 <= len(number) <= 32  # docs/channels/bank.md §2
        assert late_refund_no_split(number) == (order_id, attempt)
    assert late_refund_no_split(f"late_{order_id}") == (order_id, 0)
    for foreign in ("ref_abc", "", f"late_{order_id[4:]}_0", f"late_{order_id[4:]}_01"):
        split = late_refund_no_split(foreign)
        assert split is None or split[0] != order_id


# --- the services, with the channel's parsed answers ----------------------------------------------------------------
@pytest.fixture
def bank_account(db):
    return unreachable_bank_account("bank-late")


@pytest.fixture
def retried(tea_house_app, bank_account):
    """A late payment whose first refund (attempt 0) failed at the channel; support refunded it again: attempt 1 is
    being refunded."""
    order = Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-LATE-ATT",
                                 amount=1000, product="unionpay.qr", subject="tea", request_fingerprint="x" * 64,
                                 expires_at=timezone.now() - dt.timedelta(minutes=5), channel_account=bank_account,
                                 state="closed")
    return LatePayment.objects.create(order=order, channel_trade_no="B0001", amount=1000, state="refunding",
                                      refund_attempts=2, resolution="refund failed at the channel — needs a person")


def _notice(account, late, state, *, attempt, event_id="n"):
    return refund_callback(account=account, event=CallbackEvent(kind="refund", event_id=event_id, refund=RefundResult(
        state=state, out_refund_no=late_refund_no(late.order_id, attempt), amount=late.amount)))


def test_a_stale_fail_notice_for_the_first_attempt_is_acknowledged_and_leaves_the_retry_refunding(bank_account,
                                                                                                    retried):
    with pytest.raises(CallbackDuplicate, match=rf"attempt 0 \(late_{retried.order_id}\).*nothing changed"):
        _notice(bank_account, retried, "failed", attempt=0, event_id="old")
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("refunding", False)

    note = _notice(bank_account, retried, "succeeded", attempt=1, event_id="new")  # the retry's own word applies
    assert note == f"late payment of {retried.order_id}: refund succeeded → resolved"
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("resolved", False)


@pytest.mark.parametrize("state", ["failed", "closed", "processing", "abnormal"])
def test_no_word_but_success_about_an_earlier_attempt_changes_the_late_payment(bank_account, retried, state):
    with pytest.raises(CallbackDuplicate, match="nothing changed"):
        _notice(bank_account, retried, state, attempt=0)
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("refunding", False)
    assert not AuditLog.objects.filter(target_id=retried.order_id).exists()


def test_a_refund_number_we_never_gave_the_channel_is_refused(bank_account, retried):
    with pytest.raises(CallbackRejected, match="is at attempt 1"):
        _notice(bank_account, retried, "succeeded", attempt=2)
    for number in (f"late_{retried.order_id[4:]}_0", f"late_{retried.order_id[4:]}_01", "late_ord_nosuchorder"):
        with pytest.raises(CallbackRejected):
            refund_callback(account=bank_account, event=CallbackEvent(kind="refund", event_id="n", refund=RefundResult(
                state="succeeded", out_refund_no=number)))
    retried.refresh_from_db()
    assert retried.state == "refunding"


def test_once_an_attempt_said_no_only_its_success_still_counts(bank_account, retried):
    assert _notice(bank_account, retried, "failed", attempt=1).endswith("→ open")
    for state in ("processing", "closed", "failed"):  # e.g. the refund call's answer overtaken by the notice
        with pytest.raises(CallbackDuplicate):
            _notice(bank_account, retried, state, attempt=1, event_id=state)
    assert LatePayment.objects.get(pk=retried.pk).state == "open"
    assert _notice(bank_account, retried, "succeeded", attempt=1).endswith("→ resolved")  # the channel's last word


def test_a_late_success_for_the_first_attempt_flags_the_retry_for_a_person(bank_account, retried, client, agent):
    note = _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    assert "flagged for a person" in note and retried.order_id in note  # the callback row's note: on the timeline
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("refunding", True)
    assert "possible double refund" in retried.resolution
    row = AuditLog.objects.get(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=retried.order_id)
    assert row.actor_label == "channel:bank-late" and "double refund" in row.reason
    assert (row.data["attempt"], row.data["current_attempt"], row.data["state"]) == (0, 1, "refunding")

    with pytest.raises(CallbackDuplicate, match="nothing changed"):  # the channel repeats its notice
        _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    assert AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED).count() == 1

    # The retry succeeds too: the money went back twice. Resolved, and still in front of a person.
    _notice(bank_account, retried, "succeeded", attempt=1)
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("resolved", True)
    assert list(workbench.open_late_payments()) == [retried]
    queue = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert f'data-late-abnormal="{retried.pk}"' in queue
    assert EARLIER_ATTEMPT_SUCCEEDED in client.get(reverse("trades:detail", args=[retried.order_id])).content.decode()

    # Support settles the double refund with the channel and the merchant: the flag is cleared, audited.
    settled = late_payment_settle_by_staff(late_payment_id=retried.pk, actor=agent, outcome="refunded_outside",
                                           note="bank confirmed both refunds; merchant recovers one from the payer")
    assert (settled.state, settled.abnormal) == ("resolved", False)
    assert AuditLog.objects.get(action="trades.late_payment.settled_by_hand").data["abnormal"] is True
    assert list(workbench.open_late_payments()) == []


def test_a_late_success_for_the_first_attempt_after_the_retry_failed_blocks_another_retry(bank_account, retried,
                                                                                         agent):
    _notice(bank_account, retried, "failed", attempt=1)
    _notice(bank_account, retried, "succeeded", attempt=0, event_id="late")
    retried.refresh_from_db()
    assert (retried.state, retried.abnormal) == ("open", True)
    # A third attempt now could return the money a second time: refused until a person has settled it.
    with pytest.raises(InvalidState, match="held for a person"):
        late_payment_refund(late_payment_id=retried.pk, actor=agent)
    retried.refresh_from_db()
    assert (retried.state, retried.refund_attempts) == ("open", 2)
    settled = late_payment_settle_by_staff(late_payment_id=retried.pk, actor=agent, outcome="refunded_outside",
                                           note="the bank returned it under the first number")
    assert (settled.state, settled.abnormal) == ("resolved", False)


# --- end to end on the bank simulator -------------------------------------------------------------------------------


def test_a_late_refund_the_bank_failed_is_retried_under_a_new_number_and_succeeds(
        shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LR-RETRY-1")
    first = f"late_{late.order_id}"
    retry = f"late_{late.order_id.removeprefix('ord_')}_1"
    assert len(retry) <= 32  # docs/channels/bank.md §2: our numbers are 6–32 characters

    # Support refunds it again; the bank would answer the first number with its failed refund forever.
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON})
    late.refresh_from_db()
    assert late.state == "refunding" and late.refund_attempts == 2, late.resolution
    at_bank = at_the_bank(shop, simulator_server, retry)
    assert at_bank is not None and at_bank["refund_amount"] == 1500 and at_bank["refund_state"] == "PROCESSING"
    assert at_the_bank(shop, simulator_server, first)["refund_state"] == "FAIL"  # untouched
    staff_row = AuditLog.objects.get(action="trades.late_payment.staff_refund", target_id=late.order_id)
    assert staff_row.actor == agent and staff_row.data["out_refund_no"] == retry

    # The bank returns the money under the new number and says so: the late payment is resolved.
    settle_now(shop, simulator_server, retry)
    resolved = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").first(),
                             message="resolved by the retry's notice")
    assert "refund succeeded at the channel" in resolved.resolution and not resolved.abnormal
    assert Order.objects.get(pk=late.order_id).state == "closed"
    changes = [(row.data["out_refund_no"], row.data["to"]) for row in AuditLog.objects.filter(
        action="trades.late_payment.refund", target_id=late.order_id).order_by("id")]
    assert changes[-1] == (retry, "resolved") and (first, "open") in changes
    assert ChannelCall.objects.filter(order_id=late.order_id, verb="late_refund").count() == 2


def test_the_bank_reporting_the_first_attempt_succeeded_after_all_flags_the_late_payment_end_to_end(
        shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LR-RETRY-2")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON})
    assert LatePayment.objects.get(pk=late.pk).state == "refunding"

    # The bank changes its mind about the first refund: it returned the money after all, and says so, signed.
    succeeded_after_all(shop, simulator_server, f"late_{late.order_id}")
    flagged = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, abnormal=True).first(), message="flagged")
    assert flagged.state == "refunding"  # the retry is still the bank's to answer
    notice = ChannelCallback.objects.filter(account=shop.accounts["bank"], kind="refund",
                                            outcome=CallbackOutcome.APPLIED).latest("received_at")
    assert "flagged for a person" in notice.message
    page = client.get(reverse("trades:detail", args=[late.order_id])).content.decode()
    assert EARLIER_ATTEMPT_SUCCEEDED in page and "possible double refund" in page

    # The retry succeeds as well: resolved, and in the late-payment queue until a person settles it.
    settle_now(shop, simulator_server, f"late_{late.order_id[4:]}_1")
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").exists(), message="resolved")
    queue = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert f'data-late-abnormal="{late.pk}"' in queue

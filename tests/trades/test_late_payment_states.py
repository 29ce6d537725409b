"""A late payment's state moves only through its transitions (style.md §6): ``LatePayment.state`` is a protected
FSMField, and trades.services.late calls the named transitions under the row's lock — refund_start (open →
refunding), refund_succeeded (refunding or open → resolved), refund_refused (refunding → open), refund_never_received
and refund_held (refunding → open, flagged only), settle_by_hand (open → resolved) and settle_flagged_by_hand (resolved, flagged →
resolved). A move the machine does not allow is refused by the services with their InvalidState, never a 500.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_fsm import TransitionNotAllowed

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from tests.trades.bank_flow import bank_refunds, paid_after_close, settle_now
from tests.trades.test_staff_workbench import _order
from trades import workbench
from trades.models import LatePayment
from trades.services.late import late_payment_can_refund_again, late_payment_refund
from trades.services.staff import late_payment_refund_by_staff, late_payment_settle_by_staff


def _late(merchant, no: str, *, state: str, abnormal: bool = False) -> LatePayment:
    # A protected field may still be given at creation: the row starts in the state the test needs.
    return LatePayment.objects.create(order=_order(merchant, no, state="closed"), channel_trade_no=f"42000{no}",
                                      amount=1000, state=state, abnormal=abnormal)


def test_the_state_cannot_be_assigned(tea_house):
    late = _late(tea_house, "LS-1", state="open")
    with pytest.raises(AttributeError, match="Direct state modification is not allowed"):
        late.state = "resolved"
    late.refresh_from_db()  # FSMModelMixin: reloading a protected field is allowed
    assert LatePayment.objects.get(pk=late.pk).state == late.state == "open"


@pytest.mark.parametrize(("state", "abnormal", "moves"), [
    ("open", False, {"refund_start", "refund_succeeded", "settle_by_hand"}),
    ("open", True, {"refund_succeeded", "settle_by_hand"}),  # no new attempt while flagged
    ("refunding", False, {"refund_succeeded", "refund_refused"}),
    ("refunding", True, {"refund_succeeded", "refund_refused", "refund_never_received", "refund_held"}),
    ("resolved", False, set()),
    ("resolved", True, {"settle_flagged_by_hand"}),
])
def test_the_moves_each_state_allows(tea_house, state, abnormal, moves):
    late = _late(tea_house, f"LS-M-{state}-{abnormal}", state=state, abnormal=abnormal)
    assert {t.name for t in late.get_available_state_transitions()} == moves


def test_a_resolved_late_payment_is_not_refunded_again(tea_house, staff_member):
    agent = staff_member("support_agent", username="wu.support")
    late = _late(tea_house, "LS-R", state="resolved")
    with pytest.raises(TransitionNotAllowed):
        late.refund_start()
    # Through the services: refused with their own words, or nothing to do; no attempt is counted.
    with pytest.raises(InvalidState, match="the late payment is resolved"):
        late_payment_refund_by_staff(late_payment_id=late.pk, actor=agent, reason="the payer asked")
    assert late_payment_refund(late_payment_id=late.pk).state == "resolved"
    with pytest.raises(InvalidState, match="already resolved"):
        late_payment_settle_by_staff(late_payment_id=late.pk, actor=agent, outcome="refunded_outside", note="again")
    late.refresh_from_db()
    assert (late.state, late.refund_attempts, late.resolution) == ("resolved", 0, "")


def test_a_flagged_late_payment_is_not_refunded_again_but_settled_by_hand(tea_house, staff_member):
    agent = staff_member("support_agent", username="zheng.support")
    late = _late(tea_house, "LS-F", state="open", abnormal=True)
    with pytest.raises(InvalidState, match="held for a person"):
        late_payment_refund_by_staff(late_payment_id=late.pk, actor=agent, reason="the payer asked")
    settled = late_payment_settle_by_staff(late_payment_id=late.pk, actor=agent, outcome="refunded_outside",
                                           note="the bank's desk confirmed one refund")
    assert (settled.state, settled.abnormal, settled.refund_attempts) == ("resolved", False, 0)


@pytest.mark.parametrize(("state", "abnormal", "settleable"), [
    ("open", False, True),
    ("open", True, True),
    ("refunding", False, False),  # the channel may still be returning the money
    ("refunding", True, False),
    ("resolved", False, False),  # nothing left to settle
    ("resolved", True, True),  # a possible double refund
])
def test_the_trade_page_the_queue_and_the_service_agree_on_what_may_be_settled_by_hand(tea_house, client, agent,
                                                                                      state, abnormal, settleable):
    late = _late(tea_house, f"LS-S-{state}-{abnormal}", state=state, abnormal=abnormal)
    page = client.get(reverse("trades:detail", args=[late.order_id])).content.decode()
    queue = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert ('id="settle-late-form"' in page) is settleable
    assert (f'data-settle="{late.pk}"' in queue) is settleable
    assert workbench.open_late_payments().filter(pk=late.pk).exists() is settleable
    try:
        late_payment_settle_by_staff(late_payment_id=late.pk, actor=agent, outcome="kept_by_merchant",
                                     note="the merchant delivered the tea")
    except InvalidState:
        settled = False
    else:
        settled = True
    assert settled is settleable


@pytest.mark.parametrize(("state", "abnormal", "refundable"), [
    ("open", False, True),
    ("open", True, False),  # an earlier attempt may have returned the money: settled by hand only
    ("resolved", True, False),
])
def test_the_queue_offers_refund_to_payer_exactly_when_a_new_attempt_may_start(tea_house, client, agent,
                                                                               state, abnormal, refundable):
    late = _late(tea_house, f"LS-R-{state}-{abnormal}", state=state, abnormal=abnormal)
    queue = client.get(reverse("trades:queue", args=["late"])).content.decode()
    row = queue.split(f'data-late="{late.pk}"', 1)[1].split("</tr>", 1)[0]
    assert ("Refund to payer" in row) is refundable
    assert late_payment_can_refund_again(late) is refundable


@pytest.mark.usefixtures("quiet_channels")
def test_a_late_refund_goes_open_refunding_resolved_on_the_bank_simulator(
        shop, simulator_server, settings, client, staff_member):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False  # left open for support
    client.force_login(staff_member("support_agent", username="he.support"))
    late = paid_after_close(shop, simulator_server, "LS-E2E")
    assert (late.state, late.refund_attempts) == ("open", 0)

    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)  # PROCESSING until settle_now
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": "the payer asked for the money back"})
    late.refresh_from_db()
    assert (late.state, late.refund_attempts) == ("refunding", 1), late.resolution

    settle_now(shop, simulator_server, f"late_{late.order_id}")
    resolved = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").first(),
                             message="resolved by the bank's notice")
    assert "refund succeeded at the channel" in resolved.resolution and not resolved.abnormal
    assert AuditLog.objects.get(action="trades.late_payment.staff_refund", target_id=late.order_id).data["state"] \
        == "open"
    moves = [(row.data["from"], row.data["to"]) for row in AuditLog.objects.filter(
        action="trades.late_payment.refund", target_id=late.order_id).order_by("id")]
    assert moves[-1] == ("refunding", "resolved") and set(moves[:-1]) <= {("refunding", "refunding")}

"""Risk limits a contract a clerk has suspended (merchants.services.contract_risk, design §4, §8): a channel punishes
a sub-merchant whose contract we hold suspended. The contract stays suspended — the suspension is the clerk's to end —
and the limit is recorded on its timeline (who, when, why, the channel record); resumed, it comes back limited, and
the notice that set the limit (or the merchant page) lifts it. Lifting while suspended cancels the limit the resume
would bring back. No state is invented: the decision is a ``suspended → suspended`` entry, not a move."""

from __future__ import annotations

import pytest
from django.db import transaction

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from channels import routing
from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.models import Contract, ContractState, Merchant
from merchants.services.contract_risk import contract_lift_limit, contract_limit, limit_event, limited_for
from merchants.services.contracts import contract_apply_result
from merchants.services.settlement import contract_resume, contract_suspend, suspended_from
from merchants.workbench import contract_timeline
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.factories import MerchantFactory
from tests.merchants.contract_card import card, page, text
from tests.merchants.test_lock_order import _Staged
from tests.risk.violations import TEA_SUB, contract_on, wechat_account

pytestmark = pytest.mark.django_db



@pytest.fixture
def suspended(tea_contract, clerk_wang):
    """Wang suspended the active WeChat contract: the merchant asked for a pause."""
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")
    return tea_contract


def notice(wx, *, record_id: str, event_type: str = "VIOLATION.PUNISH", event_id: str | None = None):
    return channel_risk_notice_record(account=wx, event_type=event_type, event_id=event_id or f"EV-{record_id}",
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB,
                                            "punish_plan": "关闭支付权限"}).notice


def state_of(contract) -> str:
    return Contract.objects.get(pk=contract.pk).state


def fresh(contract) -> Contract:
    return Contract.objects.get(pk=contract.pk)


def routed(merchant) -> int | None:
    decision = routing.choose(merchant=Merchant.objects.get(pk=merchant.pk), product="wechat.native", amount=1500)
    return decision.chosen.contract_id if decision.chosen else None


def risk_rows() -> list[str]:
    return list(AuditLog.objects.filter(action__in=("merchants.contract.limit", "merchants.contract.lift_limit"))
                .order_by("id").values_list("action", flat=True))


# --- the service ----------------------------------------------------------------------------------------------------
def test_it_limits_a_suspended_contract_without_ending_the_suspension(suspended, risk_zhao):
    contract = contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="WeChat closed its payments",
                              data={"record_id": "VR-1"})

    assert contract.state == ContractState.SUSPENDED and state_of(suspended) == ContractState.SUSPENDED
    event = fresh(suspended).events.last()
    assert (event.from_state, event.to_state, event.source, event.message) == (
        "suspended", "suspended", "staff", "WeChat closed its payments")
    assert (event.data["by"], event.data["record_id"]) == ("zhao.risk", "VR-1")
    row = AuditLog.objects.get(action="merchants.contract.limit")
    assert (row.actor, row.reason) == (risk_zhao, "WeChat closed its payments")
    assert (row.data["from"], row.data["to"], row.data["resumes"]) == ("suspended", "suspended", "limited")
    assert suspended_from(fresh(suspended)) == ContractState.LIMITED


def test_resumed_it_comes_back_limited_and_its_orders_go_elsewhere(suspended, bank_contract, risk_zhao,
                                                                   clerk_wang):
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="WeChat closed its payments")

    resumed = contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="merchant is back")

    assert resumed.state == ContractState.LIMITED and state_of(suspended) == ContractState.LIMITED
    assert routed(suspended.merchant) == bank_contract.pk
    # Still the limit risk recorded, with who and why (the resume entry is no new limit).
    limit = limit_event(fresh(suspended))
    assert (limit.from_state, limit.message, limit.data["by"]) == ("suspended", "WeChat closed its payments",
                                                                   "zhao.risk")


def test_the_notice_that_limited_a_suspended_contract_lifts_it_after_the_resume(wx, suspended, bank_contract,
                                                                               risk_zhao, clerk_wang):
    punished = notice(wx, record_id="VR-1")
    channel_risk_notice_handle(notice_id=punished.pk, actor=risk_zhao, action="limit", note="payments closed")
    assert state_of(suspended) == ContractState.SUSPENDED
    event = fresh(suspended).events.last()
    assert (event.data["channel_notice"], event.data["record_id"]) == (punished.pk, "VR-1")
    assert event.message == "channel risk notice VR-1: payments closed"
    contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="merchant is back")
    assert limited_for(limit_event(fresh(suspended))) == "VR-1"

    appeal = notice(wx, record_id="VR-1", event_type="VIOLATION.APPEAL", event_id="EV-APPEAL")
    channel_risk_notice_handle(notice_id=appeal.pk, actor=risk_zhao, action="lift", note="appeal approved")

    assert state_of(suspended) == ContractState.ACTIVE and routed(suspended.merchant) == suspended.pk


@pytest.mark.parametrize("held", ["limited while suspended", "suspended while limited"])
def test_lifting_while_suspended_cancels_the_limit_the_resume_would_bring_back(tea_contract, risk_zhao,
                                                                              clerk_wang, held):
    if held == "limited while suspended":
        contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="pause")
        contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    else:
        contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
        contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="pause")

    contract = contract_lift_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="appeal approved")

    assert contract.state == ContractState.SUSPENDED and state_of(tea_contract) == ContractState.SUSPENDED
    event = fresh(tea_contract).events.last()
    assert (event.from_state, event.to_state, event.message) == ("suspended", "suspended", "appeal approved")
    row = AuditLog.objects.get(action="merchants.contract.lift_limit")
    assert (row.data["from"], row.data["to"], row.data["resumes"]) == ("suspended", "suspended", "active")
    assert contract_resume(contract_id=tea_contract.pk, actor=clerk_wang, reason="back").state == \
        ContractState.ACTIVE


def test_a_notice_about_another_record_cannot_lift_a_limit_held_by_the_suspension(wx, suspended, risk_zhao):
    channel_risk_notice_handle(notice_id=notice(wx, record_id="VR-1").pk, actor=risk_zhao, action="limit",
                               note="payments closed")
    other = notice(wx, record_id="VR-2", event_type="VIOLATION.APPEAL", event_id="EV-OTHER")

    with pytest.raises(InvalidState) as refused:
        channel_risk_notice_handle(notice_id=other.pk, actor=risk_zhao, action="lift", note="appeal approved")

    assert "for channel record VR-1, not for VR-2" in refused.value.message
    assert suspended_from(fresh(suspended)) == ContractState.LIMITED
    assert risk_rows() == ["merchants.contract.limit"]


def test_limiting_twice_while_suspended_or_a_contract_suspended_while_limited_is_refused(tea_contract, risk_zhao,
                                                                                        clerk_wang):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="first punishment")
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="pause")
    events = fresh(tea_contract).events.count()

    with pytest.raises(InvalidState) as refused:
        contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="second punishment")

    assert "is suspended and already resumes limited; cannot limit it again" in refused.value.message
    assert fresh(tea_contract).events.count() == events and risk_rows() == ["merchants.contract.limit"]
    assert limit_event(fresh(tea_contract)).message == "first punishment"


def test_lifting_a_suspended_contract_with_no_limit_is_refused_and_writes_nothing(suspended, risk_zhao):
    with pytest.raises(InvalidState) as refused:
        contract_lift_limit(contract_id=suspended.pk, actor=risk_zhao, reason="appeal approved")

    assert "is suspended and resumes active: it has no limit to lift" in refused.value.message
    assert fresh(suspended).events.count() == 1 and risk_rows() == []


def test_the_latest_decision_while_suspended_is_what_the_resume_brings_back(suspended, risk_zhao, clerk_wang):
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="first punishment")
    contract_lift_limit(contract_id=suspended.pk, actor=risk_zhao, reason="appeal approved")
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="punished again")

    assert contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="back").state == ContractState.LIMITED
    assert limit_event(fresh(suspended)).message == "punished again"


def test_a_channel_answer_noted_after_the_limit_does_not_make_the_resume_forget_it(suspended, risk_zhao,
                                                                                    clerk_wang):
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="WeChat closed its payments")
    contract_apply_result(contract_id=suspended.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.FINISHED, sub_mchid=TEA_SUB))
    note = fresh(suspended).events.last()
    assert (note.from_state, note.to_state, note.data.get("ignored")) == ("suspended", "suspended", True)

    assert contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="back").state == ContractState.LIMITED


def test_a_later_suspension_from_active_is_not_held_by_an_old_limit(suspended, risk_zhao, clerk_wang):
    """The limit recorded while suspended came back with the resume and was lifted; the next suspension, from
    active, resumes active — the old note is before it."""
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="WeChat closed its payments")
    contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="back")
    contract_lift_limit(contract_id=suspended.pk, actor=risk_zhao, reason="appeal approved")
    contract_suspend(contract_id=suspended.pk, actor=clerk_wang, reason="pause again")

    assert contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="back").state == ContractState.ACTIVE


def test_the_timeline_says_what_the_decision_was_and_what_the_resume_brings_back(suspended, risk_zhao):
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="WeChat closed its payments")
    contract_lift_limit(contract_id=suspended.pk, actor=risk_zhao, reason="appeal approved")

    entries = contract_timeline(fresh(suspended))

    notes = [e.message for e in entries if (e.from_state, e.to_state) == ("suspended", "suspended")]
    assert notes == ["limited while suspended — resuming brings it back limited: WeChat closed its payments",
                     "limit lifted while suspended — resuming brings it back active: appeal approved"]
    # Told once: the audit rows are not repeated as notes.
    assert not [e for e in entries if not e.to_state and e.message.startswith(("limit", "lift limit"))]


# --- a clerk's resume and risk's limit at once ------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["risk limits", "the clerk resumes"])
def test_a_limit_and_a_resume_at_once_end_limited_whichever_goes_first(staff_member, first):
    """Each waits for the other's lock on the contract and then sees its outcome: a resume after the limit brings
    it back limited; a limit after the resume limits the active contract."""
    zhao, wang = staff_member("risk_officer", username="zhao.risk"), staff_member("onboarding_clerk",
                                                                                  username="wang.clerk")
    contract = contract_on(wechat_account(), MerchantFactory(), sub_mchid=TEA_SUB)
    contract_suspend(contract_id=contract.pk, actor=wang, reason="pause")

    def limit():
        contract_limit(contract_id=contract.pk, actor=zhao, reason="WeChat closed its payments")

    def resume():
        contract_resume(contract_id=contract.pk, actor=wang, reason="back")

    one, two = (limit, resume) if first == "risk limits" else (resume, limit)
    staged = _Staged()

    def first_holding_the_lock():
        with transaction.atomic():
            one()
            staged.pause()

    staged.run(first_holding_the_lock, two)

    assert staged.waited, "the second never waited for the first's lock: the race was not staged"
    assert staged.errors == []
    assert state_of(contract) == ContractState.LIMITED
    assert limit_event(fresh(contract)).message == "WeChat closed its payments"


# --- the merchant page ----------------------------------------------------------------------------------------------
def test_the_card_offers_a_risk_officer_to_limit_a_suspended_contract_and_says_it_stays_suspended(
        client, suspended, risk_zhao, clerk_wang):
    client.force_login(clerk_wang)
    assert "limit-form" not in card(client.get(page(suspended.merchant)).content.decode(), suspended)
    client.force_login(risk_zhao)

    shown = card(client.get(page(suspended.merchant)).content.decode(), suspended)

    assert f'id="limit-form-{suspended.pk}"' in shown
    assert "it stays suspended (the suspension is the clerk's to end); the limit is recorded on its timeline, and " \
           "resuming brings it back limited" in text(shown)


def test_limiting_on_the_card_keeps_the_suspension_and_the_card_shows_the_limit_the_resume_brings_back(
        client, suspended, bank_contract, risk_zhao, clerk_wang):
    client.force_login(risk_zhao)

    response = client.post(f"/staff/merchants/{suspended.merchant.merchant_no}/contracts/{suspended.pk}/limit/",
                           {"reason": "Bank A risk desk reports chargebacks on WeChat"}, follow=True)

    html = response.content.decode()
    assert "Limit recorded on the suspended contract with WeChat Pay wx-risk: it stays suspended, and resumed it " \
           "comes back limited" in html
    assert state_of(suspended) == ContractState.SUSPENDED
    shown = card(html, suspended)
    assert 'data-role="limit"' in shown and "held by the suspension" in shown
    assert "by zhao.risk — not on a channel notice: Bank A risk desk reports chargebacks on WeChat" in text(shown)
    assert f'id="lift-limit-{suspended.pk}"' in shown and "limit-form" not in shown
    assert "the contract stays suspended, and resuming brings it back active" in text(shown)

    client.force_login(clerk_wang)
    assert 'data-role="resumes-limited"' in card(client.get(page(suspended.merchant)).content.decode(), suspended)
    resumed = client.post(f"/staff/merchants/{suspended.merchant.merchant_no}/contracts/{suspended.pk}/resume/",
                          {"reason": "merchant is back"}, follow=True)
    assert "Contract with WeChat Pay wx-risk is now limited." in resumed.content.decode()
    assert routed(suspended.merchant) == bank_contract.pk


def test_lifting_on_the_card_while_suspended_keeps_the_suspension(client, suspended, risk_zhao, clerk_wang):
    contract_limit(contract_id=suspended.pk, actor=risk_zhao, reason="WeChat closed its payments")
    client.force_login(risk_zhao)

    response = client.post(f"/staff/merchants/{suspended.merchant.merchant_no}/contracts/{suspended.pk}/lift-limit/",
                           {"reason": "cleared with the account manager"}, follow=True)

    assert "The limit of the suspended contract with WeChat Pay wx-risk is lifted: it stays suspended, and resumed " \
           "it comes back active." in response.content.decode()
    shown = card(response.content.decode(), suspended)
    assert state_of(suspended) == ContractState.SUSPENDED
    assert 'data-role="limit"' not in shown and 'data-role="resumes-limited"' not in shown
    assert f'id="limit-form-{suspended.pk}"' in shown  # it may be limited again

"""A suspension does not launder a risk limit (design §4 ``active/limited → suspended``, §8): a contract an
onboarding clerk suspends while risk has it limited comes back *limited* when resumed — to the state it was
suspended from, as its timeline records — and takes no new orders until risk lifts the limit; the limit is still
the one risk set, so the notice it was set on can still lift it. A contract suspended while active resumes active."""

from __future__ import annotations

import pytest

from aggpay.models import AuditLog
from channels import routing
from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.models import Contract, ContractState, Merchant
from merchants.services.contract_risk import contract_lift_limit, contract_limit, limit_event, limited_for
from merchants.services.contracts import contract_apply_result
from merchants.services.settlement import contract_resume, contract_suspend
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.risk.violations import TEA_SUB

pytestmark = pytest.mark.django_db



def notice(wx, *, event_type: str, record_id: str, event_id: str):
    return channel_risk_notice_record(account=wx, event_type=event_type, event_id=event_id,
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice


def state_of(contract) -> str:
    return Contract.objects.get(pk=contract.pk).state


def routed(merchant) -> int | None:
    decision = routing.choose(merchant=Merchant.objects.get(pk=merchant.pk), product="wechat.native", amount=1500)
    return decision.chosen.contract_id if decision.chosen else None


def test_a_clerk_suspending_and_resuming_a_limited_contract_leaves_it_limited(
        tea_contract, bank_contract, risk_zhao, clerk_wang):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")

    resumed = contract_resume(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant is back")

    assert resumed.state == ContractState.LIMITED and state_of(tea_contract) == ContractState.LIMITED
    assert routed(tea_contract.merchant) == bank_contract.pk
    row = AuditLog.objects.get(action="merchants.contract.resume")
    assert (row.actor, row.data) == (clerk_wang, {"from": "suspended", "to": "limited"})
    event = Contract.objects.get(pk=tea_contract.pk).events.last()
    assert (event.from_state, event.to_state, event.message) == ("suspended", "limited", "merchant is back")
    # Still risk's limit, as set: who set it and why (the resume entry is not a new limit).
    limit = limit_event(Contract.objects.get(pk=tea_contract.pk))
    assert (limit.from_state, limit.message, limit.data["by"]) == ("active", "WeChat closed its payments",
                                                                   "zhao.risk")


def test_a_contract_suspended_while_active_resumes_active(tea_contract, risk_zhao, clerk_wang):
    # Limited and lifted once, long ago: the suspension that counts is the latest, from active.
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="a scare")
    contract_lift_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="cleared")
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")

    contract_resume(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant is back")

    assert state_of(tea_contract) == ContractState.ACTIVE
    assert routed(tea_contract.merchant) == tea_contract.pk


def test_the_notice_that_limited_it_still_lifts_the_limit_after_a_suspension(wx, tea_contract, risk_zhao,
                                                                             clerk_wang):
    punished = notice(wx, event_type="VIOLATION.PUNISH", record_id="VR-1", event_id="EV-1")
    channel_risk_notice_handle(notice_id=punished.pk, actor=risk_zhao, action="limit", note="payments closed")
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")
    contract_resume(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant is back")
    assert limited_for(limit_event(Contract.objects.get(pk=tea_contract.pk))) == "VR-1"

    appeal = notice(wx, event_type="VIOLATION.APPEAL", record_id="VR-1", event_id="EV-2")
    channel_risk_notice_handle(notice_id=appeal.pk, actor=risk_zhao, action="lift", note="appeal approved")

    assert state_of(tea_contract) == ContractState.ACTIVE


def test_the_merchant_page_says_resuming_brings_the_limit_back_and_the_clerks_resume_does(
        client, tea_contract, risk_zhao, clerk_wang):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    merchant_no = tea_contract.merchant.merchant_no
    client.force_login(clerk_wang)
    client.post(f"/staff/merchants/{merchant_no}/contracts/{tea_contract.pk}/suspend/", {"reason": "pause"})
    assert state_of(tea_contract) == ContractState.SUSPENDED

    html = client.get(f"/staff/merchants/{merchant_no}/").content.decode()
    assert 'data-role="resumes-limited"' in html and "resuming brings it back limited" in html

    response = client.post(f"/staff/merchants/{merchant_no}/contracts/{tea_contract.pk}/resume/",
                           {"reason": "merchant is back"}, follow=True)
    assert "Contract with WeChat Pay wx-risk is now limited." in response.content.decode()
    assert state_of(tea_contract) == ContractState.LIMITED


def test_a_channel_answer_noted_while_suspended_does_not_make_the_resume_forget_the_limit(
        tea_contract, bank_contract, risk_zhao, clerk_wang):
    """A late answer to a submission reaches the suspended contract and is only noted on its timeline (suspended →
    suspended, "answer to the submission ignored"). The suspension is still the one from *limited*: resumed, the
    contract is limited again — not active, taking orders the channel stopped."""
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")
    contract_apply_result(contract_id=tea_contract.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.FINISHED, sub_mchid=TEA_SUB))
    note = Contract.objects.get(pk=tea_contract.pk).events.last()
    assert (note.from_state, note.to_state) == ("suspended", "suspended")

    resumed = contract_resume(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant is back")

    assert resumed.state == ContractState.LIMITED and state_of(tea_contract) == ContractState.LIMITED
    assert routed(tea_contract.merchant) == bank_contract.pk

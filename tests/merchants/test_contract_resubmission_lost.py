"""A resubmission that never reached the channel is sent again once, not taken for the channel's new verdict.

A clerk corrects a merchant the bank rejected and resubmits its contract under the same business code (bank.md §9.3
``apply_no``; A.13 ``business_code``). If the apply call is dropped before the bank stores it, or the worker dies
after recording the submission (design §5 rule 7), the bank still holds the old, rejected application, and every
poll reads the old verdict back. It cannot say "no such application", so the first submission's recovery
(``_follow_missing_submission``) never fires. Once the resubmission has had time to arrive and was never answered,
the poll sends it again, once; if the bank still gives the old verdict after that, it applies with a timeline note
asking a person to look, instead of telling the clerk the corrected record was rejected again.

Against the bank simulator over HTTP: its fault rules drop the apply call, its reviewer is driven through the control
API, and its own store shows which record it holds.
"""

from __future__ import annotations

import pytest
import requests

from aggpay.models import AuditLog
from channels.models import ChannelAccount
from channels.simulators import bank as bank_sim
from channels.simulators.bank_state import ns
from merchants import tasks
from merchants.models import Contract, ContractState
from merchants.services.contracts import (
    _submission_record,
    contract_apply_result,
    contract_poll,
    contract_resubmit,
)
from merchants.services.onboarding import (
    application_approve,
    application_review_start,
    application_submit,
    merchant_record_correct,
)
from tests.merchants.conftest import offer
from tests.merchants.contract_flow import everything_so_far_happened
from tests.merchants.records import record

SHORT_NAME_REFUSED = [{"field": "short_name", "reason": "商户简称与门店招牌不符"}]
CORRECTED = "西湖茶馆龙井店"
APPLY_PATH = r"^/api/merchant/apply$"


@pytest.fixture
def rejected_at_the_bank(simulator_server, request, drafted_tea_house, clerk_wang, risk_zhao,
                         django_capture_on_commit_callbacks) -> Contract:
    """Tea House submitted to the bank (reviews wait for the control API), refused there for its short name, and the
    clerk has corrected the short name: the contract is rejected and ready to be resubmitted."""
    root = simulator_server.base_url
    account = ChannelAccount.objects.create(
        code="bank-isv", kind="bank", name="Bank A", base_url=f"{root}/bank", enabled=True,
        config=bank_sim.provision(root, name=request.node.name[:60], settings={"auto_review": None}))
    offer(account, "wechat.native", "0.0038")
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    with django_capture_on_commit_callbacks(execute=True):  # the submit task runs (Celery is eager)
        application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
    contract = drafted_tea_house.contracts.get()
    the_banks_reviewer(simulator_server, contract, "reject", SHORT_NAME_REFUSED)
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == SHORT_NAME_REFUSED
    merchant_record_correct(application_id=drafted_tea_house.pk, actor=clerk_wang,
                            data=record(short_name=CORRECTED))
    return contract


def the_banks_reviewer(simulator_server, contract, action: str, reasons: list | None = None) -> None:
    requests.post(f"{simulator_server.base_url}/bank/_control/applications/{contract.channel_application_id}",
                  json={"action": action, "reasons": reasons or []}, timeout=5).raise_for_status()


def the_bank_drops_the_apply(simulator_server, contract, *, times: int = 1) -> None:
    """The bank's front times out the next ``times`` apply calls under the contract's apply_no without storing them."""
    requests.post(f"{simulator_server.base_url}/bank/_control/faults", timeout=5, json={
        "match": {"method": "POST", "path": APPLY_PATH, "contains": contract.business_code},
        "fault": "timeout", "seconds": 0.2, "times": times}).raise_for_status()


def the_bank_holds(simulator_server, contract) -> dict:
    """The bank's own record of the application under the contract's apply_no (its simulator's store)."""
    org = contract.channel_account.config["org_no"]
    return simulator_server.app.apps["bank"].store.get(ns("applies", org), contract.business_code)


def resubmitted_but_lost(how: str, contract, simulator_server, clerk_wang, *, drops: int = 1) -> Contract:
    """The clerk resubmits; the resubmission never reaches the bank — ``dropped`` by its front, or its worker
    ``died`` after recording it."""
    if how == "dropped":
        the_bank_drops_the_apply(simulator_server, contract, times=drops)
        contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
        assert "submission unanswered" in contract.events.last().message
    else:
        _submission_record(contract.pk, actor=clerk_wang, resubmission=True)
        contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED
    return contract


def resent(contract) -> list:
    return list(contract.events.filter(data__has_key="resend_of"))


@pytest.mark.parametrize("how", ["dropped", "died"])
def test_a_resubmission_the_bank_never_received_is_sent_again_instead_of_taking_the_old_rejection_for_its_verdict(
        rejected_at_the_bank, simulator_server, clerk_wang, how):
    contract = resubmitted_but_lost(how, rejected_at_the_bank, simulator_server, clerk_wang)
    assert the_bank_holds(simulator_server, contract)["apply_state"] == "REJECTED"
    assert the_bank_holds(simulator_server, contract)["merchant"]["short_name"] == "西湖茶馆"  # the old record

    contract = contract_poll(contract_id=contract.pk)  # soon after: the old verdict is held back, as before
    assert contract.state == ContractState.SUBMITTED and not resent(contract)

    everything_so_far_happened(contract, minutes_ago=61)  # long after the resubmission should have arrived
    assert tasks.poll_due_contracts() == 1
    contract.refresh_from_db()

    assert contract.state == ContractState.AUDITING  # the bank took the resubmission this time
    assert contract.rejection_reasons == SHORT_NAME_REFUSED  # what the clerk corrected, until the bank decides
    held = the_bank_holds(simulator_server, contract)
    assert held["apply_state"] == "AUDITING" and held["merchant"]["short_name"] == CORRECTED
    [again] = resent(contract)
    assert "never answered the resubmission" in again.message and "re-sending it once" in again.message
    assert again.data["stale"] is True and again.data["channel_state"] == "rejected"
    audit = AuditLog.objects.get(action="merchants.contract.submission_resent")
    assert audit.data["business_code"] == contract.business_code and audit.actor_label == "system"
    assert not AuditLog.objects.filter(action="merchants.contract.rejected",
                                       created_at__gt=again.created_at).exists()

    the_banks_reviewer(simulator_server, contract, "ask_sign")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.TO_BE_SIGNED


def test_the_old_verdict_arriving_other_than_by_a_poll_is_held_back_and_the_next_poll_sends_it_again(
        rejected_at_the_bank, simulator_server, clerk_wang):
    """A notice about an application we no longer hold is answered by asking the bank (``contract_apply_callback``):
    an answer with no time of its own, as a poll's, but not the poll's to act on."""
    contract = resubmitted_but_lost("died", rejected_at_the_bank, simulator_server, clerk_wang)
    everything_so_far_happened(contract, minutes_ago=11)
    answer = contract.channel_account.adapter().onboarding_query(application_id="",
                                                                 business_code=contract.business_code)

    contract = contract_apply_result(contract_id=contract.pk, result=answer, source="channel")

    assert contract.state == ContractState.SUBMITTED and not resent(contract)
    assert "the next poll sends it again" in contract.events.last().message
    assert tasks.poll_due_contracts() == 1  # at once
    contract.refresh_from_db()
    assert contract.state == ContractState.AUDITING and len(resent(contract)) == 1
    assert the_bank_holds(simulator_server, contract)["merchant"]["short_name"] == CORRECTED


def test_the_old_verdict_given_even_after_the_resubmission_was_sent_again_applies_and_asks_a_person_to_look(
        rejected_at_the_bank, simulator_server, client, clerk_wang):
    contract = resubmitted_but_lost("dropped", rejected_at_the_bank, simulator_server, clerk_wang, drops=2)
    everything_so_far_happened(contract, minutes_ago=11)
    contract = contract_poll(contract_id=contract.pk)  # sent again: dropped again
    assert contract.state == ContractState.SUBMITTED and len(resent(contract)) == 1

    contract = contract_poll(contract_id=contract.pk)  # the re-sending may still be on its way: held back
    assert contract.state == ContractState.SUBMITTED
    everything_so_far_happened(contract, minutes_ago=11)
    contract = contract_poll(contract_id=contract.pk)

    assert the_bank_holds(simulator_server, contract)["merchant"]["short_name"] == "西湖茶馆"  # never corrected
    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == SHORT_NAME_REFUSED
    assert contract.next_poll_at is None
    assert len(resent(contract)) == 1  # once only
    assert AuditLog.objects.filter(action="merchants.contract.submission_resent").count() == 1
    note = contract.events.last()
    assert note.data.get("correction_unconfirmed") is True
    assert "may not have received the correction" in note.message and "a person must look" in note.message
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert "may not have received the correction" in page


def test_the_same_rejection_of_a_resubmission_the_bank_did_receive_applies_without_sending_it_again(
        rejected_at_the_bank, simulator_server, clerk_wang):
    contract = contract_resubmit(contract_id=rejected_at_the_bank.pk, actor=clerk_wang)
    assert contract.state == ContractState.AUDITING  # the bank answered the resubmission
    assert the_bank_holds(simulator_server, contract)["merchant"]["short_name"] == CORRECTED
    the_banks_reviewer(simulator_server, contract, "reject", SHORT_NAME_REFUSED)  # refused for the same reason

    everything_so_far_happened(contract, minutes_ago=11)
    contract = contract_poll(contract_id=contract.pk)

    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == SHORT_NAME_REFUSED
    assert not resent(contract)
    assert not contract.events.filter(data__has_key="correction_unconfirmed").exists()

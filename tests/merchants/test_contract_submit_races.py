"""Submitting a channel contract (签约) more than once at a time — an ``acks_late`` redelivery of the submit task, a
double-clicked "resubmit" — and answers that arrive after the contract has moved on (design §4 contract machine,
§5 rule 7: record intent under the lock, call the channel without it, apply the answer under the lock again).

Against the bank simulator over HTTP (bank.md §9.3–§9.5, §13): its reviewer acts through the control API, its
refusals and silences are core.py fault rules. Races are staged through the real call order (the second submission
runs while the first one's channel call is in flight, tests/merchants/contract_flow.py) and with threads against
PostgreSQL.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import requests

from aggpay.models import AuditLog
from channels.models import ChannelAccount
from channels.simulators import bank as bank_sim
from merchants import tasks
from merchants.models import Contract, ContractRate, ContractState, Merchant
from merchants.services.contracts import contract_poll, contract_resubmit, contract_submit
from tests.factories import MerchantFactory
from tests.merchants.conftest import offer
from tests.merchants.contract_flow import watch_the_channel
from tests.race_condition import in_threads

APPLY_PATH = r"^/api/merchant/apply$"
BLURRED = [{"field": "license.license_pic", "reason": "照片模糊"}]


@pytest.fixture
def bank(db, simulator_server, request) -> ChannelAccount:
    """Bank A, an account of its own at the bank simulator; its reviewer waits for the control API."""
    root = simulator_server.base_url
    account = ChannelAccount.objects.create(code="bank-a", kind="bank", name="Bank A", base_url=f"{root}/bank",
                                            enabled=True, config=bank_sim.provision(
                                                root, name=request.node.name[:60], settings={"auto_review": None}))
    offer(account, "wechat.native", "0.0020")
    return account


def a_contract(account, business_code: str = "AGGTEST1", **fields) -> Contract:
    return Contract.objects.create(merchant=MerchantFactory(), channel_account=account, business_code=business_code,
                                   **fields)


def tea_house_contract(account, application) -> Contract:
    """The Tea House's contract at ``account`` as approval leaves it (contracts_create_for_application): pending,
    its rate set; its submit task is queued, and the deliveries are the test's. The record is one the bank takes."""
    contract = Contract.objects.create(merchant=application.merchant, channel_account=account,
                                       application=application, business_code=f"AGG{uuid.uuid4().hex[:16].upper()}")
    ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal("0.0038"))
    return contract


@pytest.fixture
def pending_contract(bank, drafted_tea_house) -> Contract:
    return tea_house_contract(bank, drafted_tea_house)


def the_bank(simulator_server, contract, action: str, reasons: list | None = None) -> None:
    """The bank's reviewer acts on the contract's apply (bank.md §13.3)."""
    requests.post(f"{simulator_server.base_url}/bank/_control/applications/{contract.channel_application_id}",
                  json={"action": action, "reasons": reasons or []}, timeout=5).raise_for_status()


def at_the_bank(simulator_server, contract, fault: str, **rule) -> None:
    """The bank's next answer to this contract's apply is core.py's ``fault`` (bank.md §13.5)."""
    requests.post(f"{simulator_server.base_url}/bank/_control/faults", timeout=5, json={
        "match": {"method": "POST", "path": APPLY_PATH, "contains": contract.business_code}, "fault": fault,
        **rule}).raise_for_status()


def the_bank_does_not_answer(simulator_server, contract, settings) -> None:
    """The apply is held at the bank's front past our read timeout; nothing is stored (a ``timeout`` fault)."""
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 1
    at_the_bank(simulator_server, contract, "timeout", seconds=3)


def rejected_at_the_bank(simulator_server, contract) -> Contract:
    """Submitted, then rejected by the bank's reviewer, and the poll says so: the contract waits for a clerk."""
    contract = contract_submit(contract_id=contract.pk)
    assert contract.state == ContractState.AUDITING
    the_bank(simulator_server, contract, "reject", BLURRED)
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.REJECTED
    return contract


def test_a_second_delivery_of_the_submit_task_while_the_first_is_with_the_channel_does_not_call_it_again(
        pending_contract, monkeypatch):
    contract = pending_contract
    seen_by_second = []
    channel = watch_the_channel(monkeypatch,
                                meanwhile=lambda: seen_by_second.append(tasks.submit_contract(contract.pk)))

    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert channel.submissions == 1
    held = channel.adapter.onboarding_query(application_id="", business_code=contract.business_code)
    assert contract.state == ContractState.AUDITING and contract.channel_application_id == held.application_id


def test_a_duplicate_refusal_never_rejects_the_contract_the_channel_accepted(pending_contract, simulator_server,
                                                                             monkeypatch):
    """The audit's repro: the first call is refused as a duplicate because the second got through meanwhile."""
    contract = pending_contract

    def the_second_gets_there_first():
        channel.adapter.onboarding_submit(application=channel.application)  # stored at the bank, under review
        contract_poll(contract_id=contract.pk)  # the accepted one: a poll reads it
        # The first then reaches the bank, which refuses it in its own words (bank.md §12: an unlisted sub_code
        # with FAIL is a permanent channel_error).
        at_the_bank(simulator_server, contract, "business_error", code="DUPLICATE", message="apply_no already used")

    channel = watch_the_channel(monkeypatch, meanwhile=the_second_gets_there_first)
    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert contract.state == ContractState.AUDITING, contract.rejection_reasons
    assert contract.next_poll_at is not None  # still followed
    ignored = contract.events.last()
    assert ignored.data.get("ignored") and "answer to the submission ignored" in ignored.message


def test_a_redelivered_submit_task_on_a_contract_already_moved_on_changes_nothing(bank, monkeypatch):
    channel = watch_the_channel(monkeypatch)
    for state in (ContractState.AUDITING, ContractState.REJECTED, ContractState.ACTIVE):
        contract = a_contract(bank, business_code=f"AGG{state.upper()}", state=state)

        tasks.submit_contract(contract.pk)  # no TransitionNotAllowed, no InvalidState

        contract.refresh_from_db()
        assert contract.state == state
    assert channel.submissions == 0


def test_a_submission_the_channel_does_not_answer_leaves_the_contract_submitted_and_polled(
        pending_contract, simulator_server, settings):
    contract = pending_contract
    the_bank_does_not_answer(simulator_server, contract, settings)

    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and contract.next_poll_at is not None
    assert "submission unanswered" in contract.events.last().message


@pytest.mark.parametrize("code", ["APPLY_IN_REVIEW", "APPLY_FINISHED"])
def test_the_banks_already_applied_refusal_of_a_resubmission_is_followed_not_taken_as_a_rejection(
        pending_contract, simulator_server, clerk_wang, code):
    contract = contract_submit(contract_id=pending_contract.pk)  # the bank holds the apply, under review
    if code == "APPLY_FINISHED":
        the_bank(simulator_server, contract, "approve")  # ... and has opened the merchant since
    # Our side holds the contract rejected all the same: how the two came apart does not matter here.
    Contract.objects.filter(pk=contract.pk).update(state=ContractState.REJECTED, rejection_reasons=BLURRED)
    # The clerk's correction: the application the bank gets differs from the one it holds (bank.md §9.3).
    Merchant.objects.filter(pk=contract.merchant_id).update(short_name="西湖茶馆龙井路店")

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and contract.next_poll_at is not None
    assert "already holds this application" in contract.events.last().message
    assert f"({code}:" in contract.events.last().message  # the bank's own refusal, not a stand-in's


def test_a_double_clicked_resubmit_submits_once_and_is_audited_once(pending_contract, simulator_server, clerk_wang,
                                                                   monkeypatch):
    contract = rejected_at_the_bank(simulator_server, pending_contract)
    second = []
    channel = watch_the_channel(monkeypatch, meanwhile=lambda: second.append(
        contract_submit(contract_id=contract.pk, actor=clerk_wang, resubmission=True)))

    contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    contract.refresh_from_db()
    assert channel.submissions == 1 and second[0].state == ContractState.SUBMITTED
    assert contract.state == ContractState.AUDITING
    assert AuditLog.objects.filter(action="merchants.contract.resubmit_requested").count() == 1


def test_an_answer_to_an_older_submission_does_not_apply_to_a_newer_one(
        transactional_db, live_server, settings, bank, drafted_tea_house, simulator_server, clerk_wang, monkeypatch):
    """Submitted, rejected by a notification, resubmitted by a clerk — all while the first call was in flight:
    the first call's late answer belongs to nobody."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's apply notify comes back to
    contract = tea_house_contract(bank, drafted_tea_house)
    root = simulator_server.base_url

    def before_the_first_answer_comes_back(answer):
        if channel.submissions > 1:
            return  # only the first submission's answer is held back
        # The bank has stored the first submission; before its answer reaches us, its reviewer rejects it and the
        # bank's notify says so.
        requests.post(f"{root}/bank/_control/applications/{answer.application_id}", timeout=5,
                      json={"action": "reject", "reasons": BLURRED}).raise_for_status()
        requests.post(f"{root}/bank/_control/flush", timeout=10).raise_for_status()
        assert Contract.objects.get(pk=contract.pk).state == ContractState.REJECTED
        the_bank_does_not_answer(simulator_server, contract, settings)  # the clerk's resubmission goes unanswered
        contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    channel = watch_the_channel(monkeypatch, answered=before_the_first_answer_comes_back)
    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert channel.submissions == 2
    assert contract.state == ContractState.SUBMITTED and contract.sub_mchid == ""
    assert "a newer submission" in contract.events.last().message


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_once_in_threads_call_the_channel_once(bank, drafted_tea_house, simulator_server,
                                                                 monkeypatch):
    contract = tea_house_contract(bank, drafted_tea_house)
    at_the_bank(simulator_server, contract, "latency", seconds=0.3)  # the other delivery arrives while in flight
    channel = watch_the_channel(monkeypatch)

    in_threads(2, lambda _: tasks.submit_contract(contract.pk))

    contract.refresh_from_db()
    assert channel.submissions == 1
    assert contract.state == ContractState.AUDITING

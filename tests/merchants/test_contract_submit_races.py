"""Submitting a channel contract (签约) more than once at a time — an ``acks_late`` redelivery of the submit task, a
double-clicked "resubmit" — and answers that arrive after the contract has moved on (design §4 contract machine,
§5 rule 7: record intent under the lock, call the channel without it, apply the answer under the lock again).

Races are staged through the real call order (the second submission runs while the first one's channel call is in
flight) and with threads against PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from aggpay.models import AuditLog
from channels.adapters.base import OnboardingResult, OnboardingState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.models import ChannelAccount
from merchants import tasks
from merchants.models import Contract, ContractState
from merchants.services.contracts import contract_apply_result, contract_resubmit, contract_submit
from tests.factories import MerchantFactory


def a_contract(account, business_code: str = "AGGTEST1", **fields) -> Contract:
    return Contract.objects.create(merchant=MerchantFactory(), channel_account=account, business_code=business_code,
                                   **fields)


class Channel:
    """A channel whose onboarding_submit runs ``while_in_flight`` (if any) before it answers ``answer``."""

    def __init__(self, answer, while_in_flight=None):
        self.answer, self.while_in_flight, self.submissions = answer, while_in_flight, 0

    def onboarding_submit(self, *, application):
        self.submissions += 1
        if self.while_in_flight and self.submissions == 1:
            self.while_in_flight()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def onboarding_query(self, *, application_id, business_code=""):
        raise AssertionError("not expected to be asked")


@pytest.fixture
def channel(monkeypatch):
    def install(answer, while_in_flight=None) -> Channel:
        fake = Channel(answer, while_in_flight)
        monkeypatch.setattr(ChannelAccount, "adapter", lambda self: fake)
        return fake
    return install


AUDITING = OnboardingResult(state=OnboardingState.AUDITING, application_id="AP1")
DUPLICATE = ChannelError("apply_no already used", code="invalid_params", channel_code="DUPLICATE")


def test_a_second_delivery_of_the_submit_task_while_the_first_is_with_the_channel_does_not_call_it_again(
        onboarding_accounts, channel):
    contract = a_contract(onboarding_accounts["bank_a"])
    seen_by_second = []
    fake = channel(AUDITING, while_in_flight=lambda: seen_by_second.append(tasks.submit_contract(contract.pk)))

    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert fake.submissions == 1
    assert contract.state == ContractState.AUDITING and contract.channel_application_id == "AP1"


def test_a_duplicate_refusal_never_rejects_the_contract_the_channel_accepted(onboarding_accounts, channel):
    """The audit's repro: the first call is refused as a duplicate because the second got through meanwhile."""
    contract = a_contract(onboarding_accounts["bank_a"])
    calls = []

    def second_submission():
        calls.append(1)
        contract_apply_result(contract_id=contract.pk, source="channel", result=AUDITING)  # the accepted one

    channel(DUPLICATE, while_in_flight=second_submission)
    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert contract.state == ContractState.AUDITING, contract.rejection_reasons
    assert contract.next_poll_at is not None  # still followed
    ignored = contract.events.last()
    assert ignored.data.get("ignored") and "answer to the submission ignored" in ignored.message


def test_a_redelivered_submit_task_on_a_contract_already_moved_on_changes_nothing(onboarding_accounts, channel):
    fake = channel(DUPLICATE)
    for state in (ContractState.AUDITING, ContractState.REJECTED, ContractState.ACTIVE):
        contract = a_contract(onboarding_accounts["bank_a"], business_code=f"AGG{state.upper()}", state=state)

        tasks.submit_contract(contract.pk)  # no TransitionNotAllowed, no InvalidState

        contract.refresh_from_db()
        assert contract.state == state
    assert fake.submissions == 0


def test_a_submission_the_channel_does_not_answer_leaves_the_contract_submitted_and_polled(onboarding_accounts,
                                                                                           channel):
    contract = a_contract(onboarding_accounts["bank_a"])
    channel(ChannelUnknown("timed out"))

    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and contract.next_poll_at is not None
    assert "submission unanswered" in contract.events.last().message


@pytest.mark.parametrize("code", ["APPLY_IN_REVIEW", "APPLY_FINISHED"])
def test_the_banks_already_applied_refusal_of_a_resubmission_is_followed_not_taken_as_a_rejection(
        onboarding_accounts, channel, clerk_wang, code):
    contract = a_contract(onboarding_accounts["bank_a"], state=ContractState.REJECTED)
    channel(ChannelError("the bank holds that apply", code="channel_error", channel_code=code))

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and contract.next_poll_at is not None
    assert "already holds this application" in contract.events.last().message


def test_a_double_clicked_resubmit_submits_once_and_is_audited_once(onboarding_accounts, channel, clerk_wang):
    contract = a_contract(onboarding_accounts["bank_a"], state=ContractState.REJECTED)
    second = []
    fake = channel(AUDITING, while_in_flight=lambda: second.append(
        contract_submit(contract_id=contract.pk, actor=clerk_wang, resubmission=True)))

    contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    contract.refresh_from_db()
    assert fake.submissions == 1 and second[0].state == ContractState.SUBMITTED
    assert contract.state == ContractState.AUDITING
    assert AuditLog.objects.filter(action="merchants.contract.resubmit_requested").count() == 1


def test_an_answer_to_an_older_submission_does_not_apply_to_a_newer_one(onboarding_accounts, channel, clerk_wang):
    """Submitted, rejected by a notification, resubmitted by a clerk — all while the first call was in flight:
    the first call's late answer belongs to nobody."""
    contract = a_contract(onboarding_accounts["bank_a"])

    def meanwhile():
        contract_apply_result(contract_id=contract.pk, source="channel",
                              result=OnboardingResult(state=OnboardingState.REJECTED, message="照片模糊"))
        fake.answer = ChannelUnknown("slow")  # the clerk's resubmission goes unanswered
        contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
        fake.answer = OnboardingResult(state=OnboardingState.FINISHED, sub_mchid="OLD")

    fake = channel(None, while_in_flight=meanwhile)
    contract_submit(contract_id=contract.pk)

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and contract.sub_mchid == ""
    assert "a newer submission" in contract.events.last().message


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_once_in_threads_call_the_channel_once(onboarding_accounts, monkeypatch):
    contract = a_contract(onboarding_accounts["bank_a"])
    submissions = []

    class SlowChannel:
        def onboarding_submit(self, *, application):
            submissions.append(1)
            time.sleep(0.3)  # the other delivery arrives while this call is in flight
            if len(submissions) > 1:
                raise DUPLICATE
            return AUDITING

    monkeypatch.setattr(ChannelAccount, "adapter", lambda self: SlowChannel())
    gate = threading.Barrier(2)

    def deliver(_):
        try:
            gate.wait(timeout=30)
            tasks.submit_contract(contract.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(deliver, range(2)))

    contract.refresh_from_db()
    assert len(submissions) == 1
    assert contract.state == ContractState.AUDITING

"""A channel that turns a submission away with a retryable refusal — WeChat's 429 FREQUENCY_LIMITED, the bank's
RATE_LIMITED, Alipay's ACQ.REQUEST_TOO_FAST (design §6: ``ChannelError(permanent=False)``, "retrying can help") —
has said nothing about the merchant. The contract is not rejected: it stays submitted, the attempt is on its timeline,
and the poll sends it again as it does a lost submission (design §4 contract machine, §5 rule 7). Likewise a
settlement account change stays pending and is submitted again. Against the simulators over HTTP, the refusals
injected with their ``business_error`` fault.
"""

from __future__ import annotations

import pytest
import requests

from merchants import tasks
from merchants.models import ContractState, SettlementChangeState
from merchants.services.contracts import contract_poll, contract_submit
from merchants.services.settlement import merchant_settlement_change, settlement_change_poll
from tests.merchants.contract_flow import everything_so_far_happened
from tests.merchants.test_contract_lifecycle_lost_submission import channel_holds, pending_on  # noqa: F401

# kind → the channel's retryable refusal of a submission, as its simulator's ``business_error`` fault answers it.
RETRYABLE = {
    "wechatpay": {"code": "FREQUENCY_LIMITED", "message": "频率超限", "status": 429},
    "bank": {"code": "RATE_LIMITED", "message": "too many requests"},
    "alipay": {"code": "ACQ.REQUEST_TOO_FAST", "message": "请求过于频繁"},
}


def the_channel_turns_away(simulator_server, kind: str, **match) -> None:
    """The next POST to ``kind`` that ``match`` names (``contains``: the business code; ``path``) is refused with that
    channel's retryable refusal."""
    requests.post(f"{simulator_server.base_url}/{kind}/_control/faults", timeout=5, json={
        "match": {"method": "POST", **match}, "fault": "business_error", "times": 1,
        **RETRYABLE[kind]}).raise_for_status()


@pytest.mark.parametrize("kind", sorted(RETRYABLE))
def test_a_rate_limited_submission_is_not_a_rejection_and_is_sent_again_on_the_poll_schedule(
        pending_on, simulator_server, kind):  # noqa: F811 - the imported fixture
    contract = pending_on(kind)
    the_channel_turns_away(simulator_server, kind, contains=contract.business_code)

    contract = contract_submit(contract_id=contract.pk)

    assert contract.state == ContractState.SUBMITTED and contract.rejection_reasons in ([], None)
    assert channel_holds(contract) == ""  # turned away at the door: the channel stored nothing
    attempt = contract.events.get(data__has_key="retryable_refusal")
    assert attempt.data["retryable_refusal"] == RETRYABLE[kind]["code"]
    assert "not a verdict" in attempt.message and attempt.to_state == ContractState.SUBMITTED

    everything_so_far_happened(contract, minutes_ago=61)  # the poll is due and the attempt long past
    assert tasks.poll_due_contracts() == 1
    contract.refresh_from_db()

    assert contract.state != ContractState.REJECTED
    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id


def test_a_resending_turned_away_again_is_sent_once_more_rather_than_left_for_a_person(
        pending_on, simulator_server):  # noqa: F811
    contract = pending_on("wechatpay")
    the_channel_turns_away(simulator_server, "wechatpay", contains=contract.business_code)
    contract_submit(contract_id=contract.pk)
    everything_so_far_happened(contract, minutes_ago=61)
    the_channel_turns_away(simulator_server, "wechatpay", contains=contract.business_code)
    contract = contract_poll(contract_id=contract.pk)  # the re-sending, turned away too
    assert contract.events.filter(data__has_key="retryable_refusal").count() == 2 and channel_holds(contract) == ""

    everything_so_far_happened(contract, minutes_ago=61)
    contract = contract_poll(contract_id=contract.pk)

    assert contract.state == ContractState.SUBMITTED
    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id
    assert not contract.events.filter(message__contains="a person must look").exists()


def test_a_rate_limited_settlement_change_stays_pending_and_is_submitted_again(
        pending_on, simulator_server, clerk_wang):  # noqa: F811
    contract = pending_on("wechatpay")
    root = simulator_server.base_url
    requests.post(f"{root}/wechatpay/_control/accounts/{contract.channel_account.config['sp_mchid']}/settings",
                  timeout=5, json={"settlement_review": {"delay_seconds": 0, "outcome": "approve"}}
                  ).raise_for_status()
    contract = contract_submit(contract_id=contract.pk)
    requests.post(f"{root}/wechatpay/_control/applications/{contract.channel_application_id}",
                  json={"action": "finish"}, timeout=5).raise_for_status()
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.ACTIVE
    the_channel_turns_away(simulator_server, "wechatpay", path=r"/modify-settlement$")

    [change] = merchant_settlement_change(merchant_id=contract.merchant_id, actor=clerk_wang, account={
        "account_type": "corporate", "bank_name": "中国工商银行", "account_number": "6222000011112222333",
        "account_holder": contract.merchant.legal_name})
    change = settlement_change_poll(change_id=change.pk)  # its submission, turned away

    assert change.state == SettlementChangeState.PENDING and "FREQUENCY_LIMITED" in change.message
    assert change.next_poll_at is not None and change.poll_attempts == 1

    change = settlement_change_poll(change_id=change.pk)  # the poll submits it again

    assert change.state in (SettlementChangeState.AUDITING, SettlementChangeState.SUCCEEDED)

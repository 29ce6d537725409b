"""A submission the channel never received — the worker died after recording its intent, or the channel's front
dropped the request before storing it — is re-sent once under the same business code when the channel, asked later,
says it has no such application (design §4 contract machine, §5 rule 7; A.13: WeChat de-duplicates applyment4sub by
``business_code``, B.7 Alipay 直付通 by ``external_id``, bank.md §9.3 the bank by ``apply_no``). Against the simulators over
HTTP; races staged through the real call order.
"""

from __future__ import annotations

import pytest
import requests

from aggpay.models import AuditLog
from channels.adapters.errors import ChannelError
from channels.models import ChannelAccount
from channels.simulators import alipay as alipay_sim
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants import tasks
from merchants.models import ContractState
from merchants.services.contracts import _submission_record, contract_poll
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from tests.merchants.conftest import offer
from tests.merchants.contract_flow import everything_so_far_happened, watch_the_channel

SUBMIT_PATH = r"^/v3/applyment4sub/applyment/$"
SIMULATED = {  # kind → (provision, the product the account onboards)
    "wechatpay": (lambda root, name: wechat_sim.provision(root, name=name), "wechat.native"),
    "alipay": (lambda root, name: alipay_sim.provision(root, name=name), "alipay.qr"),
    "bank": (lambda root, name: bank_sim.provision(root, name=name, settings={"auto_review": None}),
             "wechat.native"),
}


@pytest.fixture
def pending_on(db, simulator_server, request, drafted_tea_house, clerk_wang, risk_zhao,
               django_capture_on_commit_callbacks):
    """``pending_on("wechatpay")``: Tea House approved for an account of that kind at the simulator; its contract is
    pending and the submit task is queued, not yet run."""
    def make(kind: str):
        root = simulator_server.base_url
        provision, product = SIMULATED[kind]
        account = ChannelAccount.objects.create(code=f"{kind}-isv", kind=kind, name=kind, base_url=f"{root}/{kind}",
                                                enabled=True, config=provision(root, request.node.name[:60]))
        offer(account, product, "0.0038")
        application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
        application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
        with django_capture_on_commit_callbacks(execute=False):
            application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
        contract = drafted_tea_house.contracts.get()
        assert contract.state == ContractState.PENDING
        return contract
    return make


@pytest.fixture
def pending_contract(pending_on):
    return pending_on("wechatpay")


@pytest.fixture
def in_flight(monkeypatch):
    """``in_flight(meanwhile=None)``: the account's real adapter; ``meanwhile`` runs when the first application
    leaves for the channel, before the request reaches it. Counts the submissions that left."""
    return lambda meanwhile=None: watch_the_channel(monkeypatch, meanwhile=meanwhile)


def the_channel_drops(simulator_server, contract, *, times: int = 1) -> None:
    """WeChat's front answers 503 to the next ``times`` submissions of this business code without storing them."""
    requests.post(f"{simulator_server.base_url}/wechatpay/_control/faults", timeout=5, json={
        "match": {"method": "POST", "path": SUBMIT_PATH, "contains": contract.business_code},
        "fault": "http_503", "times": times}).raise_for_status()


def channel_holds(contract) -> str:
    """The id of the application the channel holds under the contract's business code ("" when it has none)."""
    try:
        return contract.channel_account.adapter().onboarding_query(
            application_id="", business_code=contract.business_code).application_id
    except ChannelError as exc:
        assert exc.channel_code in ("RESOURCE_NOT_EXISTS", "ISV.ORDER_NOT_EXIST", "APPLY_NOT_EXIST"), exc
        return ""


def drive(simulator_server, contract, action: str) -> None:
    requests.post(f"{simulator_server.base_url}/wechatpay/_control/applications/{contract.channel_application_id}",
                  json={"action": action}, timeout=5).raise_for_status()


def test_a_submission_whose_worker_died_after_recording_it_is_re_sent_once_and_the_contract_proceeds(
        pending_contract, simulator_server, client, clerk_wang):
    contract = pending_contract
    _submission_record(contract.pk, actor=None, resubmission=False)  # the worker's first step; then it dies

    contract = contract_poll(contract_id=contract.pk)  # soon after: the submission may still be on its way
    assert contract.state == ContractState.SUBMITTED and channel_holds(contract) == ""

    everything_so_far_happened(contract, minutes_ago=61)  # the intent's own poll time, an hour later, is due
    assert tasks.poll_due_contracts() == 1
    contract.refresh_from_db()

    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id
    resent = contract.events.get(data__has_key="resend_of")
    assert contract.business_code in resent.message and "re-sending it once" in resent.message
    audit = AuditLog.objects.get(action="merchants.contract.submission_resent")
    assert audit.data["business_code"] == contract.business_code and audit.actor_label == "system"

    drive(simulator_server, contract, "ask_sign")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.TO_BE_SIGNED and contract.sign_url
    drive(simulator_server, contract, "finish")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.ACTIVE and contract.sub_mchid

    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert "re-sending it once" in page


def test_a_submission_the_channel_dropped_before_storing_it_is_re_sent_under_the_same_business_code(
        pending_contract, simulator_server):
    contract = pending_contract
    the_channel_drops(simulator_server, contract)

    tasks.submit_contract(contract.pk)  # the worker runs; WeChat's front answers 503 and keeps nothing

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and "submission unanswered" in contract.events.last().message
    assert channel_holds(contract) == ""
    everything_so_far_happened(contract, minutes_ago=15)

    contract = contract_poll(contract_id=contract.pk)

    assert contract.state == ContractState.SUBMITTED
    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id
    assert contract.events.filter(data__has_key="resend_of").count() == 1


def test_a_submission_is_re_sent_once_only_and_then_left_to_a_person(pending_contract, simulator_server):
    contract = pending_contract
    the_channel_drops(simulator_server, contract, times=2)  # the submission, and its re-sending too
    tasks.submit_contract(contract.pk)
    everything_so_far_happened(contract, minutes_ago=15)
    contract_poll(contract_id=contract.pk)  # re-sends: dropped again
    everything_so_far_happened(contract, minutes_ago=15)

    contract = contract_poll(contract_id=contract.pk)
    contract = contract_poll(contract_id=contract.pk)

    assert channel_holds(contract) == ""  # a third sending would have got through
    assert contract.state == ContractState.SUBMITTED and contract.next_poll_at is not None
    assert contract.events.filter(data__has_key="resend_of").count() == 1
    assert AuditLog.objects.filter(action="merchants.contract.submission_resent").count() == 1
    assert "a person" in contract.events.last().message


def test_a_poll_while_the_submission_is_still_on_its_way_does_not_send_it_again(pending_contract, in_flight):
    contract = pending_contract
    polled = []
    channel = in_flight(meanwhile=lambda: polled.append(contract_poll(contract_id=contract.pk)))

    tasks.submit_contract(contract.pk)

    contract.refresh_from_db()
    assert channel.submissions == 1
    assert polled[0].state == ContractState.SUBMITTED and not polled[0].channel_application_id
    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id
    assert not contract.events.filter(data__has_key="resend_of").exists()


def test_two_polls_that_find_the_submission_lost_re_send_it_once(pending_contract, in_flight):
    """The staff's "refresh from channel" and the scheduled poll at once: the second runs while the first one's
    re-sending is on its way to WeChat, which still has nothing."""
    contract = pending_contract
    _submission_record(contract.pk, actor=None, resubmission=False)
    everything_so_far_happened(contract, minutes_ago=61)
    second = []
    channel = in_flight(meanwhile=lambda: second.append(contract_poll(contract_id=contract.pk)))

    contract = contract_poll(contract_id=contract.pk)

    assert channel.submissions == 1
    assert second[0].state == ContractState.SUBMITTED and not second[0].channel_application_id
    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id
    assert contract.events.filter(data__has_key="resend_of").count() == 1


@pytest.mark.parametrize("kind", ["alipay", "bank"])
def test_alipays_and_the_banks_no_such_application_answers_are_understood_too(pending_on, kind):
    contract = pending_on(kind)
    _submission_record(contract.pk, actor=None, resubmission=False)
    everything_so_far_happened(contract, minutes_ago=61)

    contract = contract_poll(contract_id=contract.pk)

    assert contract.state in (ContractState.SUBMITTED, ContractState.AUDITING)
    assert contract.channel_application_id and channel_holds(contract) == contract.channel_application_id
    assert contract.events.filter(data__has_key="resend_of").count() == 1

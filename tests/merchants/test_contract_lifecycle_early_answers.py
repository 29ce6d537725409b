"""The channel's answer about an application can overtake the answer to its submission: a fast review whose notice
(bank apply notify, bank.md §11) or poll result (WeChat applyment query, A.13) reaches us while the submit call's own
answer is still on its way back. The submission's intent is recorded before the call (design §5 rule 7), so the early
answer finds the contract submitted and applies; the late submit answer is then the stale one and changes nothing.
Nothing the channel said is lost. Against the simulators over HTTP; the race is staged through the real call order.
"""

from __future__ import annotations

import pytest
import requests

from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants.models import ContractState
from merchants.services.contracts import contract_refresh_by_staff
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from tests.merchants.conftest import offer
from tests.merchants.contract_flow import watch_the_channel


@pytest.fixture
def answer_on_its_way(monkeypatch):
    """``answer_on_its_way(meanwhile)``: the account's real adapter; once the channel has stored a submission,
    ``meanwhile(answer)`` runs before the submission's answer is handed back to us."""
    return lambda meanwhile: watch_the_channel(monkeypatch, answered=meanwhile)


def approve(application, clerk, risk) -> None:
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    application_approve(application_id=application.pk, actor=risk)  # commits: Celery (eager) submits


def test_the_banks_notice_that_overtakes_the_submit_answer_activates_the_contract(
        transactional_db, live_server, simulator_server, settings, drafted_tea_house, clerk_wang, risk_zhao,
        answer_on_its_way):
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's apply notify comes back to
    root = simulator_server.base_url
    bank = ChannelAccount.objects.create(code="bank-a", kind="bank", name="Bank A", base_url=f"{root}/bank",
                                         enabled=True, config=bank_sim.provision(root, name="early-notice",
                                                                                 settings={"auto_review": None}))
    offer(bank, "wechat.native", "0.0020")

    def the_bank_approves_and_says_so(answer):
        requests.post(f"{root}/bank/_control/applications/{answer.application_id}", json={"action": "approve"},
                      timeout=5).raise_for_status()
        requests.post(f"{root}/bank/_control/flush", timeout=10).raise_for_status()  # the notify, to live_server

    answer_on_its_way(the_bank_approves_and_says_so)
    approve(drafted_tea_house, clerk_wang, risk_zhao)

    contract = drafted_tea_house.contracts.get()
    assert contract.state == ContractState.ACTIVE and contract.sub_mchid and contract.channel_application_id
    notice = ChannelCallback.objects.get(account=bank, kind="onboarding")
    assert notice.outcome == CallbackOutcome.APPLIED, notice.message
    assert "submitted → active" in notice.message
    late = contract.events.last()
    assert late.data.get("ignored") and "the contract is active now" in late.message
    drafted_tea_house.merchant.refresh_from_db()
    assert drafted_tea_house.merchant.state == "active"


def test_a_poll_answer_that_overtakes_the_submit_answer_is_kept(db, simulator_server, drafted_tea_house, clerk_wang,
                                                                 risk_zhao, answer_on_its_way,
                                                                 django_capture_on_commit_callbacks):
    root = simulator_server.base_url
    wechat = ChannelAccount.objects.create(code="wechatpay-isv", kind="wechatpay", name="WeChat Pay ISV",
                                           base_url=f"{root}/wechatpay", enabled=True,
                                           config=wechat_sim.provision(root, name="early-poll"))
    offer(wechat, "wechat.native", "0.0038")
    polled = []

    def wechat_asks_to_sign_and_the_clerk_refreshes(answer):
        requests.post(f"{root}/wechatpay/_control/applications/{answer.application_id}",
                      json={"action": "ask_sign"}, timeout=5).raise_for_status()
        contract = drafted_tea_house.contracts.get()
        polled.append(contract_refresh_by_staff(contract_id=contract.pk, actor=clerk_wang))

    answer_on_its_way(wechat_asks_to_sign_and_the_clerk_refreshes)
    with django_capture_on_commit_callbacks(execute=True):
        approve(drafted_tea_house, clerk_wang, risk_zhao)

    contract = drafted_tea_house.contracts.get()
    assert polled[0].state == ContractState.TO_BE_SIGNED
    assert contract.state == ContractState.TO_BE_SIGNED and contract.sign_url and contract.sub_mchid
    assert contract.channel_application_id == polled[0].channel_application_id
    late = contract.events.last()
    assert late.data.get("ignored") and "the contract is to_be_signed now" in late.message

"""Onboarding notifications find their contract by our business code as well as by the channel's application id —
Alipay 直付通 names it ``external_id`` (channel-protocols.md B.7) — and one that names two different contracts is
refused as a mismatch (design §5 rule 4). A notice about an order a resubmission replaced is checked with the channel:
against the Alipay simulator over HTTP, its signed 蚂蚁消息 re-sent to the live server."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from channels.adapters.alipay_notify import _message_event
from channels.callbacks import CallbackRejected, callback_url
from channels.models import ChannelAccount
from channels.simulators import alipay as alipay_sim
from merchants.models import Contract, ContractRate, ContractState
from merchants.services.contracts import contract_apply_callback, contract_resubmit, contract_submit
from tests.factories import MerchantFactory
from tests.merchants.contract_flow import everything_so_far_happened, watch_the_channel

PASSED = "ant.merchant.expand.indirect.zft.passed"


def a_contract(account, business_code: str, **fields) -> Contract:
    return Contract.objects.create(merchant=MerchantFactory(), channel_account=account, business_code=business_code,
                                   **fields)


def zft_notice(order_id: str, external_id: str, *, method: str = PASSED):
    content = {"order_id": order_id, "external_id": external_id, "smid": "2088X"}
    return _message_event({"msg_method": method, "biz_content": json.dumps(content)}, f"ev-{order_id}", {})


def test_an_alipay_notice_finds_a_contract_whose_submission_timed_out_by_its_external_id(onboarding_accounts):
    alipay = onboarding_accounts["alipay"]
    contract = a_contract(alipay, "AGGTEST1", state=ContractState.SUBMITTED)  # no order_id known yet

    contract_apply_callback(account=alipay, event=zft_notice("20240101ORDER", "AGGTEST1"))

    contract.refresh_from_db()
    assert contract.state == ContractState.ACTIVE
    assert (contract.channel_application_id, contract.sub_mchid) == ("20240101ORDER", "2088X")


def test_a_notice_whose_order_id_and_external_id_name_different_contracts_is_refused(onboarding_accounts):
    alipay = onboarding_accounts["alipay"]
    first = a_contract(alipay, "AGGFIRST", state=ContractState.AUDITING, channel_application_id="ORDER1")
    second = a_contract(alipay, "AGGSECOND", state=ContractState.AUDITING, channel_application_id="ORDER2")

    with pytest.raises(CallbackRejected, match="different contracts"):
        contract_apply_callback(account=alipay, event=zft_notice("ORDER1", "AGGSECOND"))

    first.refresh_from_db(), second.refresh_from_db()
    assert first.state == second.state == ContractState.AUDITING


def test_a_notice_for_none_of_our_contracts_is_refused(onboarding_accounts):
    with pytest.raises(CallbackRejected):
        contract_apply_callback(account=onboarding_accounts["alipay"], event=zft_notice("ORDERX", "AGGNOBODY"))


def test_a_notice_for_an_order_a_resubmission_replaced_asks_the_channel_for_the_current_one(
        transactional_db, live_server, settings, simulator_server, drafted_tea_house, clerk_wang, monkeypatch):
    """The old order's late rejection must not reject the resubmission the channel is reviewing."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where Alipay's 蚂蚁消息 come back to
    root = simulator_server.base_url
    alipay = ChannelAccount.objects.create(code="alipay-isv", kind="alipay", name="Alipay ISV", enabled=True,
                                           base_url=f"{root}/alipay", config=alipay_sim.provision(root, name="zft"))
    requests.post(f"{root}/alipay/_control/accounts/{alipay.config['app_id']}/settings", timeout=5,
                  json={"message_url": callback_url(alipay)}).raise_for_status()
    contract = Contract.objects.create(merchant=drafted_tea_house.merchant, channel_account=alipay,
                                       application=drafted_tea_house, business_code="AGGTEST1")
    ContractRate.objects.create(contract=contract, product="alipay.qr", rate=Decimal("0.0038"))
    old_order = contract_submit(contract_id=contract.pk).channel_application_id
    requests.post(f"{root}/alipay/_control/applications/{old_order}", json={"action": "reject"},
                  timeout=5).raise_for_status()
    requests.post(f"{root}/alipay/_control/flush", timeout=10).raise_for_status()  # its zft.rejected message
    contract.refresh_from_db()
    assert contract.state == ContractState.REJECTED
    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)  # B.7: a new order, same external_id
    assert contract.state == ContractState.AUDITING and contract.channel_application_id != old_order
    everything_so_far_happened(contract, minutes_ago=60)  # the old message comes back an hour later, re-sent
    channel = watch_the_channel(monkeypatch)

    [old] = requests.get(f"{root}/alipay/_control/callbacks", params={"contains": old_order},
                         timeout=10).json()["callbacks"]
    answer = requests.post(old["url"], data=old["body"].encode(), timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    assert (answer.status_code, answer.text) == (200, "success")
    new_order = contract.channel_application_id
    contract.refresh_from_db()
    assert channel.queries == [("", "AGGTEST1")]
    assert contract.state == ContractState.AUDITING and contract.channel_application_id == new_order

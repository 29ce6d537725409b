"""Onboarding notifications find their contract by our business code as well as by the channel's application id —
Alipay 直付通 names it ``external_id`` (channel-protocols.md B.7) — and one that names two different contracts is
refused as a mismatch (design §5 rule 4)."""

from __future__ import annotations

import json

import pytest

from channels.adapters.alipay_notify import _message_event
from channels.adapters.base import OnboardingResult, OnboardingState
from channels.callbacks import CallbackRejected
from channels.models import ChannelAccount
from merchants.models import Contract, ContractState
from merchants.services.contracts import contract_apply_callback
from tests.factories import MerchantFactory

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


def test_a_notice_for_an_order_a_resubmission_replaced_asks_the_channel_for_the_current_one(onboarding_accounts,
                                                                                          monkeypatch):
    """The old order's late rejection must not reject the resubmission the channel is reviewing."""
    alipay = onboarding_accounts["alipay"]
    contract = a_contract(alipay, "AGGTEST1", state=ContractState.AUDITING, channel_application_id="NEWORDER")
    asked = []

    class Channel:
        def onboarding_query(self, *, application_id, business_code=""):
            asked.append((application_id, business_code))
            return OnboardingResult(state=OnboardingState.AUDITING, application_id="NEWORDER")

    monkeypatch.setattr(ChannelAccount, "adapter", lambda self: Channel())
    contract_apply_callback(account=alipay, event=zft_notice("OLDORDER", "AGGTEST1",
                                                             method="ant.merchant.expand.indirect.zft.rejected"))

    contract.refresh_from_db()
    assert asked == [("", "AGGTEST1")]
    assert contract.state == ContractState.AUDITING and contract.channel_application_id == "NEWORDER"

"""A contract's risk limit on the merchant page (design §4 ``active ⇄ limited``, §8): the card says the contract is
limited, since when, by whom, why and on which channel notice; a risk officer lifts whatever limit is in force there,
with a reason — the way out of a limit no notice will end (the channel never sent the appeal's outcome, or it was
cleared with the account manager by phone) — and may limit an active contract there too. Clerks see the limit but
may not touch it; every change is audited (design §5 rules 9, 11, 12)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from aggpay.models import AuditLog
from channels import routing
from merchants.models import Contract, ContractState, Merchant
from merchants.services.contract_risk import contract_limit
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.merchants.contract_card import card, page, text
from tests.risk.violations import TEA_SUB

pytestmark = pytest.mark.django_db



@pytest.fixture
def limited_on_notice(wx, tea_contract, risk_zhao):
    """Zhao limited the WeChat contract on WeChat's punishment notice VR-1 (its appeal's outcome never came)."""
    notice = channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id="EV-VR-1", data={
        "record_id": "VR-1", "sub_mchid": TEA_SUB, "punish_plan": "关闭支付权限"}).notice
    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit",
                               note="WeChat closed its payments")
    return notice


def lift_url(contract) -> str:
    return f"/staff/merchants/{contract.merchant.merchant_no}/contracts/{contract.pk}/lift-limit/"


def limit_url(contract) -> str:
    return f"/staff/merchants/{contract.merchant.merchant_no}/contracts/{contract.pk}/limit/"


def state_of(contract) -> str:
    return Contract.objects.get(pk=contract.pk).state


def routed(merchant) -> int | None:
    decision = routing.choose(merchant=Merchant.objects.get(pk=merchant.pk), product="wechat.native", amount=1500)
    return decision.chosen.contract_id if decision.chosen else None


def test_it_shows_a_risk_officer_when_who_why_and_the_notice_a_contract_was_limited_on(
        client, tea_contract, limited_on_notice, risk_zhao):
    limited_at = tea_contract.events.get(to_state="limited").created_at
    client.force_login(risk_zhao)

    response = client.get(page(tea_contract.merchant))

    assert response.status_code == 200  # risk reviews merchants (design §8): the page is theirs too
    shown = card(response.content.decode(), tea_contract)
    assert 'data-role="limit"' in shown
    details = text(re.search(r'data-role="limit-details">(.*?)</div>', shown, re.S).group(1))
    assert details.startswith(f"Limited {timezone.localtime(limited_at):%Y-%m-%d %H:%M} by zhao.risk ")
    assert "for channel record VR-1 (punishment 处罚 received" in details and "关闭支付权限" in details
    assert "channel risk notice VR-1: WeChat closed its payments" in details
    assert f'href="/staff/risk/notices/{limited_on_notice.pk}/"' in shown
    assert f'id="lift-limit-{tea_contract.pk}"' in shown and 'name="reason"' in shown


def test_it_says_when_a_limit_was_not_set_on_a_notice(client, tea_contract, risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="the account manager asked us to")
    client.force_login(risk_zhao)

    details = text(card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract))

    assert "by zhao.risk — not on a channel notice: the account manager asked us to" in details


def test_a_clerk_sees_the_limit_but_no_form_to_lift_it(client, tea_contract, limited_on_notice, clerk_wang):
    client.force_login(clerk_wang)

    shown = card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract)

    assert 'data-role="limit"' in shown and "by zhao.risk" in shown
    assert "lift-limit" not in shown and "Lift the limit" not in shown
    # The record is named, but risk's notice pages are not the clerk's: no link to them.
    assert "VR-1" in shown and "/staff/risk/notices/" not in shown


def test_a_clerk_posting_the_lift_form_anyway_is_refused_and_nothing_changes(
        client, tea_contract, limited_on_notice, clerk_wang):
    client.force_login(clerk_wang)

    response = client.post(lift_url(tea_contract), {"reason": "the merchant says it is fine"})

    assert response.status_code == 403
    assert state_of(tea_contract) == ContractState.LIMITED
    assert not AuditLog.objects.filter(action="merchants.contract.lift_limit").exists()


def test_lifting_on_the_page_makes_the_contract_routable_again_and_is_audited(
        client, tea_contract, bank_contract, limited_on_notice, risk_zhao):
    assert routed(tea_contract.merchant) == bank_contract.pk
    client.force_login(risk_zhao)

    response = client.post(lift_url(tea_contract), {"reason": "  WeChat's account manager lifted it by phone  "},
                           follow=True)

    assert response.redirect_chain == [(page(tea_contract.merchant) + f"#contract-{tea_contract.pk}", 302)]
    assert "The limit of the contract with WeChat Pay wx-risk is lifted" in response.content.decode()
    assert state_of(tea_contract) == ContractState.ACTIVE
    assert routed(tea_contract.merchant) == tea_contract.pk
    row = AuditLog.objects.get(action="merchants.contract.lift_limit")
    assert (row.actor, row.reason, row.target_id) == (risk_zhao, "WeChat's account manager lifted it by phone",
                                                      str(tea_contract.pk))
    assert (row.data["from"], row.data["to"]) == ("limited", "active")
    event = Contract.objects.get(pk=tea_contract.pk).events.last()
    assert (event.from_state, event.to_state, event.source) == ("limited", "active", "staff")
    assert 'data-role="limit"' not in card(response.content.decode(), tea_contract)


@pytest.mark.parametrize("reason", ["", "   "])
def test_lifting_without_a_reason_names_the_reason_and_changes_nothing(
        client, tea_contract, limited_on_notice, risk_zhao, reason):
    client.force_login(risk_zhao)

    response = client.post(lift_url(tea_contract), {"reason": reason})

    assert response.status_code == 400
    shown = card(response.content.decode(), tea_contract)
    assert re.search(r'class="field-errors" role="alert">a reason is required to lift the limit of a contract<',
                     shown)
    assert state_of(tea_contract) == ContractState.LIMITED
    assert not AuditLog.objects.filter(action="merchants.contract.lift_limit").exists()


def test_a_risk_officer_limits_an_active_contract_on_the_page_and_its_orders_go_elsewhere(
        client, tea_contract, bank_contract, risk_zhao, clerk_wang):
    client.force_login(clerk_wang)
    assert "Limit…" not in card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract)
    assert client.post(limit_url(tea_contract), {"reason": "x"}).status_code == 403
    client.force_login(risk_zhao)
    assert f'id="limit-form-{tea_contract.pk}"' in card(client.get(page(tea_contract.merchant)).content.decode(),
                                                         tea_contract)

    refused = client.post(limit_url(tea_contract), {"reason": " "})
    assert refused.status_code == 400 and "a reason is required to limit a contract" in refused.content.decode()
    assert state_of(tea_contract) == ContractState.ACTIVE

    client.post(limit_url(tea_contract), {"reason": "Bank A's risk desk reports chargebacks on WeChat"})

    assert state_of(tea_contract) == ContractState.LIMITED
    assert routed(tea_contract.merchant) == bank_contract.pk
    row = AuditLog.objects.get(action="merchants.contract.limit")
    assert (row.actor, row.reason) == (risk_zhao, "Bank A's risk desk reports chargebacks on WeChat")


def test_the_contract_timeline_tells_a_limit_and_its_lift_once_each(tea_contract, limited_on_notice, risk_zhao):
    from merchants.services.contract_risk import contract_lift_limit
    from merchants.workbench import contract_timeline

    contract_lift_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="cleared with WeChat by phone")

    entries = contract_timeline(Contract.objects.get(pk=tea_contract.pk))
    moves = [(e.from_state, e.to_state) for e in entries if e.to_state]
    assert moves[-2:] == [("active", "limited"), ("limited", "active")]
    # The audit rows of the two actions are not told again as notes ("limit: …", "lift limit: …").
    assert not [e.message for e in entries if not e.to_state and e.message.startswith(("limit", "lift limit"))]

"""A risk officer handles a channel risk notice (risk.services.channel_notices ``channel_risk_notice_handle``): with a
note always, and one action — none, limit the matched contract (routing then sends the product's orders
elsewhere), lift that limit, or freeze the merchant. The action and the handling commit together, each audited;
support agents and operations may not (design §5 rules 9 and 11, §8)."""

from __future__ import annotations

import pytest

from aggpay.errors import Forbidden, InvalidRequest, InvalidState
from aggpay.models import AuditLog
from channels import routing
from merchants.models import Contract, ContractState, Merchant, MerchantState
from merchants.services.contract_risk import contract_lift_limit, contract_limit
from risk.models import ChannelRiskNotice
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.race_condition import in_threads
from tests.risk.violations import TEA_SUB

pytestmark = pytest.mark.django_db

def _notice(wx, *, record_id="VR-1", sub_mchid=TEA_SUB) -> ChannelRiskNotice:
    return channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id=f"EV-{record_id}",
                                      data={"record_id": record_id, "sub_mchid": sub_mchid}).notice


def _routed(merchant) -> int | None:
    decision = routing.choose(merchant=Merchant.objects.get(pk=merchant.pk), product="wechat.native", amount=1500)
    return decision.chosen.contract_id if decision.chosen else None


def test_limiting_the_contract_routes_the_next_order_for_the_product_elsewhere(wx, tea_contract, bank_contract,
                                                                              risk_zhao):
    assert _routed(tea_contract.merchant) == tea_contract.pk
    notice = _notice(wx)

    handled = channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit",
                                         note="WeChat closed its payments; traffic moved to the bank")

    assert (handled.state, handled.handled_action, handled.handled_by) == ("handled", "limit", risk_zhao)
    assert handled.handled_note == "WeChat closed its payments; traffic moved to the bank"
    assert handled.handled_at is not None
    tea_contract.refresh_from_db()
    assert tea_contract.state == ContractState.LIMITED
    assert _routed(tea_contract.merchant) == bank_contract.pk
    event = tea_contract.events.last()
    assert (event.from_state, event.to_state, event.source) == ("active", "limited", "staff")
    assert "VR-1" in event.message and event.data["channel_notice"] == notice.pk
    assert AuditLog.objects.filter(action="merchants.contract.limit", target_id=str(tea_contract.pk),
                                   actor=risk_zhao).exists()
    assert AuditLog.objects.filter(action="risk.channel_notice.handled", target_id=str(notice.pk), actor=risk_zhao,
                                   data__action="limit").exists()


def _appeal(wx, *, record_id, event_id="EV-APPEAL") -> ChannelRiskNotice:
    """An appeal update: sent about the punished record, under its own callback id (A.15)."""
    return channel_risk_notice_record(account=wx, event_type="VIOLATION.APPEAL", event_id=event_id,
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice


def test_lifting_the_limit_makes_the_contract_routable_again(wx, tea_contract, bank_contract, risk_zhao):
    punished = _notice(wx, record_id="VR-2")
    channel_risk_notice_handle(notice_id=punished.pk, actor=risk_zhao, action="limit", note="payments closed")
    appeal = _appeal(wx, record_id="VR-2")

    channel_risk_notice_handle(notice_id=appeal.pk, actor=risk_zhao, action="lift", note="appeal approved")

    tea_contract.refresh_from_db()
    assert tea_contract.state == ContractState.ACTIVE and _routed(tea_contract.merchant) == tea_contract.pk
    assert AuditLog.objects.filter(action="merchants.contract.lift_limit", target_id=str(tea_contract.pk)).exists()


def test_a_notice_about_another_record_cannot_lift_the_limit_set_for_a_punishment(wx, tea_contract, staff_member):
    # Zhao limited the contract for record VR-1 (fraud); Qian's notice is another record's appeal: approving that
    # appeal does not end VR-1's punishment.
    zhao, qian = staff_member("risk_officer", username="zhao.risk"), staff_member("risk_officer", username="qian")
    channel_risk_notice_handle(notice_id=_notice(wx, record_id="VR-1").pk, actor=zhao, action="limit",
                               note="fraud: payments closed by WeChat")
    other = _appeal(wx, record_id="VR-7")

    with pytest.raises(InvalidState, match="limited by zhao.risk on .* for channel record VR-1, not for VR-7") as no:
        channel_risk_notice_handle(notice_id=other.pk, actor=qian, action="lift", note="appeal approved")

    assert no.value.param == "action"
    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.LIMITED
    assert ChannelRiskNotice.objects.get(pk=other.pk).state == "new"
    assert not AuditLog.objects.filter(action="merchants.contract.lift_limit").exists()


def test_a_limit_set_otherwise_than_on_a_notice_is_not_a_notices_to_lift(wx, tea_contract, risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="the account manager asked us to")
    notice = _appeal(wx, record_id="VR-8")

    with pytest.raises(InvalidState, match="not on a channel notice, not for VR-8"):
        channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="lift", note="appeal approved")

    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.LIMITED


def test_freezing_the_merchant_refuses_its_payments(wx, tea_contract, risk_zhao):
    notice = _notice(wx)

    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="freeze", note="fraud confirmed")

    assert Merchant.objects.get(pk=tea_contract.merchant_id).state == MerchantState.FROZEN
    assert AuditLog.objects.filter(action="merchants.merchant.freeze", actor=risk_zhao).exists()


def test_noting_only_changes_nothing_but_the_notice(wx, tea_contract, risk_zhao):
    notice = _notice(wx)

    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="none", note="intercept only, watching")

    notice.refresh_from_db()
    assert (notice.state, notice.handled_action) == ("handled", "none")
    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.ACTIVE


def test_a_handled_notice_cannot_be_handled_again(wx, tea_contract, risk_zhao):
    notice = _notice(wx)
    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, note="first")

    with pytest.raises(InvalidState, match="handled already, by zhao.risk"):
        channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit", note="second")

    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.ACTIVE
    assert ChannelRiskNotice.objects.get(pk=notice.pk).handled_note == "first"


@pytest.mark.parametrize(("note", "action", "param"), [("", "none", "note"), ("   ", "limit", "note"),
                                                       ("why", "suspend", "action")])
def test_a_missing_note_or_an_unknown_action_is_refused_naming_the_field(wx, tea_contract, risk_zhao, note, action,
                                                                        param):
    notice = _notice(wx)

    with pytest.raises(InvalidRequest) as refused:
        channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action=action, note=note)

    assert refused.value.param == param
    assert ChannelRiskNotice.objects.get(pk=notice.pk).state == "new"


def test_an_unmatched_notice_has_no_contract_to_limit(wx, tea_contract, risk_zhao):
    notice = _notice(wx, sub_mchid="1900009999")

    with pytest.raises(InvalidRequest, match="no contract to limit") as refused:
        channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit", note="route away")

    assert refused.value.param == "action" and ChannelRiskNotice.objects.get(pk=notice.pk).state == "new"


def test_limiting_a_contract_limited_already_is_refused_and_leaves_the_notice_new(wx, tea_contract, risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="an earlier notice")
    notice = _notice(wx, record_id="VR-3")

    with pytest.raises(InvalidState, match="is limited; cannot limit"):
        channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit", note="again")

    assert ChannelRiskNotice.objects.get(pk=notice.pk).state == "new"
    assert not AuditLog.objects.filter(action="risk.channel_notice.handled").exists()


@pytest.mark.parametrize("role", ["support_agent", "operations", "onboarding_clerk"])
def test_only_risk_officers_may_handle_notices_or_limit_contracts(wx, tea_contract, staff_member, role):
    outsider = staff_member(role)
    notice = _notice(wx)

    with pytest.raises(Forbidden):
        channel_risk_notice_handle(notice_id=notice.pk, actor=outsider, action="none", note="seen")
    with pytest.raises(Forbidden):
        contract_limit(contract_id=tea_contract.pk, actor=outsider, reason="route away")
    with pytest.raises(Forbidden):
        contract_lift_limit(contract_id=tea_contract.pk, actor=outsider, reason="lift")

    assert ChannelRiskNotice.objects.get(pk=notice.pk).state == "new"
    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.ACTIVE


def test_risk_officers_hold_the_new_permissions_through_their_role(risk_zhao, staff_member):
    perms = ("risk.view_channelrisknotice", "risk.handle_channelrisknotice", "risk.limit_contract")
    assert all(risk_zhao.has_perm(perm) for perm in perms)
    support = staff_member("support_agent")
    assert not support.has_perm("risk.handle_channelrisknotice") and not support.has_perm("risk.limit_contract")


def test_a_contract_is_limited_only_with_a_reason(tea_contract, risk_zhao):
    with pytest.raises(InvalidRequest) as refused:
        contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason=" ")

    assert refused.value.param == "reason"
    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_two_officers_handling_one_notice_at_once_handle_it_once(wx, tea_contract, staff_member):
    officers = [staff_member("risk_officer", username=f"risk{i}") for i in range(2)]
    notice = _notice(wx)

    def handle(i):
        try:
            channel_risk_notice_handle(notice_id=notice.pk, actor=officers[i], action="limit", note=f"by {i}")
        except InvalidState:
            return "refused"
        return "handled"

    assert sorted(in_threads(2, handle)) == ["handled", "refused"]
    assert Contract.objects.get(pk=tea_contract.pk).state == ContractState.LIMITED
    assert AuditLog.objects.filter(action="merchants.contract.limit").count() == 1

"""A merchant's rate per product on a contract (issue 4 "Contract"): a Decimal, never below the account's cost
without an override and a reason. A rate that is not one (a percent sign, a float, too many places) is refused naming
the field, with nothing changed (design §5 rules 1 and 12) — not a ValueError surfacing as a server error."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggpay.errors import Forbidden, InvalidRequest
from aggpay.models import AuditLog
from merchants.models import ContractRate
from merchants.services.contracts import contract_set_rate
from merchants.services.onboarding import application_approve, application_review_start, application_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def bank_a_contract(drafted_tea_house, clerk_wang, risk_zhao, onboarding_accounts):
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
    return drafted_tea_house.contracts.get(channel_account__code="bank-a")


def test_it_sets_a_rate_at_or_above_cost_and_audits_the_change(bank_a_contract, clerk_wang):
    rate = contract_set_rate(contract_id=bank_a_contract.pk, actor=clerk_wang, product="unionpay.qr", rate="0.0045")

    assert rate.rate == Decimal("0.0045")
    audit = AuditLog.objects.get(action="merchants.contract.rate_changed")
    assert audit.data == {"product": "unionpay.qr", "from": "0.003800", "to": "0.0045"}


@pytest.mark.parametrize("bad", ["0.38%", "abc", "", 0.0038, "0.00385001", "1", "-0.001"])
def test_a_rate_that_is_not_a_decimal_rate_is_refused_naming_the_field(bank_a_contract, clerk_wang, bad):
    before = ContractRate.objects.get(contract=bank_a_contract, product="unionpay.qr").rate

    with pytest.raises(InvalidRequest) as refused:
        contract_set_rate(contract_id=bank_a_contract.pk, actor=clerk_wang, product="unionpay.qr", rate=bad)

    assert refused.value.param == "rate"
    assert ContractRate.objects.get(contract=bank_a_contract, product="unionpay.qr").rate == before
    assert not AuditLog.objects.filter(action="merchants.contract.rate_changed").exists()


def test_pricing_below_cost_needs_a_reason_that_says_something(bank_a_contract):
    from tests.factories import UserFactory

    overrider = UserFactory(is_staff=True, is_superuser=True)

    with pytest.raises(InvalidRequest) as refused:
        contract_set_rate(contract_id=bank_a_contract.pk, actor=overrider, product="unionpay.qr", rate="0.0010",
                          below_cost_reason="   ")
    assert refused.value.param == "below_cost_reason"

    rate = contract_set_rate(contract_id=bank_a_contract.pk, actor=overrider, product="unionpay.qr", rate="0.0010",
                             below_cost_reason=" launch promotion, contract 2026-17 ")
    assert (rate.rate, rate.below_cost_reason) == (Decimal("0.0010"), "launch promotion, contract 2026-17")
    assert AuditLog.objects.get(action="merchants.contract.rate_changed").reason == "launch promotion, contract 2026-17"


def _holding(*codenames: str):
    """A staff user holding exactly these merchants permissions (the role that should hold the override is
    aggpay/roles.py's to say; the service's rule is about the permission)."""
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="merchants", codename__in=codenames))
    assert user.user_permissions.count() == len(codenames)
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached per instance


def test_a_user_holding_the_override_permission_prices_below_cost_with_a_reason_and_it_is_audited(
        bank_a_contract):
    operator = _holding("override_contract_rate")

    rate = contract_set_rate(contract_id=bank_a_contract.pk, actor=operator, product="unionpay.qr", rate="0.0010",
                             below_cost_reason="launch promotion, contract 2026-17")

    assert (rate.rate, rate.below_cost_reason) == (Decimal("0.0010"), "launch promotion, contract 2026-17")
    audit = AuditLog.objects.get(action="merchants.contract.rate_changed")
    assert (audit.actor_id, audit.reason) == (operator.pk, "launch promotion, contract 2026-17")
    assert audit.data == {"product": "unionpay.qr", "from": "0.003800", "to": "0.0010", "below_cost": "0.002000"}


def test_the_override_still_needs_a_reason(bank_a_contract):
    with pytest.raises(InvalidRequest) as refused:
        contract_set_rate(contract_id=bank_a_contract.pk, actor=_holding("override_contract_rate"),
                          product="unionpay.qr", rate="0.0010", below_cost_reason="  ")

    assert refused.value.param == "below_cost_reason"
    assert ContractRate.objects.get(contract=bank_a_contract, product="unionpay.qr").rate == Decimal("0.0038")


def test_a_user_who_may_change_contracts_but_not_override_cannot_price_below_cost(bank_a_contract):
    clerk_like = _holding("change_contract")

    with pytest.raises(Forbidden):
        contract_set_rate(contract_id=bank_a_contract.pk, actor=clerk_like, product="unionpay.qr", rate="0.0010",
                          below_cost_reason="launch promotion")

    assert ContractRate.objects.get(contract=bank_a_contract, product="unionpay.qr").rate == Decimal("0.0038")
    assert not AuditLog.objects.filter(action="merchants.contract.rate_changed").exists()
    assert contract_set_rate(contract_id=bank_a_contract.pk, actor=clerk_like, product="unionpay.qr",
                             rate="0.0040").rate == Decimal("0.0040")  # at or above cost it may


def test_a_terminated_contracts_rates_stay_as_they_were(bank_a_contract, clerk_wang):
    from aggpay.errors import InvalidState
    from merchants.models import Contract, ContractState

    Contract.objects.filter(pk=bank_a_contract.pk).update(state=ContractState.TERMINATED)

    with pytest.raises(InvalidState, match="terminated"):
        contract_set_rate(contract_id=bank_a_contract.pk, actor=clerk_wang, product="unionpay.qr", rate="0.0045")
    assert ContractRate.objects.get(contract=bank_a_contract, product="unionpay.qr").rate == Decimal("0.003800")
    assert not AuditLog.objects.filter(action="merchants.contract.rate_changed").exists()

"""Staff decisions checked in the service, whoever calls it — page, admin action or API (design §5 rules 9, 11, 12):
a reason made only of spaces is no reason, and is refused naming the field with nothing moved or audited; activating
a merchant by hand is risk's (the admin action's ``aggpay.access_risk``) and only for a merchant with an active
contract, since a merchant is active when at least one contract is (issue 4 "Flow")."""

from __future__ import annotations

import pytest

from aggpay.errors import Forbidden, InvalidRequest, InvalidState
from aggpay.models import AuditLog
from merchants.models import ApplicationState, Contract, Merchant, MerchantState
from merchants.services import onboarding, settlement
from merchants.services.contracts import contract_register_existing
from merchants.services.merchants import merchant_activate, merchant_freeze, merchant_unfreeze
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db
BLANK = " \t\u3000 "  # spaces, a tab and an ideographic space: what a form strips to nothing


@pytest.fixture
def in_review(drafted_tea_house, clerk_wang, risk_zhao):
    onboarding.application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    onboarding.application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    return drafted_tea_house


def test_rejecting_an_application_with_a_blank_reason_is_refused_naming_the_reason(in_review, risk_zhao):
    with pytest.raises(InvalidRequest) as refused:
        onboarding.application_reject(application_id=in_review.pk, actor=risk_zhao, reason=BLANK)

    assert refused.value.param == "reason"
    in_review.refresh_from_db()
    assert in_review.state == ApplicationState.RISK_REVIEW
    assert not AuditLog.objects.filter(action="merchants.application.rejected").exists()


def test_returning_an_application_with_a_blank_reason_is_refused_naming_that_reason(in_review, risk_zhao):
    with pytest.raises(InvalidRequest) as refused:
        onboarding.application_return(application_id=in_review.pk, actor=risk_zhao, reasons=[
            {"field": "licence_no", "reason": "blurred photo"}, {"field": "mcc", "reason": BLANK}])

    assert refused.value.param == "reasons[1].reason"
    in_review.refresh_from_db()
    assert in_review.state == ApplicationState.RISK_REVIEW and not in_review.returned_reasons


def test_a_returned_reason_is_kept_trimmed(in_review, risk_zhao):
    application = onboarding.application_return(application_id=in_review.pk, actor=risk_zhao,
                                                 reasons=[{"field": "licence_no", "reason": "  blurred photo "}])

    assert application.returned_reasons == [{"field": "licence_no", "reason": "blurred photo"}]


@pytest.mark.parametrize("service", [merchant_freeze, merchant_unfreeze])
def test_freezing_or_unfreezing_with_a_blank_reason_is_refused_naming_the_reason(staff_member, service):
    merchant = merchant_activate(merchant_id=MerchantFactory().pk, actor=None, reason="test")
    officer = staff_member("risk_officer")
    if service is merchant_unfreeze:
        merchant_freeze(merchant_id=merchant.pk, actor=officer, reason="chargeback spike")
    before = Merchant.objects.get(pk=merchant.pk).state

    with pytest.raises(InvalidRequest) as refused:
        service(merchant_id=merchant.pk, actor=officer, reason=BLANK)

    assert refused.value.param == "reason"
    assert Merchant.objects.get(pk=merchant.pk).state == before
    assert AuditLog.objects.filter(action__startswith="merchants.merchant.").count() == (
        2 if service is merchant_unfreeze else 1)  # the activation (and the freeze), nothing more


@pytest.mark.parametrize("name", ["contract_suspend", "contract_terminate"])
def test_a_contract_transition_with_a_blank_reason_is_refused_naming_the_reason(clerk_wang, onboarding_accounts,
                                                                                name):
    contract = Contract.objects.create(merchant=MerchantFactory(), channel_account=onboarding_accounts["bank_a"],
                                       state="active", business_code="AGGBLANK1", sub_mchid="BANKA0001")

    with pytest.raises(InvalidRequest) as refused:
        getattr(settlement, name)(contract_id=contract.pk, actor=clerk_wang, reason=BLANK)

    assert refused.value.param == "reason"
    assert Contract.objects.get(pk=contract.pk).state == "active" and not contract.events.exists()


def test_registering_an_existing_contract_with_a_blank_reason_is_refused_naming_the_reason(
        clerk_wang, onboarding_accounts):
    merchant = MerchantFactory()

    with pytest.raises(InvalidRequest) as refused:
        contract_register_existing(merchant=merchant, account=onboarding_accounts["bank_a"], sub_mchid="BANKA0002",
                                   rates={"unionpay.qr": "0.0038"}, actor=clerk_wang, reason=BLANK)

    assert refused.value.param == "reason" and not merchant.contracts.exists()


def test_activating_a_merchant_needs_risks_permission_in_the_service_too(staff_member, clerk_wang,
                                                                       onboarding_accounts):
    merchant = MerchantFactory()
    contract_register_existing(merchant=merchant, account=onboarding_accounts["bank_a"], sub_mchid="BANKA0003",
                               rates={"unionpay.qr": "0.0038"}, actor=clerk_wang, reason="signed at the bank")
    assert not clerk_wang.has_perm("aggpay.access_risk")

    with pytest.raises(Forbidden):
        merchant_activate(merchant_id=merchant.pk, actor=clerk_wang, reason="contract registered")

    assert Merchant.objects.get(pk=merchant.pk).state == MerchantState.ONBOARDING
    assert not AuditLog.objects.filter(action="merchants.merchant.activate").exists()
    officer = staff_member("risk_officer")
    assert merchant_activate(merchant_id=merchant.pk, actor=officer, reason=" contract registered ").state == \
        MerchantState.ACTIVE
    audit = AuditLog.objects.get(action="merchants.merchant.activate")
    assert (audit.actor_id, audit.reason) == (officer.pk, "contract registered")


def test_a_merchant_with_no_active_contract_is_not_activated_by_hand(staff_member, onboarding_accounts):
    merchant = MerchantFactory()
    Contract.objects.create(merchant=merchant, channel_account=onboarding_accounts["bank_a"], state="pending",
                            business_code="AGGPENDING1")

    with pytest.raises(InvalidState) as refused:
        merchant_activate(merchant_id=merchant.pk, actor=staff_member("risk_officer"), reason="looks fine")

    assert "no active contract" in str(refused.value.message)
    assert Merchant.objects.get(pk=merchant.pk).state == MerchantState.ONBOARDING
    assert not AuditLog.objects.filter(action="merchants.merchant.activate").exists()


def test_registering_a_contract_the_merchant_already_has_on_that_account_is_refused_not_a_server_error(
        clerk_wang, onboarding_accounts):
    merchant, bank_a = MerchantFactory(), onboarding_accounts["bank_a"]
    first = contract_register_existing(merchant=merchant, account=bank_a, sub_mchid="BANKA0004",
                                       rates={"unionpay.qr": "0.0038"}, actor=clerk_wang, reason="signed at the bank")

    with pytest.raises(InvalidRequest) as refused:
        contract_register_existing(merchant=merchant, account=bank_a, sub_mchid="BANKA0005",
                                   rates={"unionpay.qr": "0.0040"}, actor=clerk_wang, reason="again")

    assert refused.value.param == "account" and "already has a contract" in refused.value.message
    assert list(merchant.contracts.values_list("pk", "sub_mchid")) == [(first.pk, "BANKA0004")]
    assert AuditLog.objects.filter(action="merchants.contract.registered_existing").count() == 1


def test_registering_another_merchants_sub_merchant_id_is_refused_naming_it(clerk_wang, onboarding_accounts):
    bank_a = onboarding_accounts["bank_a"]
    contract_register_existing(merchant=MerchantFactory(), account=bank_a, sub_mchid="BANKA0006",
                               rates={"unionpay.qr": "0.0038"}, actor=clerk_wang, reason="signed at the bank")
    other = MerchantFactory()

    with pytest.raises(InvalidRequest) as refused:
        contract_register_existing(merchant=other, account=bank_a, sub_mchid="BANKA0006",
                                   rates={"unionpay.qr": "0.0038"}, actor=clerk_wang, reason="signed at the bank")

    assert refused.value.param == "sub_mchid" and not other.contracts.exists()

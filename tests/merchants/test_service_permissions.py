"""Staff actions check the actor's permission in the service too, not only on the page that offers them (design §5
rule 11: "every staff page and action checks the role's permission"; aggpay/permissions.py: defence in depth behind
the views). A role without it is refused and nothing is done or audited."""

from __future__ import annotations

import pytest

from aggpay.errors import Forbidden
from aggpay.models import AuditLog
from merchants.models import Merchant
from merchants.services.contracts import contract_refresh_by_staff
from merchants.services.merchants import merchant_create
from merchants.services.onboarding import application_approve, application_review_start, application_submit

pytestmark = pytest.mark.django_db


def test_refreshing_a_contract_from_its_channel_needs_the_contract_permission(
        drafted_tea_house, clerk_wang, risk_zhao, staff_member, onboarding_accounts):
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
    contract = drafted_tea_house.contracts.get(channel_account__code="bank-a")
    support = staff_member("support_agent")
    assert not support.has_perm("merchants.change_contract")

    with pytest.raises(Forbidden):
        contract_refresh_by_staff(contract_id=contract.pk, actor=support)

    assert not AuditLog.objects.filter(action="merchants.contract.staff_refreshed").exists()
    contract_refresh_by_staff(contract_id=contract.pk, actor=clerk_wang)  # the clerk's button works as before
    assert AuditLog.objects.get(action="merchants.contract.staff_refreshed").actor_label == "wang.clerk"


def test_creating_a_merchant_needs_the_add_permission(staff_member, clerk_wang):
    finance = staff_member("finance")

    with pytest.raises(Forbidden):
        merchant_create(actor=finance, legal_name="杭州西湖茶馆有限公司", short_name="西湖茶馆")

    assert not Merchant.objects.exists()
    assert merchant_create(actor=clerk_wang, legal_name="杭州西湖茶馆有限公司", short_name="西湖茶馆").pk

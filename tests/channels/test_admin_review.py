"""The Django admin of channel configuration, attacked: it must not let an "add" rewrite an existing product, nor
let a user start an interface evaluation without the permission the ops page asks for (design §5 rule 11)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from aggpay.models import AuditLog
from channels.models import ChannelConfigChange, ChannelProduct, InterfaceEvaluation
from channels.services.products import channel_product_set
from tests.factories import ChannelAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bank_a():
    account = ChannelAccountFactory(code="bank-a", kind="bank")
    channel_product_set(account_id=account.pk, product="unionpay.qr", actor="test", cost_rate="0.0020",
                        max_amount=5_000_000)
    return account


@pytest.mark.parametrize("reason", ["", "typed into the add form"])
def test_adding_a_product_the_account_already_serves_is_refused_on_the_field_and_changes_nothing(
        admin_client, bank_a, reason):
    response = admin_client.post(reverse("admin:channels_channelproduct_add"), {
        "account": bank_a.pk, "product": "unionpay.qr", "cost_rate": "0.0060", "isv_rebate_rate": "0",
        "min_amount": "1", "max_amount": "5000000", "daily_cap": "", "enabled": "on", "reason": reason})

    assert response.status_code == 200
    assert "already serves unionpay.qr" in str(response.context["adminform"].form.errors["product"])
    assert str(ChannelProduct.objects.get(account=bank_a, product="unionpay.qr").cost_rate) == "0.002000"
    assert not ChannelConfigChange.objects.filter(action="product.updated").exists()


def test_starting_an_evaluation_from_the_admin_needs_the_permission_to_add_one(client, bank_a, staff_member):
    user = staff_member("operations", username="ops-no-evaluations")
    user.groups.clear()
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="channels", codename__in=["view_channelaccount", "change_channelaccount"]))
    client.force_login(user)

    client.post(reverse("admin:channels_channelaccount_changelist"), {
        "action": "start_evaluations", "_selected_action": [bank_a.pk], "apply": "1", "reason": "try"})

    assert not InterfaceEvaluation.objects.exists()
    assert not AuditLog.objects.filter(action="channels.evaluation.started").exists()


def test_with_that_permission_the_admin_starts_one_through_the_service(client, bank_a, staff_member):
    user = staff_member("operations", username="ops-evaluations")
    user.groups.clear()
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="channels", codename__in=["view_channelaccount", "add_interfaceevaluation"]))
    client.force_login(user)

    client.post(reverse("admin:channels_channelaccount_changelist"), {
        "action": "start_evaluations", "_selected_action": [bank_a.pk], "apply": "1", "reason": "new bank"})

    assert InterfaceEvaluation.objects.get().account == bank_a
    assert AuditLog.objects.filter(action="channels.evaluation.started").count() == 1

"""An audit row about a contract names it as staff know it — "Tea House on wx-risk (contract 7)", the merchant's
short name and the channel account's code — not by its ids ("1@3"). The label is stored with the row when it is
written (aggpay.audit), so the audit page reads no contract, merchant or account for it, however many rows."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from aggpay.audit import audit_log
from aggpay.models import AuditLog
from merchants.models import Contract
from merchants.services.contract_risk import contract_lift_limit, contract_limit
from merchants.services.merchants import merchant_activate
from tests.factories import ChannelAccountFactory, MerchantFactory
from tests.risk.violations import contract_on

pytestmark = pytest.mark.django_db

AUDIT = "/staff/admin/audit/"


@pytest.fixture
def admin_client(client, staff_member):
    client.force_login(staff_member("admin", username="alice"))
    return client


def test_limiting_a_contract_is_audited_under_its_merchant_and_account(tea_contract, risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    contract_lift_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="appeal approved")

    labels = list(AuditLog.objects.filter(target_type="merchants.contract").values_list("action", "target_repr"))

    assert labels == [("merchants.contract.lift_limit", f"Tea House on wx-risk (contract {tea_contract.pk})"),
                      ("merchants.contract.limit", f"Tea House on wx-risk (contract {tea_contract.pk})")]


def test_a_contract_read_without_its_merchant_and_account_still_names_them(tea_contract):
    assert str(Contract.objects.get(pk=tea_contract.pk)) == f"Tea House on wx-risk (contract {tea_contract.pk})"


def audit_contracts(shops) -> None:
    """A contract of each shop on one bank, each audited once as read back plainly (no related rows loaded)."""
    bank = ChannelAccountFactory(code="bank-audit", kind="bank")
    for shop in shops:
        merchant = merchant_activate(merchant_id=MerchantFactory(short_name=shop).pk, actor=None, reason="persona")
        contract = Contract.objects.get(pk=contract_on(bank, merchant, sub_mchid=f"SUB-{shop}").pk)
        with transaction.atomic():
            audit_log(actor="ops", action="merchants.contract.rate_changed", target=contract)


def test_the_audit_page_shows_the_label_and_reads_no_contract_per_row(admin_client):
    audit_contracts(["Shop 0"])
    admin_client.get(AUDIT)  # the session and the permission caches
    with CaptureQueriesContext(connection) as one_row:
        admin_client.get(AUDIT, {"action": "merchants.contract"})
    audit_contracts([f"Shop {i}" for i in range(1, 6)])

    with CaptureQueriesContext(connection) as six_rows:
        response = admin_client.get(AUDIT, {"action": "merchants.contract"})

    assert len(response.context["page"]) == 6
    first = Contract.objects.get(merchant__short_name="Shop 0")
    assert f"Shop 0 on bank-audit (contract {first.pk})" in response.content.decode()
    assert len(six_rows) == len(one_row)
    assert not any("merchants_contract" in query["sql"] for query in six_rows.captured_queries)

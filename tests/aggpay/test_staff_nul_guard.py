"""Staff pages refuse a NUL character in any parameter before a view runs (aggpay/staff/nul_guard.py): PostgreSQL
cannot store it, so a reason carrying one used to fail at the audit row — a 500 — with nothing or half of the action
done. The answer names the field; nothing changes."""

from __future__ import annotations

import pytest

from aggpay.models import AuditLog
from merchants.models import Merchant

pytestmark = pytest.mark.django_db


def test_a_freeze_whose_reason_holds_a_nul_is_refused_naming_it_and_nothing_changes(client, risk_zhao, tea_house):
    client.force_login(risk_zhao)

    response = client.post(f"/staff/merchants/{tea_house.merchant_no}/freeze/", {"reason": "fraud\x00report"})

    assert response.status_code == 400
    assert "“reason” contains a NUL character" in response.content.decode()
    assert Merchant.objects.get(pk=tea_house.pk).state == tea_house.state
    assert not AuditLog.objects.filter(action="merchants.merchant.freeze").exists()


def test_a_search_with_a_nul_is_refused_not_a_500(client, staff_member):
    client.force_login(staff_member("support_agent"))

    response = client.get("/staff/trades/", {"q": "ord_\x00"})

    assert response.status_code == 400 and "“q”" in response.content.decode()


def test_the_same_freeze_without_the_nul_goes_through(client, risk_zhao, tea_house):
    client.force_login(risk_zhao)

    response = client.post(f"/staff/merchants/{tea_house.merchant_no}/freeze/", {"reason": "fraud report"})

    assert response.status_code == 302
    assert Merchant.objects.get(pk=tea_house.pk).state == "frozen"

"""The audit log shows each row's data as lines a person reads ("key: old → new"), never a Python dict, and never
a secret or a piece of PII even if a writer put one in (design §5 rule 10)."""

from __future__ import annotations

import pytest
from django.db import transaction

from aggpay.audit import audit_log
from aggpay.templatetags.staff_display import audit_lines
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def test_a_state_change_is_one_from_to_line_and_the_rest_key_value():
    assert audit_lines({"from": "submitted", "to": "risk_review", "merchant_no": "M1", "amount": 1234}) == [
        ("change", "submitted → risk_review"), ("merchant_no", "M1"), ("amount", "12.34 yuan")]


def test_a_config_diff_is_one_line_per_field_with_secrets_left_as_changed():
    lines = audit_lines({"account": "wx-isv", "changes": {"enabled": {"old": False, "new": True},
                                                          "config.apiv3_key": "(changed)",
                                                          "daily_cap": {"old": None, "new": 500}}})
    assert lines == [("account", "wx-isv"), ("enabled", "No → Yes"), ("config.apiv3_key", "(changed)"),
                     ("daily_cap", "— → 500")]


def test_secret_and_pii_keys_never_show_their_values():
    lines = dict(audit_lines({"app_secret": "s3cr3t", "contact_phone": "13800138000", "access_token": "tok",
                              "settlement": {"account_number": "6222020202020202", "bank_name": "ICBC"}}))
    assert lines == {"app_secret": "***", "contact_phone": "***", "access_token": "***",
                     "settlement": "account_number=***, bank_name=ICBC"}


def test_the_audit_page_prints_readable_lines_not_a_dict(client, staff_member):
    client.force_login(staff_member("admin", username="alice"))
    merchant = MerchantFactory(short_name="Tea Corner")
    with transaction.atomic():
        audit_log(actor="system", action="merchants.merchant.activated", target=merchant,
                  data={"from": "onboarding", "to": "active", "accounts": ["wx-isv", "bank-a"]})

    html = client.get("/staff/admin/audit/").content.decode()

    assert "change</span>: onboarding → active" in html and "accounts</span>: wx-isv, bank-a" in html
    assert "{&#x27;" not in html and "{'" not in html

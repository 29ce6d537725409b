"""A staff refund's amount is typed in yuan as plain digits with at most two decimals (issue 5 "Staff pages", design
§5 rules 1 and 12). A support agent's trial refunded ¥10.00 for "1e1": the form read the amount with Decimal, which
also takes exponents, full-width digits ("１０") and "1_0". Each is refused naming the amount, nothing refunded."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from aggpay.models import AuditLog
from tests.trades.test_staff_workbench import _order, _paid
from trades.models import Refund
from trades.views import StaffRefundForm

NOT_PLAIN = ["1e1", "1E1", "Infinity", "NaN", " 1 0", "１０", "1_0", "+10", "-1", "0x10", "10.", ".5"]


@pytest.mark.django_db
@pytest.mark.parametrize("amount", NOT_PLAIN)
def test_the_staff_refund_form_refuses_an_amount_that_is_not_plain_yuan_naming_the_amount(tea_house, amount):
    order = _order(tea_house, "PY1", state="succeeded", amount=5000)
    form = StaffRefundForm({"amount": amount, "reason": "complaint", "form_no": "x"}, order=order)

    assert not form.is_valid()
    assert list(form.errors) == ["amount"]
    assert "Enter an amount in yuan as plain digits with at most two decimals" in form.errors["amount"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(("amount", "fen"), [("10", 1000), ("10.5", 1050), ("10.50", 1050), ("0.01", 1),
                                             (" 12.30 ", 1230)])
def test_the_staff_refund_form_takes_plain_yuan_exactly(tea_house, amount, fen):
    order = _order(tea_house, "PY2", state="succeeded", amount=5000)
    form = StaffRefundForm({"amount": amount, "reason": "complaint", "form_no": "x"}, order=order)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == fen


def test_a_refund_of_1e1_from_the_trade_page_is_refused_and_refunds_nothing(shop, client, agent):
    order = _paid(shop, "PY-PAGE-1", amount=2000)
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    form_no = re.search(r'name="form_no" value="([^"]+)"', page).group(1)

    response = client.post(reverse("trades:refund", args=[order.pk]),
                           {"amount": "1e1", "reason": "one cup short", "form_no": form_no})

    html = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'data-field="amount">[^<]*plain digits', html)
    assert not Refund.objects.filter(order=order).exists()
    assert not AuditLog.objects.filter(action="trades.refund.staff_created").exists()

"""A channel product's limits are typed in yuan as plain digits (thousands commas allowed) with at most two decimals,
like a staff refund's amount (design §5 rules 1 and 12): "1e1" is not ten yuan, nor is full-width "１０". The
product form read them with Decimal, which takes both."""

from __future__ import annotations

import pytest

from channels.forms import ProductForm

BASE = {"product": "wechat.native", "cost_rate": "0.23", "isv_rebate_rate": "0", "min_amount": "0.01",
        "max_amount": "50000", "daily_cap": "", "enabled": "on"}


@pytest.mark.parametrize("field", ["min_amount", "max_amount", "daily_cap"])
@pytest.mark.parametrize("typed", ["1e1", "1E3", "Infinity", "NaN", "１０", "1_0", "-1", "1 0"])
def test_a_limit_that_is_not_plain_yuan_is_refused_on_its_field(field, typed):
    form = ProductForm({**BASE, field: typed}, products=["wechat.native"])

    assert not form.is_valid()
    assert field in form.errors and "Enter an amount in yuan" in form.errors[field][0]


def test_plain_yuan_with_thousands_commas_is_taken_exactly_in_fen():
    form = ProductForm({**BASE, "min_amount": "0.5", "max_amount": "1,234.50", "daily_cap": "100000"},
                       products=["wechat.native"])

    assert form.is_valid(), form.errors
    assert (form.cleaned_data["min_amount"], form.cleaned_data["max_amount"], form.cleaned_data["daily_cap"]) == (
        50, 123450, 10_000_000)

"""Products of a channel account: rates, limits, validation naming the field, and rate history (issue 3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from channels.models import ChannelConfigChange, ChannelProduct
from channels.services.products import channel_product_set
from tests.factories import ChannelAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bank_a():
    return ChannelAccountFactory(code="bank-a", kind="bank")


def _set(account, product="unionpay.qr", **kwargs):
    return channel_product_set(account_id=account.pk, product=product, actor="test", **kwargs)


def test_it_creates_a_product_with_exact_decimal_rates_and_fen_limits(bank_a):
    row = _set(bank_a, cost_rate="0.0020", isv_rebate_rate=Decimal("0"), max_amount=5_000_000,
               daily_cap=100_000_000)

    row = ChannelProduct.objects.get(pk=row.pk)
    assert row.cost_rate == Decimal("0.002000")
    assert (row.min_amount, row.max_amount, row.daily_cap) == (1, 5_000_000, 100_000_000)
    change = ChannelConfigChange.objects.get(target_type="product", target_id=str(row.pk))
    assert change.action == "product.created"
    assert change.changes["cost_rate"] == {"old": None, "new": "0.002000"}


def test_editing_a_rate_keeps_its_history_with_the_reason(bank_a):
    row = _set(bank_a, cost_rate="0.0020", max_amount=5_000_000)

    _set(bank_a, cost_rate="0.0023", reason="bank raised its price from 1 Dec")

    row.refresh_from_db()
    assert row.cost_rate == Decimal("0.0023")
    change = ChannelConfigChange.objects.get(action="product.updated")
    assert change.changes == {"cost_rate": {"old": "0.002000", "new": "0.002300"}}
    assert change.reason == "bank raised its price from 1 Dec"
    assert change.account == bank_a
    audit = AuditLog.objects.get(action="channels.product.updated")
    assert audit.data["changes"]["cost_rate"]["new"] == "0.002300"


def test_changing_a_product_needs_a_reason(bank_a):
    _set(bank_a, cost_rate="0.0020", max_amount=5_000_000)

    with pytest.raises(InvalidRequest) as exc:
        _set(bank_a, cost_rate="0.0030")

    assert exc.value.param == "reason"
    assert ChannelProduct.objects.get().cost_rate == Decimal("0.002")


@pytest.mark.parametrize(("field", "value"), [
    ("cost_rate", "1"),
    ("cost_rate", "1.5"),
    ("cost_rate", "-0.001"),
    ("cost_rate", "0.0000001"),  # finer than 1e-6
    ("cost_rate", "abc"),
    ("cost_rate", 0.002),  # floats are not exact
    ("isv_rebate_rate", "-0.0001"),
    ("isv_rebate_rate", "1"),
])
def test_a_bad_rate_is_refused_naming_the_field(bank_a, field, value):
    kwargs = {"cost_rate": "0.0020", "max_amount": 5_000_000, field: value}

    with pytest.raises(InvalidRequest) as exc:
        _set(bank_a, **kwargs)

    assert exc.value.param == field
    assert field in exc.value.message
    assert not ChannelProduct.objects.exists()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"min_amount": 0}, "min_amount"),
    ({"max_amount": 100, "min_amount": 200}, "max_amount"),
    ({"daily_cap": 0}, "daily_cap"),
    ({"max_amount": 12.5}, "max_amount"),
    ({"isv_rebate_rate": "0.0030"}, "isv_rebate_rate"),  # a rebate above the cost
])
def test_inconsistent_limits_are_refused_naming_the_field(bank_a, kwargs, field):
    with pytest.raises(InvalidRequest) as exc:
        _set(bank_a, **{"cost_rate": "0.0020", "max_amount": 5_000_000, **kwargs})

    assert exc.value.param == field


def test_a_new_product_needs_a_cost_rate_and_a_maximum(bank_a):
    with pytest.raises(InvalidRequest) as exc:
        _set(bank_a, max_amount=5_000_000)
    assert exc.value.param == "cost_rate"

    with pytest.raises(InvalidRequest) as exc:
        _set(bank_a, cost_rate="0.002")
    assert exc.value.param == "max_amount"


def test_a_product_the_kind_does_not_serve_is_refused():
    wechat = ChannelAccountFactory(code="wx", kind="wechatpay")

    with pytest.raises(InvalidRequest) as exc:
        _set(wechat, product="alipay.qr", cost_rate="0.0038", max_amount=5_000_000)

    assert exc.value.param == "product"


def test_a_daily_cap_can_be_removed(bank_a):
    _set(bank_a, cost_rate="0.0020", max_amount=5_000_000, daily_cap=50_000_000)

    row = _set(bank_a, daily_cap=None, reason="cap lifted")

    assert ChannelProduct.objects.get(pk=row.pk).daily_cap is None
    assert ChannelConfigChange.objects.get(action="product.updated").changes == {
        "daily_cap": {"old": 50_000_000, "new": None}}


def test_saving_the_same_values_writes_no_history(bank_a):
    _set(bank_a, cost_rate="0.0020", max_amount=5_000_000)

    _set(bank_a, cost_rate=Decimal("0.002000"), reason="re-save")

    assert not ChannelConfigChange.objects.filter(action="product.updated").exists()


def test_the_database_refuses_a_second_row_for_the_same_product(bank_a):
    _set(bank_a, cost_rate="0.0020", max_amount=5_000_000)

    with pytest.raises(IntegrityError), transaction.atomic():
        ChannelProduct.objects.create(account=bank_a, product="unionpay.qr", cost_rate=Decimal("0.003"),
                                      max_amount=100)


def test_the_database_refuses_a_rate_of_one_or_more(bank_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        ChannelProduct.objects.create(account=bank_a, product="unionpay.qr", cost_rate=Decimal("1"),
                                      max_amount=100)

"""Fixtures for merchants tests: channel accounts that onboard merchants."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.models import ChannelProduct
from tests.factories import ChannelAccountFactory
from tests.risk.fixtures import bank_contract, tea_contract, wx  # noqa: F401 - the contract-limit tests' fixtures


def offer(account, product: str, cost: str, *, onboards: bool = True) -> ChannelProduct:
    return ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(cost),
                                         max_amount=5_000_000, onboards_merchants=onboards)


@pytest.fixture
def onboarding_accounts(db):
    """WeChat and Alipay ISV accounts and Bank A onboard new merchants; Bank B serves but does not onboard."""
    wechat = ChannelAccountFactory(kind="wechatpay", code="wechatpay-isv")
    alipay = ChannelAccountFactory(kind="alipay", code="alipay-isv")
    bank_a = ChannelAccountFactory(kind="bank", code="bank-a")
    bank_b = ChannelAccountFactory(kind="bank", code="bank-b")
    offer(wechat, "wechat.native", "0.0038")
    offer(alipay, "alipay.qr", "0.0038")
    for product in ("wechat.native", "alipay.qr", "unionpay.qr"):
        offer(bank_a, product, "0.0020")
        offer(bank_b, product, "0.0023", onboards=False)
    return {"wechat": wechat, "alipay": alipay, "bank_a": bank_a, "bank_b": bank_b}

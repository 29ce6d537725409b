"""What a merchant can sell (merchants.services.products, GET /api/v1/merchant) agrees with routing about WeChat
JSAPI at a bank: a bank contract without the merchant's WeChat appid (sub_appid) takes no such order
(channels.routing, bank.md §6.2), so it neither lists the product nor sets its rate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.models import ChannelProduct
from channels.routing import choose
from merchants.models import Contract, ContractRate
from merchants.services.products import merchant_available_products
from tests.factories import ChannelAccountFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def _contract(merchant, account, *, product: str, cost: str, rate: str, sub_appid: str = "") -> Contract:
    ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(cost), min_amount=1,
                                  max_amount=5_000_000)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state="active", sub_appid=sub_appid,
                                       business_code=f"AGG{account.code}{merchant.pk}", sub_mchid=f"S{account.pk}")
    ContractRate.objects.create(contract=contract, product=product, rate=Decimal(rate))
    return contract


def _listed(merchant) -> dict[str, Decimal]:
    return {p.product: p.rate for p in merchant_available_products(merchant)}


def test_a_bank_contract_without_the_appid_does_not_list_wechat_jsapi():
    merchant = MerchantFactory()
    _contract(merchant, ChannelAccountFactory(code="bank-a", kind="bank"), product="wechat.jsapi", cost="0.0020",
              rate="0.0038")

    assert "wechat.jsapi" not in _listed(merchant)
    assert choose(merchant=merchant, product="wechat.jsapi", amount=100).chosen is None


def test_the_listed_rate_is_the_one_routing_charges_when_the_cheaper_bank_lacks_the_appid():
    merchant = MerchantFactory()
    _contract(merchant, ChannelAccountFactory(code="bank-a", kind="bank"), product="wechat.jsapi", cost="0.0020",
              rate="0.0038")
    _contract(merchant, ChannelAccountFactory(code="wx-isv", kind="wechatpay"), product="wechat.jsapi",
              cost="0.0030", rate="0.0060")

    chosen = choose(merchant=merchant, product="wechat.jsapi", amount=100).chosen
    assert chosen.account_code == "wx-isv"
    assert _listed(merchant)["wechat.jsapi"] == chosen.merchant_rate == Decimal("0.0060")


def test_with_the_appid_the_bank_lists_it_at_its_rate():
    merchant = MerchantFactory()
    _contract(merchant, ChannelAccountFactory(code="bank-a", kind="bank"), product="wechat.jsapi", cost="0.0020",
              rate="0.0038", sub_appid="wx1234567890abcdef")

    assert _listed(merchant)["wechat.jsapi"] == Decimal("0.0038")

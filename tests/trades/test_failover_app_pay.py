"""Which contracts a create refused retryably may fail over to (trades.services.orders ``_fallbacks``, design §7
layer 4) when the pay parameters are bound to one app: WeChat APP pay signs the merchant's mobile app's appid into
what the app hands the WeChat SDK (channel-protocols.md A.9 APP: ``appid`` is the contract's ``sub_appid``), as a
JSAPI payer id belongs to one app — a contract of another app would give the merchant's app parameters it cannot
use. Decided on routing's own decision over factory rows: no channel is called."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.models import ChannelProduct
from channels.routing import choose
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory, MerchantFactory
from trades.models import Order
from trades.services.orders import _fallbacks

pytestmark = pytest.mark.django_db

SHOP_APP, OTHER_APP = "wx1a2b3c4d5e6f7a8b", "wx9f8e7d6c5b4a3f2e"


def _wechat_contract(merchant, code: str, *, cost: str, sub_appid: str) -> Contract:
    account = ChannelAccountFactory(code=code, kind="wechatpay")
    ChannelProduct.objects.create(account=account, product="wechat.app", cost_rate=Decimal(cost),
                                  max_amount=5_000_000)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state="active",
                                       business_code=f"AGG{code}", sub_mchid=f"19{account.pk:08d}",
                                       sub_appid=sub_appid)
    ContractRate.objects.create(contract=contract, product="wechat.app", rate=Decimal("0.0038"))
    return contract


@pytest.mark.parametrize(("second_app", "may_move"), [(SHOP_APP, True), (OTHER_APP, False)])
def test_an_app_pay_order_fails_over_only_to_a_contract_of_the_same_mobile_app(second_app, may_move):
    merchant = MerchantFactory()
    _wechat_contract(merchant, "wx-isv-1", cost="0.0020", sub_appid=SHOP_APP)
    second = _wechat_contract(merchant, "wx-isv-2", cost="0.0025", sub_appid=second_app)
    decision = choose(merchant=merchant, product="wechat.app", amount=1_000)
    assert decision.chosen.account_code == "wx-isv-1"

    fallbacks = _fallbacks(decision, Order(channel_product="wechat.app"))

    assert [contract.pk for _candidate, contract in fallbacks] == ([second.pk] if may_move else [])


def test_a_native_order_fails_over_whatever_the_apps():
    merchant = MerchantFactory()
    _wechat_contract(merchant, "wx-isv-1", cost="0.0020", sub_appid=SHOP_APP)
    second = _wechat_contract(merchant, "wx-isv-2", cost="0.0025", sub_appid=OTHER_APP)
    for contract in (Contract.objects.get(business_code="AGGwx-isv-1"), second):
        ChannelProduct.objects.create(account=contract.channel_account, product="wechat.native",
                                      cost_rate=contract.channel_account.products.get().cost_rate,
                                      max_amount=5_000_000)
        ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal("0.0038"))
    decision = choose(merchant=merchant, product="wechat.native", amount=1_000)

    assert [c.pk for _candidate, c in _fallbacks(decision, Order(channel_product="wechat.native"))] == [second.pk]

"""Review: ``barcode`` orders resolve to the wallet's own payment-code product (trades.products, merchant-api.md
"Orders"), and that product — its contract, limits and rates — is what routes and prices them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.models import ChannelProduct
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory
from trades.models import Order
from trades.products import merchant_orderable_products

pytestmark = pytest.mark.django_db

ALIPAY_CODE = "281234567890123456"
WECHAT_CODE = "134567890123456789"


def _offer(merchant, code, product, *, cost, rate, max_amount=100_000):
    # The factory's gateway (port 9) refuses connections: the order stays pending (unknown), already routed and
    # priced.
    account = ChannelAccountFactory(code=code)
    ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(cost), max_amount=max_amount)
    contract, _ = Contract.objects.get_or_create(merchant=merchant, channel_account=account, defaults={
        "state": "active", "business_code": f"B-{code}", "sub_mchid": f"S-{code}"})
    ContractRate.objects.create(contract=contract, product=product, rate=Decimal(rate))
    return contract


@pytest.fixture
def wallets(tea_house):
    # WeChat's payment code is cheaper to us on every count: a barcode order must still go by the payer's wallet.
    return {"wechat": _offer(tea_house, "bank-wx", "wechat.barcode", cost="0.0010", rate="0.0025"),
            "alipay": _offer(tea_house, "bank-ali", "alipay.barcode", cost="0.0021", rate="0.0035",
                             max_amount=5_000)}


def _create(signed_api, app, no, *, code, amount=1_000, product="barcode"):
    return signed_api(app).post("/api/v1/orders", json={"product": product, "out_trade_no": no, "amount": amount,
                                                         "subject": "tea", "auth_code": code})


def test_a_barcode_order_goes_to_the_wallets_product_and_is_priced_by_its_contract(signed_api, tea_house_app,
                                                                                   wallets):
    response = _create(signed_api, tea_house_app, "BARCODE-1", code=ALIPAY_CODE)
    assert response.status_code in (200, 201, 202), response.content
    order = Order.objects.get(pk=response.json()["id"])
    assert (order.product, order.channel_product) == ("barcode", "alipay.barcode")
    assert order.contract_id == wallets["alipay"].pk and order.channel_account.code == "bank-ali"
    assert (order.merchant_rate, order.merchant_fee, order.cost_rate, order.channel_cost) == (
        Decimal("0.0035"), 4, Decimal("0.0021"), 2)
    assert order.routing["chosen"] == "bank-ali"


def test_a_barcode_order_beyond_the_wallets_limit_is_refused_not_sent_to_another_wallet(signed_api, tea_house_app,
                                                                                         wallets):
    response = _create(signed_api, tea_house_app, "BARCODE-2", code=ALIPAY_CODE, amount=5_001)
    assert response.status_code == 422 and response.json()["error"]["code"] == "product_not_available"
    assert not Order.objects.filter(out_trade_no="BARCODE-2").exists()


def test_a_wallet_product_with_another_wallets_code_is_refused_naming_auth_code(signed_api, tea_house_app, wallets):
    response = _create(signed_api, tea_house_app, "BARCODE-3", code=WECHAT_CODE, product="alipay.barcode")
    assert response.status_code == 400 and response.json()["error"]["param"] == "auth_code"


def test_the_merchant_can_order_barcode_at_the_dearest_rate_it_may_resolve_to(tea_house, wallets):
    listed = {p.product: p.rate for p in merchant_orderable_products(tea_house)}
    assert listed == {"alipay.barcode": Decimal("0.0035"), "wechat.barcode": Decimal("0.0025"),
                      "barcode": Decimal("0.0035")}

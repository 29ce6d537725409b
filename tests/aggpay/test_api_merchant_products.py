"""GET /api/v1/merchant lists exactly what the merchant can order (merchant-api.md "The merchant", "Orders"):
the products of its active contracts, and ``barcode`` and ``cashier``, which no channel serves as such but which
order_create resolves to a wallet's own product (the payment code's wallet; the payer's wallet on the hosted page).
Each is checked against what ``POST /api/v1/orders`` then does with it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import ChannelProduct
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory
from trades.products import API_PRODUCTS

pytestmark = pytest.mark.django_db

# Payment codes by wallet (trades.products): what a `barcode` order's auth_code names.
CODES = {"wechat": "134567890123456789", "alipay": "284567890123456789", "unionpay": "6212345678901234562"}


def _contract(merchant, rates: dict[str, str], *, kind: str = "bank", state: str = "active") -> Contract:
    account = ChannelAccountFactory(kind=kind)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state=state,
                                       business_code=f"B-{account.code}", sub_mchid="1900000109")
    for product, rate in rates.items():
        ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal("0.0020"),
                                      max_amount=100_000)
        ContractRate.objects.create(contract=contract, product=product, rate=Decimal(rate))
    return contract


def _products(api) -> list[dict]:
    response = api.get("/api/v1/merchant")
    assert response.status_code == 200, response.content
    return response.json()["products"]


def _order(api, product: str, n: int, **fields):
    body = {"out_trade_no": f"T-LIST-{n:04d}", "amount": 100, "product": product, "subject": "tea", **fields}
    if product.endswith("barcode") and "auth_code" not in body:  # `barcode` itself: any wallet's code
        body["auth_code"] = CODES.get(product.split(".")[0], CODES["unionpay"])
    if product in ("wechat.jsapi", "wechat.mini", "alipay.jsapi"):
        body["payer"] = {"openid": "o-payer"} if product.startswith("wechat") else {"buyer_id": "2088000000000001"}
    if product == "wechat.h5":
        body["client_ip"] = "203.0.113.7"
    return api.post("/api/v1/orders", json=body)


def test_it_lists_barcode_when_a_wallets_payment_code_product_is_contracted(signed_api, tea_house_app):
    _contract(tea_house_app.merchant, {"wechat.native": "0.0038", "wechat.barcode": "0.0038"}, kind="wechatpay")
    _contract(tea_house_app.merchant, {"alipay.barcode": "0.0060"}, kind="alipay")
    assert _products(signed_api(tea_house_app)) == [
        {"product": "alipay.barcode", "rate": "0.006000"},
        # The wallet (from the payment code) decides the rate: the highest of them, what a barcode order costs at most.
        {"product": "barcode", "rate": "0.006000"},
        {"product": "wechat.barcode", "rate": "0.003800"},
        {"product": "wechat.native", "rate": "0.003800"},
    ]


def test_it_lists_cashier_when_a_product_a_wallet_pays_the_hosted_page_with_is_contracted(signed_api,
                                                                                          tea_house_app):
    _contract(tea_house_app.merchant, {"unionpay.qr": "0.0038"})  # UnionPay pays the page as 银联JS支付 (unionpay.qr)
    assert _products(signed_api(tea_house_app)) == [
        {"product": "cashier", "rate": "0.003800"},
        {"product": "unionpay.qr", "rate": "0.003800"},
    ]


def test_neither_is_listed_without_a_product_they_resolve_to(signed_api, tea_house_app):
    _contract(tea_house_app.merchant, {"wechat.native": "0.0038", "alipay.qr": "0.0055", "wechat.h5": "0.0060"},
              kind="wechatpay")
    _contract(tea_house_app.merchant, {"wechat.jsapi": "0.0038", "unionpay.barcode": "0.0038"},
              state="suspended")  # not active: nothing of it can be ordered
    assert [p["product"] for p in _products(signed_api(tea_house_app))] == ["alipay.qr", "wechat.h5",
                                                                             "wechat.native"]


def test_every_product_left_out_is_one_the_order_api_refuses(signed_api, tea_house_app):
    """What is not listed cannot be ordered (422 product_not_available, before any channel is asked), and the
    listed ``cashier`` can: its order needs no channel until the payer opens the page."""
    _contract(tea_house_app.merchant, {"unionpay.qr": "0.0038", "wechat.native": "0.0038"})
    api = signed_api(tea_house_app)
    listed = {p["product"] for p in _products(api)}
    assert listed == {"cashier", "unionpay.qr", "wechat.native"}
    for n, product in enumerate(sorted(set(API_PRODUCTS) - listed)):
        response = _order(api, product, n)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "product_not_available"), (
            product, response.json())
    cashier = _order(api, "cashier", 999)
    assert cashier.status_code == 201 and cashier.json()["pay_params"]["cashier_url"], cashier.json()


def test_a_barcode_order_is_refused_exactly_while_barcode_is_not_listed(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    _contract(tea_house_app.merchant, {"unionpay.qr": "0.0038"})
    assert "barcode" not in {p["product"] for p in _products(api)}
    refused = _order(api, "barcode", 1, auth_code=CODES["unionpay"])
    assert refused.json()["error"]["code"] == "product_not_available"

    _contract(tea_house_app.merchant, {"unionpay.barcode": "0.0040"})  # the save tells every process (a new token)
    assert {"product": "barcode", "rate": "0.004000"} in _products(api)
    taken = _order(api, "barcode", 2, auth_code=CODES["unionpay"])
    # Routed to the bank's unionpay.barcode (an account no call reaches here: the outcome is unknown, so pending).
    assert (taken.status_code, taken.json()["product"], taken.json()["state"]) == (201, "barcode", "pending")


def test_the_derived_list_is_remembered_so_a_warm_call_costs_no_query(signed_api, tea_house_app):
    _contract(tea_house_app.merchant, {"wechat.barcode": "0.0038", "wechat.jsapi": "0.0030"}, kind="wechatpay")
    api = signed_api(tea_house_app)
    cold = _products(api)
    assert [p["product"] for p in cold] == ["barcode", "cashier", "wechat.barcode", "wechat.jsapi"]
    with CaptureQueriesContext(connection) as queries:
        assert _products(api) == cold
    assert len(queries) == 0, [q["sql"] for q in queries]

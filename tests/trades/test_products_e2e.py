"""Every product, end to end (issue 5 "How it is checked"): created through the signed merchant API, paid on the
simulator's payer side (as the wallet would), queried, refunded, and — on a second order — closed (or, for
payment codes, reversed). PostgreSQL, live HTTP, real crypto; the channels call back to the live server."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from channels.models import ChannelProduct
from merchants.models import Contract, ContractRate
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAYERS = {"wechat.jsapi": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
          "wechat.mini": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeMini"},
          "alipay.jsapi": {"buyer_id": "2088102146225135"}}
# Payment codes (merchant-api.md "Orders"): ending in 0, the simulators charge the payer at once.
AUTH_CODES = {"wechat.barcode": "134567890123456780", "alipay.barcode": "281234567890123450",
              "unionpay.barcode": "6212345678901234560"}
KIND = {"wechat": "wechatpay", "alipay": "alipay", "unionpay": "bank"}
# merchant-api.md "Orders": what pay_params holds, by product (barcode orders may need nothing more).
PAY_PARAMS = {"wechat.jsapi": "jsapi", "wechat.mini": "jsapi", "wechat.app": "app", "wechat.h5": "h5_url",
              "wechat.native": "code_url", "alipay.jsapi": "jsapi", "alipay.app": "app", "alipay.wap": "wap_url",
              "alipay.qr": "code_url", "unionpay.qr": "code_url"}
PRODUCTS = ["wechat.jsapi", "wechat.mini", "wechat.app", "wechat.h5", "wechat.native", "wechat.barcode",
            "alipay.jsapi", "alipay.app", "alipay.wap", "alipay.qr", "alipay.barcode",
            "unionpay.qr", "unionpay.barcode"]


@pytest.fixture
def mini_shop(shop):
    """The shop, also contracted for WeChat mini-programs (the shared fixture stops at jsapi)."""
    account = shop.accounts["wechatpay"]
    ChannelProduct.objects.create(account=account, product="wechat.mini", cost_rate=Decimal("0.0020"),
                                  max_amount=5_000_000)
    ContractRate.objects.create(contract=Contract.objects.get(merchant=shop.merchant, channel_account=account), product="wechat.mini",
                                rate=Decimal("0.0038"))
    return shop


def _create(shop, product, out_trade_no, amount):
    body = {"out_trade_no": out_trade_no, "amount": amount, "subject": "Longjing tea"}
    if product.endswith(".barcode"):
        body.update(product="barcode", auth_code=AUTH_CODES[product])
    else:
        body["product"] = product
    if product in PAYERS:
        body["payer"] = PAYERS[product]
    if product == "wechat.h5":
        body["client_ip"] = "203.0.113.7"
    status, _, order = shop.client.request("POST", "/api/v1/orders", json=body)
    assert status == 201, order
    return order


def _pay(shop, product, order):
    """Pay as the payer's wallet does, from what the merchant API handed over (pay_params) where it can."""
    params, kind = order["pay_params"], KIND[product.split(".")[0]]
    config = shop.accounts[kind].config
    if product.endswith(".barcode"):
        assert order["state"] == "succeeded", order  # the payer's code was charged during the create
    elif product == "wechat.native":
        shop.sim(kind, "/_payer/pay", code_url=params["code_url"])
    elif product.startswith("wechat."):
        shop.sim(kind, "/_payer/pay", out_trade_no=order["id"], sp_mchid=config["sp_mchid"])
    elif product == "alipay.qr":
        shop.sim(kind, "/_payer/pay", qr_code=params["code_url"])
    elif product == "alipay.jsapi":
        shop.sim(kind, "/_payer/pay", trade_no=params["jsapi"]["tradeNO"])  # the JS bridge's argument
    elif product == "alipay.app":
        shop.sim(kind, "/_payer/pay", order_string=params["app"]["order_string"])
    elif product == "alipay.wap":
        page = requests.get(params["wap_url"], timeout=10)  # the payer's browser opens the cashier page
        assert page.status_code == 200, page.text
        shop.sim(kind, "/_payer/pay", out_trade_no=order["id"], app_id=config["app_id"])
    elif product == "unionpay.qr":
        shop.sim(kind, "/_payer/pay", org_no=config["org_no"], out_trade_no=order["id"])
    shop.sim(kind, "/_control/flush")


def _settle_refund(shop, product, refund):
    kind = KIND[product.split(".")[0]]
    if kind == "wechatpay" and refund["state"] == "pending":
        shop.sim(kind, f"/_control/refunds/{refund['id']}", status="SUCCESS",
                 sp_mchid=shop.accounts[kind].config["sp_mchid"])
    shop.sim(kind, "/_control/flush")

    def settled():
        status, _, answer = shop.client.request("GET", f"/api/v1/refunds/{refund['out_refund_no']}")
        return answer if answer["state"] == "succeeded" else None

    return shop.wait_for(settled, timeout=15, message=f"{product} refund to settle")


@pytest.mark.parametrize("product", PRODUCTS)
def test_every_product_is_created_paid_queried_refunded_and_closed_or_reversed(mini_shop, product):
    shop = mini_shop
    tag = product.replace(".", "")[:12]
    order = _create(shop, product, f"P{tag}1", 2000)
    assert order["pay_params"] or order["state"] == "succeeded", order
    if product in PAY_PARAMS:
        assert order["pay_params"][PAY_PARAMS[product]], order
    _pay(shop, product, order)
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), timeout=15,
                  message=f"{product} to be paid")
    status, _, queried = shop.client.request("GET", f"/api/v1/orders/P{tag}1")
    assert status == 200 and queried["state"] == "succeeded" and queried["channel_trade_no"], queried
    assert queried["product"] == ("barcode" if product.endswith(".barcode") else product)

    status, _, refund = shop.client.request("POST", f"/api/v1/orders/P{tag}1/refunds",
                                            json={"out_refund_no": f"R{tag}1", "amount": 700})
    assert status == 201, refund
    _settle_refund(shop, product, refund)
    assert Refund.objects.get(pk=refund["id"]).merchant_fee_refunded == 3  # 0.38% of 2000 = 8, 700/2000 of it
    status, _, after = shop.client.request("GET", f"/api/v1/orders/P{tag}1")
    assert after["refunded_amount"] == 700 and after["refundable_amount"] == 1300

    second = _create(shop, product, f"P{tag}2", 1000)
    if product.endswith(".barcode"):
        status, _, ended = shop.client.request("POST", f"/api/v1/orders/P{tag}2/reverse")
        assert status == 200 and ended["state"] == "reversed", ended
    else:
        status, _, ended = shop.client.request("POST", f"/api/v1/orders/P{tag}2/close")
        assert status == 200 and ended["state"] == "closed", ended
    assert Order.objects.get(pk=second["id"]).state == ended["state"]


def test_a_wechat_h5_order_without_the_payers_ip_is_refused_before_anything_is_written(shop):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "PH5NOIP1", "amount": 100, "product": "wechat.h5", "subject": "tea"})
    assert status == 400 and answer["error"]["code"] == "invalid_request" and answer["error"]["param"] == "client_ip"
    assert not Order.objects.filter(merchant=shop.merchant).exists()

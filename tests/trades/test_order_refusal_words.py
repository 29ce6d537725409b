"""What a refused create or close says reads right and is true: a payment code of another wallet is named with its
article and the wallet's own name ("an Alipay payment code", not "a alipay payment code"), and a close of an order
paid long before does not say it "was paid meanwhile" — it says the order is paid and to refund it instead."""

from __future__ import annotations

import pytest

from tests.trades.bank_flow import paid_at_the_bank
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

WECHAT_CODE, ALIPAY_CODE = "134567890123456780", "281234567890123451"


@pytest.mark.parametrize(("product", "code", "words"), [
    ("alipay.barcode", WECHAT_CODE, "auth_code is not an Alipay payment code"),
    ("wechat.barcode", ALIPAY_CODE, "auth_code is not a WeChat payment code"),
    ("unionpay.barcode", ALIPAY_CODE, "auth_code is not a UnionPay payment code"),
])
def test_a_payment_code_of_another_wallet_is_named_with_the_wallets_name_and_article(shop, product, code, words):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": f"ORW-{product[:6]}", "amount": 100, "product": product, "subject": "tea",
        "auth_code": code})
    assert status == 400 and answer["error"]["param"] == "auth_code", answer
    assert answer["error"]["message"] == words
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_a_close_of_an_order_paid_long_before_says_it_is_paid_and_to_refund_it(shop):
    paid_at_the_bank(shop, "ORW-PAID")

    status, _, answer = shop.client.request("POST", "/api/v1/orders/ORW-PAID/close")

    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    assert answer["error"]["message"] == "the order is paid; refund it instead"
    assert answer["order"]["state"] == "succeeded"

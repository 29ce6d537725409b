"""A unified order refuses the fields its product does not take (merchant-api.md "Orders": `payer` is for JSAPI/mini,
`auth_code` for barcode), naming them, before anything is written — design §5 rule 12. Bug: a `wechat.native` order
with an `auth_code` answered 201 with a QR code, the payment code never charged while the till believed it had taken
it; a `payer` on a QR order was dropped silently."""

from __future__ import annotations

import pytest

from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

WECHAT_CODE = "134567890123456780"  # a WeChat payment code the simulators charge at once
UNIONPAY_CODE = "6212345678901234562"


def _create(shop, out_trade_no: str, product: str, **fields):
    return shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": product, "subject": "tea", **fields})


@pytest.mark.parametrize(("product", "fields", "param"), [
    ("wechat.native", {"auth_code": WECHAT_CODE}, "auth_code"),
    ("unionpay.qr", {"auth_code": UNIONPAY_CODE}, "auth_code"),
    ("cashier", {"auth_code": WECHAT_CODE}, "auth_code"),
    ("wechat.jsapi", {"auth_code": WECHAT_CODE, "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "auth_code"),
    ("wechat.native", {"payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "payer"),
    ("alipay.qr", {"payer": {"buyer_id": "2088102146225135"}}, "payer"),
    ("wechat.h5", {"payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}, "client_ip": "203.0.113.7"}, "payer"),
    ("barcode", {"auth_code": WECHAT_CODE, "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "payer"),
    ("unionpay.qr", {"payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "payer.user_id"),
], ids=["native-auth_code", "unionpay.qr-auth_code", "cashier-auth_code", "jsapi-auth_code", "native-payer",
        "alipay.qr-payer", "h5-payer", "barcode-payer", "unionpay.qr-payer-without-user_id"])
def test_a_field_the_product_does_not_take_is_refused_naming_it_and_nothing_is_written(shop, product, fields,
                                                                                          param):
    status, _, answer = _create(shop, "FIT00001", product, **fields)
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["param"]) == ("invalid_request", param), answer
    assert product in answer["error"]["message"]
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize(("product", "fields", "state"), [
    ("wechat.barcode", {"auth_code": WECHAT_CODE}, "succeeded"),
    ("barcode", {"auth_code": UNIONPAY_CODE}, "succeeded"),
    ("wechat.jsapi", {"payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "pending"),
    ("alipay.qr", {"payer": {}}, "pending"),  # an empty payer carries nothing: the same request as none
], ids=["wechat.barcode", "barcode", "jsapi-payer", "empty-payer"])
def test_the_products_that_take_them_still_do(shop, product, fields, state):
    status, _, order = _create(shop, "FIT00002", product, **fields)
    assert status == 201 and order["state"] == state, order


def test_a_payer_given_with_unionpay_qr_makes_it_a_unionpay_js_payment(shop):
    status, _, order = _create(shop, "FIT00003", "unionpay.qr", payer={"user_id": "up-user-0001"})
    assert status == 201 and set(order["pay_params"]) == {"redirect_url"}, order

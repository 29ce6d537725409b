"""A create missing what its product needs is refused naming the exact field and saying it is required (design §5
rule 12; merchant-api.md "Errors": `param` names the field): a `barcode` order without `auth_code` used to hear that
"auth_code is not a … payment code", and an `alipay.jsapi` order given WeChat's `payer.openid` that "payer is
required" — while it had sent a payer, only not the `buyer_id` Alipay pays by."""

from __future__ import annotations

import pytest

from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

ORDER = {"out_trade_no": "REQ00001", "amount": 100, "subject": "tea"}


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"product": "barcode"}, "auth_code", "auth_code is required"),
    ({"product": "barcode", "auth_code": ""}, "auth_code", "auth_code: This field may not be blank"),
    ({"product": "wechat.barcode"}, "auth_code", "auth_code is required"),
    ({"product": "alipay.jsapi", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "payer.buyer_id",
     "payer.buyer_id is required"),
    ({"product": "alipay.jsapi"}, "payer.buyer_id", "payer.buyer_id is required"),
    ({"product": "wechat.jsapi", "payer": {"buyer_id": "2088102146225135"}}, "payer.openid",
     "payer.openid is required"),
    ({"product": "wechat.mini", "payer": {}}, "payer.openid", "payer.openid is required"),
], ids=["barcode", "barcode-empty", "wechat.barcode", "alipay-given-openid", "alipay-no-payer",
        "wechat-given-buyer_id", "mini-empty-payer"])
def test_a_create_missing_what_its_product_needs_names_that_field(shop, fields, param, words):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={**ORDER, **fields})

    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["param"]) == ("invalid_request", param), answer
    assert words in answer["error"]["message"], answer
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_a_payment_code_of_no_wallet_is_still_refused_as_such(shop):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={
        **ORDER, "product": "barcode", "auth_code": "991234567890123456"})

    assert status == 400 and answer["error"]["param"] == "auth_code", answer
    assert "not a WeChat, Alipay or UnionPay payment code" in answer["error"]["message"]

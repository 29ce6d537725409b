"""An order whose amount no contract's per-transaction limits take is refused naming ``amount`` and the amounts
that would be taken (``422 product_not_available``, docs/api.md "The merchant": "one listed may still be refused
for the amount"). A security trial sent 5000001 fen on wechat.native and was told ``param: product``, "no active
contract can take wechat.native for 5000001 fen" — the product was fine; the amount was the trouble."""

from __future__ import annotations

import pytest

from channels.models import ChannelProduct
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _order(shop, out_trade_no, amount, product="wechat.native"):
    return shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea"})


def test_an_amount_above_every_limit_is_refused_naming_the_amount_and_the_range(shop):
    ChannelProduct.objects.filter(product="wechat.native").update(min_amount=100, max_amount=5_000_000)

    status, _, body = _order(shop, "LIM00001", 5_000_001)

    assert status == 422, body
    error = body["error"]
    assert (error["code"], error["param"]) == ("product_not_available", "amount"), error
    assert "5000001" in error["message"] and "100–5000000 fen" in error["message"], error["message"]
    assert not Order.objects.filter(out_trade_no="LIM00001").exists()


def test_an_amount_below_every_limit_is_refused_naming_the_amount(shop):
    ChannelProduct.objects.filter(product="wechat.native").update(min_amount=100)

    status, _, body = _order(shop, "LIM00002", 99)

    assert status == 422 and body["error"]["param"] == "amount", body


def test_a_product_no_contract_serves_is_still_refused_naming_the_product(shop):
    ChannelProduct.objects.filter(product="wechat.native").update(enabled=False)

    status, _, body = _order(shop, "LIM00003", 1000)

    assert status == 422 and body["error"]["param"] == "product", body

"""The merchant's own identifiers are taken exactly as sent or refused (merchant-api.md "Orders": `out_trade_no`
6–32 characters of `[0-9A-Za-z_-]`; "Refunds": `out_refund_no`; design §5 rule 12: bad input gets an error naming
the field).

Bug: DRF's CharField trims surrounding whitespace before checking the pattern, so `" T100001"` or `"T100001\\n"`
(a key read from a fixed-width CHAR column, or a line read with its newline) was accepted and stored as `T100001`.
The merchant's key and ours then differ: the order it asks for by its own key (`/orders/%20T100001`) is a 404, and a
key padded to 40 characters passed the 32-character limit. These keys name the request for idempotency (design §5
rule 5), so they are compared exactly, never cleaned up.
"""

from __future__ import annotations

import pytest

from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

ORDER = {"amount": 100, "product": "wechat.native", "subject": "tea"}
PADDED = [" T100001", "T100001 ", "T100001\n", "\tT100001", "T100001\r\n", "T100001" + " " * 30]


@pytest.mark.parametrize("out_trade_no", PADDED)
def test_an_out_trade_no_with_surrounding_whitespace_is_refused_naming_it_and_nothing_is_written(shop, out_trade_no):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={**ORDER, "out_trade_no": out_trade_no})
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["param"]) == ("invalid_request", "out_trade_no"), answer
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize("out_refund_no", [" R1", "R1 ", "R1\n", "\tR1"])
def test_an_out_refund_no_with_surrounding_whitespace_is_refused_naming_it_and_nothing_is_written(shop,
                                                                                                  out_refund_no):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "WSP00001", "amount": 100, "product": "barcode", "auth_code": "134567890123456780",
        "subject": "tea"})
    assert status == 201 and order["state"] == "succeeded", order
    status, _, answer = shop.client.request("POST", "/api/v1/orders/WSP00001/refunds",
                                            json={"out_refund_no": out_refund_no, "amount": 10})
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["param"]) == ("invalid_request", "out_refund_no"), answer
    assert not Refund.objects.filter(merchant=shop.merchant).exists()

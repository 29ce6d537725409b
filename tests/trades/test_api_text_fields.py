"""Text fields take JSON strings only, and a malformed number says what the contract asks for (design §5 rule 12:
bad input gets a clear error naming the field). DRF's CharField turned 5 into "5" and true into "True": an order
whose subject is a number came from a bug on the merchant's side, and was stored as if meant."""

from __future__ import annotations

import json

import pytest

from tests.trades.test_api_audit import _create, _refused
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

VALID = {"out_trade_no": "TXT00001", "amount": 100, "product": "wechat.native", "subject": "tea"}


@pytest.mark.parametrize(("field", "value"), [
    ("subject", 5), ("subject", True), ("description", ["tea"]), ("client_ip", 127001),
    ("store_id", 7), ("terminal_id", False), ("payer", {"openid": 12345}),
])
def test_it_refuses_a_text_field_that_is_not_a_string_naming_it(shop, signed_api, field, value):
    body = {**VALID, field: value}
    error = _refused(_create(signed_api(shop.app), json.dumps(body).encode()),
                     "payer.openid" if field == "payer" else field, app=shop.app)
    assert "valid" in error["message"].lower() or "string" in error["message"].lower()
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_a_malformed_out_trade_no_is_told_the_rule(shop, signed_api):
    error = _refused(_create(signed_api(shop.app), json.dumps({**VALID, "out_trade_no": "T1001"}).encode()),
                     "out_trade_no", app=shop.app)
    assert "6–32" in error["message"]


def test_a_malformed_out_refund_no_is_told_the_rule(shop, signed_api):
    order = _create(signed_api(shop.app), json.dumps(VALID).encode()).json()
    response = signed_api(shop.app).request("POST", f"/api/v1/orders/{order['out_trade_no']}/refunds",
                                            body=json.dumps({"out_refund_no": "R 1", "amount": 1}).encode())
    error = _refused(response, "out_refund_no", app=shop.app)
    assert "1–64" in error["message"]

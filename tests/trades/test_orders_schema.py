"""Bad input on the Orders, Refunds and Events endpoints (issue 5 "How it is checked"; design §5 rule 12):
schemathesis drives every operation with generated, signed requests and finds no 5xx and no answer that
contradicts the schema; each invalid field, one at a time, is refused with ``invalid_request`` naming it and
nothing is written.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.aggpay.test_schema import AggpaySignatureAuth, _operations
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

PREFIXES = ("/api/v1/orders", "/api/v1/refunds", "/api/v1/events")


def test_generated_requests_to_orders_refunds_and_events_never_get_a_5xx(shop, live_server):
    auth = AggpaySignatureAuth(shop.app.app_id, shop.app.secret)
    operations = [op for op in _operations(live_server.url) if op.path.startswith(PREFIXES)]
    assert {op.path for op in operations} >= {"/api/v1/orders", "/api/v1/orders/{out_trade_no}",
                                             "/api/v1/orders/{out_trade_no}/refunds", "/api/v1/events"}
    for operation in operations:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(auth=auth, checks=[not_a_server_error, status_code_conformance,
                                                      content_type_conformance])

        check()


GOOD_ORDER = {"out_trade_no": "SCH00001", "amount": 100, "product": "wechat.native", "subject": "tea"}
BAD_ORDER_FIELDS = [
    ("out_trade_no", "no"), ("out_trade_no", "has space 1"),
    ("amount", 0), ("amount", -1), ("amount", "100"), ("amount", 1.5), ("amount", True), ("amount", 10**12),
    ("currency", "USD"), ("product", "wechat.cash"), ("product", ""), ("subject", ""), ("subject", "s" * 129),
    ("metadata", "not an object"), ("metadata", {"k": "v" * 3000}), ("notify_url", "ftp://example.com/x"),
    ("notify_url", "not a url"), ("return_url", "javascript:alert(1)"), ("expire_seconds", 59),
    ("expire_seconds", 86401), ("client_ip", "999.1.1.1"), ("payer", "openid"),
    ("notifyurl", "https://shop.example/n"),  # misspelt: refused, never dropped silently
]


@pytest.mark.parametrize(("field", "value"), BAD_ORDER_FIELDS)
def test_each_invalid_order_field_is_named_and_nothing_is_written(shop, field, value):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={**GOOD_ORDER, field: value})
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request" and answer["error"]["param"] == field, answer
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize("missing", ["out_trade_no", "amount", "product", "subject"])
def test_each_missing_order_field_is_named(shop, missing):
    body = {k: v for k, v in GOOD_ORDER.items() if k != missing}
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json=body)
    assert status == 400 and answer["error"]["param"] == missing, answer


BAD_REFUND_FIELDS = [("out_refund_no", ""), ("out_refund_no", "x" * 65), ("amount", 0), ("amount", "10"),
                     ("amount", 2.5), ("reason", "r" * 257), ("notify_url", "gopher://x"),
                     ("out_trade_no", "SCH00001")]  # not a refund field: the order is in the path


@pytest.mark.parametrize(("field", "value"), BAD_REFUND_FIELDS)
def test_each_invalid_refund_field_is_named_and_nothing_is_written(shop, field, value):
    _, _, order = shop.client.request("POST", "/api/v1/orders", json={**GOOD_ORDER, "product": "barcode",
                                                                      "auth_code": "134567890123456780"})
    assert order["state"] == "succeeded", order
    body = {"out_refund_no": "SCHR0001", "amount": 10, field: value}
    status, _, answer = shop.client.request("POST", "/api/v1/orders/SCH00001/refunds", json=body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request" and answer["error"]["param"] == field, answer
    assert not Refund.objects.filter(merchant=shop.merchant).exists()
    assert Order.objects.get(pk=order["id"]).refund_reserved == 0

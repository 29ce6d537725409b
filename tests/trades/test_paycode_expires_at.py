"""A payment-code order's ``expires_at`` is when aggpay gives up on its payer and reverses it: its query ladder's
minute (trades.services.ladder.BARCODE_SPAN), or sooner if ``expire_seconds`` asks — never a later time the ladder
does not keep. Bug: a ``wechat.barcode`` order with ``expire_seconds`` 300 said ``expires_at`` = created + 5 min while
it was reversed at + 65 s. Other products keep ``expire_seconds`` as asked.
"""

from __future__ import annotations

import datetime as dt

import pytest

from trades.models import Order
from trades.services.ladder import next_query_at

pytestmark = pytest.mark.usefixtures("quiet_channels")

# WeChat Pay's simulator: a code ending 5 has its payer confirm in the wallet (pending), one ending 0 pays at once.
CONFIRMING, PAID_AT_ONCE = "134567890123456785", "134567890123456780"


def _create(shop, out_trade_no: str, **fields) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1200, "subject": "tea", **fields})
    assert status == 201, order
    return order


def _span(order: dict) -> dt.timedelta:
    return dt.datetime.fromisoformat(order["expires_at"]) - dt.datetime.fromisoformat(order["created_at"])


@pytest.mark.parametrize(("expire_seconds", "code"), [(300, CONFIRMING), (86400, PAID_AT_ONCE), (None, CONFIRMING)])
def test_a_payment_codes_expires_at_is_when_its_ladder_reverses_it(shop, expire_seconds, code):
    asked = {"expire_seconds": expire_seconds} if expire_seconds else {}
    order = _create(shop, f"PCX-{expire_seconds}", product="wechat.barcode", auth_code=code, **asked)

    assert dt.timedelta(seconds=59) <= _span(order) <= dt.timedelta(seconds=60), order["expires_at"]
    row = Order.objects.get(pk=order["id"])
    # The ladder's last rung is at expires_at: a query before it still has a next one, one at it has none (the
    # reverse of an order still unpaid, trades.services.orders._reverse_unpaid_code).
    assert next_query_at(created_at=row.created_at, now=row.expires_at - dt.timedelta(seconds=1), barcode=True)
    assert next_query_at(created_at=row.created_at, now=row.expires_at + dt.timedelta(milliseconds=50),
                         barcode=True) is None


def test_a_replay_of_the_payment_code_keeps_its_expire_seconds_as_the_same_request(shop):
    fields = {"product": "wechat.barcode", "auth_code": PAID_AT_ONCE, "expire_seconds": 300}
    first = _create(shop, "PCX-REPLAY", **fields)
    status, headers, again = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "PCX-REPLAY", "amount": 1200, "subject": "tea", **fields})
    assert status == 200 and headers.get("Idempotent-Replayed") == "true", again
    assert again["expires_at"] == first["expires_at"]


def test_other_products_keep_the_expire_seconds_asked(shop):
    order = _create(shop, "PCX-QR", product="wechat.native", expire_seconds=300)
    assert dt.timedelta(seconds=299) <= _span(order) <= dt.timedelta(seconds=300), order["expires_at"]

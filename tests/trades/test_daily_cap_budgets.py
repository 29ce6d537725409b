"""Query budgets (issue 5: order create ≤ 12, payment callback ≤ 12) hold with a daily cap on the candidates: routing
reads today's volumes in one more query, and the success adds to the day's volume in one UPSERT. Measured as
tests/trades/test_query_counts.py measures them (through Django's test client in this thread)."""

from __future__ import annotations

import pytest

from channels.models import AccountDayVolume, ChannelProduct
from tests.trades.test_query_counts import (
    CALLBACK_BUDGET,
    CREATE_BUDGET,
    _counted,
    _create,
    _paid_order_with_held_callback,
    _post_callback,
    broker_not_eager,  # noqa: F401 - the fixture, used by name
)
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")


def test_create_and_callback_stay_within_their_budgets_when_the_candidate_has_a_daily_cap(
        shop, simulator_server, broker_not_eager):  # noqa: F811
    offer = ChannelProduct.objects.get(account=shop.accounts["alipay"], product="alipay.qr")
    offer.daily_cap = 10_000_000
    offer.save()
    _paid_order_with_held_callback(shop, simulator_server, "CAPWARM1")  # the first request of a process warms up

    response, count, sql = _counted(lambda: _create(shop, "CAPNEW01"))
    assert response.status_code == 201, response.content
    assert count <= CREATE_BUDGET, "\n".join(sql)
    assert any("accountdayvolume" in q for q in sql)  # the cap was looked at

    order, item = _paid_order_with_held_callback(shop, simulator_server, "CAPPAID1")
    response, count, sql = _counted(lambda: _post_callback(item))
    assert response.status_code == 200 and response.content.strip() == b"success", response.content
    assert Order.objects.get(pk=order["id"]).state == "succeeded"
    assert count <= CALLBACK_BUDGET, "\n".join(sql)
    assert AccountDayVolume.objects.get(account=shop.accounts["alipay"], product="alipay.qr").paid_amount == 990

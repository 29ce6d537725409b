"""The payer's page polls its order's status (``/pay/<token>/status``, merchant-api.md "Payer-facing pages"); for a
pending order the poll may ask the channel, at most once every few seconds per order (QUERY_MIN_INTERVAL). Polls
arrive together — several tabs, a phone retrying on a bad network, a page reloaded — so the per-order allowance is
claimed before the channel is asked, in one atomic step, not recorded after the answer: N parallel polls of one
order the channel has not settled give ONE query. The merchant's ``GET /orders/{no}`` shares the same allowance.

Staged with the house pattern (tests/trades/test_races.py): the threads are released together, and the channel is
slowed (the simulator's latency fault) so every poll is in flight before the first answer is recorded."""

from __future__ import annotations

import pytest
import requests

from tests.race_condition import in_threads, retrying_resets
from tests.trades.onecode_flow import (
    UA_WECHAT,
    bridge,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from tests.trades.test_races import _client
from trades.models import ChannelCall, Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http", "quiet_channels")

POLLS = 8


def _slow_queries(shop, order_id: str) -> None:
    """Every WeChat query about this order takes a second and a half (A.5 query by out_trade_no)."""
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=1.5, times=POLLS,
             match={"path": f"out-trade-no/{order_id}$", "method": "GET"})


def _queries(order: Order) -> int:
    return ChannelCall.objects.filter(order=order, verb="query").count()


def test_parallel_status_polls_of_one_unpaid_order_ask_the_channel_once(shop, live_server):
    payer = phone(UA_WECHAT)
    pay_page = enter_amount(payer, scan_and_authorise(payer, live_server.url, store_code_for(shop).code), "6.80")
    status_url = live_server.url + bridge(pay_page.text)["status_url"]
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.state == "pending" and _queries(order) == 0  # the payer has not paid: only the channel can tell
    _slow_queries(shop, order.pk)

    answers = in_threads(POLLS, lambda i: retrying_resets(lambda: requests.get(status_url, timeout=20)))

    assert [a.status_code for a in answers] == [200] * POLLS
    assert {a.json()["state"] for a in answers} == {"pending"}
    assert _queries(order) == 1
    assert requests.get(status_url, timeout=20).json()["state"] == "pending" and _queries(order) == 1  # still within


def test_parallel_merchant_queries_of_one_pending_order_ask_the_channel_once(shop, live_server):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "POLL0001", "amount": 680, "product": "wechat.native", "subject": "tea"})
    assert status == 201, created
    order = Order.objects.get(pk=created["id"])
    _slow_queries(shop, order.pk)

    answers = in_threads(POLLS, lambda i: retrying_resets(lambda: _client(shop, live_server).request(
        "GET", "/api/v1/orders/POLL0001")))

    assert [status for status, _, _ in answers] == [200] * POLLS, answers
    assert {body["state"] for _, _, body in answers} == {"pending"}
    assert _queries(order) == 1

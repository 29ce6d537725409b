"""A double-tapped Pay button on a payer page (merchant-api.md "Payer-facing pages"): the browser shows the answer
to the second tap, which finds the first tap's order (one order per form) while that order's create is still at
the channel — so the page it lands on has no wallet hand-off yet. It must tell when the hand-off is there and
reload into it, not wait a minute and say "still processing" (the browser side: tests/browser/
test_onecode_pay_poll.py). The pay page itself never reloads for it: it already is the hand-off."""

from __future__ import annotations

import html
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.trades.onecode_flow import UA_WECHAT, enter_amount, phone, scan_and_authorise, store_code_for
from trades.models import Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http", "quiet_channels")


def _poll(page_html: str) -> dict:
    found = re.search(r'<script id="poll" type="application/json">(.*?)</script>', page_html, re.S)
    assert found, "the page has no poll parameters"
    return json.loads(html.unescape(found.group(1)))


def test_the_page_a_second_tap_lands_on_reloads_into_the_hand_off_once_the_first_taps_create_answers(
        shop, live_server):
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, store_code_for(shop).code)
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=2, times=1,
             match={"path": "transactions/jsapi"})
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(enter_amount, payer, amount_page, "5", allow_redirects=False)
        shop.wait_for(lambda: Order.objects.filter(merchant=shop.merchant).exclude(channel_account=None).exists(),
                      message="the first tap's order, waiting for the channel")
        second = enter_amount(payer, amount_page, "5")  # what the browser shows
        assert second.status_code == 200 and 'id="bridge"' not in second.text and 'data-state="pending"' in second.text
        poll = _poll(second.text)
        assert poll["until_ready"] is True
        status_url = live_server.url + poll["status_url"]
        assert payer.get(status_url, timeout=10).json()["ready"] is False  # the create is still at the channel
        assert first.result().status_code == 302
    assert payer.get(status_url, timeout=10).json() == {"state": "pending", "amount": 500, "ready": True}
    pay_page = payer.get(second.url, timeout=10)  # what the page's reload shows
    assert 'id="bridge"' in pay_page.text and _poll(pay_page.text)["until_ready"] is False  # no reload loop
    order = Order.objects.get(merchant=shop.merchant)
    assert order.amount == 500 and order.channel_calls.filter(verb="create").count() == 1

"""The payer's pay page (merchant-api.md "Payer-facing pages", channel-protocols.md §E) checks its order through the
status endpoint, which asks the channel at most once per QUERY_MIN_INTERVAL per order: it polls at the result page's
interval, not every second, and a bounded number of times — long enough for a payer to confirm in the wallet, not
long past the order's expiry — then says so in Chinese and English with a button to check again."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import pytest
from django.utils import timezone

from tests.trades.onecode_flow import UA_WECHAT, enter_amount, phone, scan_and_authorise, store_code_for
from trades.models import Order
from trades.onecode import views_payer
from trades.services.cashier import cashier_token
from trades.services.orders import QUERY_MIN_INTERVAL

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


def _poll(page_html: str) -> dict:
    found = re.search(r'<script id="poll" type="application/json">(.*?)</script>', page_html, re.S)
    assert found, "the page has no poll parameters"
    return json.loads(html.unescape(found.group(1)))


def _pay_page(shop, live_server):
    payer = phone(UA_WECHAT)
    page = enter_amount(payer, scan_and_authorise(payer, live_server.url, store_code_for(shop).code), "8.80")
    assert page.status_code == 200 and 'id="standin-pay"' in page.text  # the wallet hand-off: the pay page
    return payer, page, Order.objects.get(merchant=shop.merchant)


def test_it_polls_the_pay_page_at_the_result_pages_interval_a_bounded_number_of_times(shop, live_server):
    _, page, order = _pay_page(shop, live_server)
    poll = _poll(page.text)
    assert poll["status_url"] == f"/pay/{cashier_token(order.pk)}/status"
    assert poll["interval_ms"] == views_payer.RESULT_POLL_INTERVAL_MS
    assert poll["interval_ms"] >= QUERY_MIN_INTERVAL.total_seconds() * 1000  # no poll that cannot ask the channel
    # A one-code order lives two hours: the page stops after PAY_POLLS (five minutes), not at the order's expiry.
    assert order.expires_at - timezone.now() > dt.timedelta(hours=1)
    assert poll["max_polls"] == views_payer.PAY_POLLS
    assert views_payer.PAY_POLLS * poll["interval_ms"] >= 5 * 60 * 1000  # time enough to confirm in the wallet
    assert "setTimeout(poll, 1000)" not in page.text


def test_it_stops_the_pay_pages_polls_soon_after_an_order_that_expires_sooner_is_swept(shop, live_server):
    payer, page, order = _pay_page(shop, live_server)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() + dt.timedelta(seconds=60))
    poll = _poll(payer.get(page.url, timeout=10).text)
    # Up to the expiry and the sweep's next run (a minute after): about 120 s at 3 s, not five minutes.
    sweep_ms = 60_000 + views_payer.EXPIRY_SWEEP_MARGIN_MS
    assert sweep_ms - 5_000 <= poll["max_polls"] * poll["interval_ms"] <= sweep_ms + poll["interval_ms"]
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=5))
    late = _poll(payer.get(page.url, timeout=10).text)  # past expiry, not swept yet: still a minute to see it close
    assert late["max_polls"] == views_payer.RESULT_POLLS


def test_it_tells_the_payer_in_both_languages_when_the_pay_page_stops_polling_and_offers_to_check_again(
        shop, live_server):
    _, page, _ = _pay_page(shop, live_server)
    waiting = re.search(r'<div id="still-pending" hidden>(.*?)</div>', page.text, re.S)
    assert waiting, "no message for when the polls run out"
    assert "尚未收到付款结果" in waiting.group(1) and "No payment result yet" in waiting.group(1)
    assert re.search(r'<button type="button" id="check-again"[^>]*>再次查看 Check again</button>', waiting.group(1))

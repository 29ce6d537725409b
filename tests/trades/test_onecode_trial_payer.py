"""The payer pages after a trial of one-code-pay (merchant-api.md "Payer-facing pages"): an amount too large names the
range this shop takes, however large it is — ¥1,000,000 named it, ¥99,999,999 only said "too large" —, and a result
page of an order that was not paid says its state in Chinese as well as English. Live HTTP against live_server and
the simulators."""

from __future__ import annotations

import html
import re

import pytest

from aggpay.errors import InvalidRequest
from aggpay.money import format_yuan
from channels.models import ChannelProduct
from tests.trades.onecode_flow import UA_WECHAT, enter_amount, phone, scan_and_authorise, store_code_for
from trades.models import Order
from trades.onecode.services import MAX_AMOUNT_FEN, parse_amount
from trades.services.cashier import cashier_token
from trades.services.orders import order_close

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


def _alert(page_html: str) -> str:
    return html.unescape(re.search(r'<p class="error" role="alert">(.*?)</p>', page_html, re.S).group(1))


@pytest.mark.parametrize("amount", ["1000000", "99999999", "999999999.99"])
def test_an_amount_too_large_names_the_range_the_shop_takes(shop, live_server, amount):
    offer = ChannelProduct.objects.get(account=shop.accounts["wechatpay"], product="wechat.jsapi")
    low, high = format_yuan(offer.min_amount), format_yuan(offer.max_amount)
    payer = phone(UA_WECHAT)

    answer = enter_amount(payer, scan_and_authorise(payer, live_server.url, store_code_for(shop).code), amount)

    assert answer.status_code == 422
    alert = _alert(answer.text)
    assert f"¥{low}–¥{high}" in alert and f"¥{low} to ¥{high}" in alert, alert
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_an_amount_too_large_without_an_account_names_the_highest_a_payer_page_takes():
    with pytest.raises(InvalidRequest) as caught:
        parse_amount("99999999")
    assert caught.value.param == "amount"
    assert f"¥{format_yuan(MAX_AMOUNT_FEN)}" in caught.value.message and "金额" in caught.value.message


def test_a_closed_orders_result_page_says_its_state_in_chinese_and_english(shop, live_server):
    payer = phone(UA_WECHAT)
    enter_amount(payer, scan_and_authorise(payer, live_server.url, store_code_for(shop).code), "2.20")
    order = order_close(order_id=Order.objects.get(merchant=shop.merchant).pk)
    assert order.state == "closed"

    page = payer.get(f"{live_server.url}/pay/{cashier_token(order.pk)}", timeout=10)

    result = re.search(r'<h1 class="bad" id="result" data-state="closed">(.*?)</h1>', page.text).group(1)
    assert result == "未支付 Not paid（已关闭 Closed）"

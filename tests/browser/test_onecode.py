"""One-code-pay in a real browser (issue 5 "How it is checked"): a payer's WeChat or Alipay opens a store code,
goes through the wallet's OAuth on the simulator, types the amount, pays with the wallet stand-in, sees success."""

from __future__ import annotations

import re

import pytest

from tests.trades.conftest import shop  # noqa: F401  the Tea House persona contracted on all three simulators
from tests.trades.onecode_flow import UA_ALIPAY, UA_WECHAT, route_wallets_to_the_bank, store_code_for
from trades.models import Order
from trades.services.cashier import cashier_token

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("payer_on_plain_http")]


@pytest.mark.parametrize("routed_to", ["isv", "bank"])  # the bank: indirect mode, as the demo routes (bank.md §6.2)
@pytest.mark.parametrize(("user_agent", "product", "amount", "fen"), [
    (UA_WECHAT, "wechat.jsapi", "18.80", 1880),
    (UA_ALIPAY, "alipay.jsapi", "6.5", 650),
], ids=["wechat", "alipay"])
def test_a_payer_scans_a_store_code_pays_and_sees_success(browser, shop, live_server, user_agent,  # noqa: F811
                                                          product, amount, fen, routed_to):
    if routed_to == "bank":
        route_wallets_to_the_bank(shop)
    code = store_code_for(shop, name="Lakeside tea room")
    context = browser.new_context(user_agent=user_agent, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
        assert page.get_by_text("Lakeside tea room").is_visible()
        assert page.locator('input[name="attempt"]').get_attribute("value")  # the form's one-time token
        page.fill("#amount", amount)
        page.click("#pay")
        page.wait_for_url(re.compile(r"/pay/[^/]+$"))
        standin = page.locator("#standin-pay")
        standin.wait_for(state="visible")
        standin.click()
        page.locator('#result[data-state="succeeded"]').wait_for(timeout=20_000)
        assert "支付成功" in page.locator("#result").inner_text()
        order = Order.objects.get(merchant=shop.merchant, channel_product=product)
        assert order.state == "succeeded" and order.amount == fen and order.store_id == "S001"
        assert order.channel_account == shop.accounts["wechatpay" if product == "wechat.jsapi" else "alipay"] \
            if routed_to == "isv" else shop.accounts["bank"]
    finally:
        context.close()


def test_a_double_tap_on_pay_makes_one_order(browser, shop, live_server):  # noqa: F811
    code = store_code_for(shop)
    context = browser.new_context(user_agent=UA_WECHAT, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
        page.fill("#amount", "3.30")
        page.dblclick("#pay")  # both submits may reach the server; they carry the same attempt token
        page.wait_for_url(re.compile(r"/pay/[^/]+$"))
        page.locator("#standin-pay").wait_for(state="visible")
        order = Order.objects.get(merchant=shop.merchant)
        # The fragment of WeChat's OAuth URL (#wechat_redirect) stays in the address bar through the redirects.
        assert order.amount == 330 and page.url.split("#")[0] == f"{live_server.url}/pay/{cashier_token(order.pk)}"
    finally:
        context.close()


def test_an_ordinary_browser_is_told_to_scan_with_a_wallet(browser, shop, live_server):  # noqa: F811
    code = store_code_for(shop)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        assert page.locator("#scan-with").is_visible()
        assert "云闪付" in page.content()
    finally:
        context.close()

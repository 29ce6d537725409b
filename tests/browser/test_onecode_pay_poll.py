"""The payer's pay page in a real browser (merchant-api.md "Payer-facing pages", channel-protocols.md §E): it asks
the status endpoint at the result page's interval a bounded number of times, so a tab left open stops polling and
says so in Chinese and English, with a button that checks again; and a payment whose notification is held back still
shows as paid, through the status endpoint's query of the channel."""

from __future__ import annotations

import re

import pytest

from tests.trades.conftest import shop  # noqa: F401  the Tea House persona contracted on all three simulators
from tests.trades.onecode_flow import UA_ALIPAY, UA_WECHAT, store_code_for
from trades.models import Order
from trades.onecode import views_payer
from trades.services.cashier import cashier_token

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("payer_on_plain_http", "quiet_channels")]


def _to_pay_page(browser, live_server, shop, amount: str, user_agent: str = UA_WECHAT):  # noqa: F811
    code = store_code_for(shop)
    context = browser.new_context(user_agent=user_agent, viewport={"width": 390, "height": 844})
    page = context.new_page()
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/status") else None)
    page.goto(f"{live_server.url}/c/{code.code}")
    page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
    page.fill("#amount", amount)
    page.click("#pay")
    page.wait_for_url(re.compile(r"/pay/[^/#]+(#.*)?$"))
    page.locator('#status[data-state="pending"]').wait_for()
    return context, page, polls


def test_a_pay_page_left_open_stops_polling_says_so_and_checks_again_on_request(browser, shop, live_server,  # noqa: F811
                                                                                settings, monkeypatch):
    # No stand-in and no wallet bridge in this browser: the page polls from the start (the payer may be confirming
    # in the wallet), and nobody pays.
    settings.AGGPAY_PAYER_STANDIN = False
    monkeypatch.setattr(views_payer, "PAY_POLLS", 3)
    monkeypatch.setattr(views_payer, "RESULT_POLL_INTERVAL_MS", 100)
    context, page, polls = _to_pay_page(browser, live_server, shop, "4.40")
    try:
        order = Order.objects.get(merchant=shop.merchant)
        status_url = f"{live_server.url}/pay/{cashier_token(order.pk)}/status"
        waiting = page.locator("#still-pending")
        waiting.wait_for(state="visible")
        assert polls == [status_url] * 3  # and no more: the page has stopped asking
        assert "尚未收到付款结果" in waiting.inner_text() and "No payment result yet" in waiting.inner_text()
        page.click("#check-again")  # hides the message at once (in the click's handler) and starts a round
        assert not waiting.is_visible()
        waiting.wait_for(state="visible")
        assert polls == [status_url] * 6  # one more bounded round
        assert page.locator('#status[data-state="pending"]').is_visible()
        assert Order.objects.get(pk=order.pk).state == "pending"
    finally:
        context.close()


def test_a_pay_page_shows_a_payment_whose_notification_is_held_back(browser, shop, live_server):  # noqa: F811
    context, page, polls = _to_pay_page(browser, live_server, shop, "5.50")
    try:
        # The payer confirms in the (stand-in) wallet; WeChat's notification is held back (a slow or lost notify).
        shop.sim("wechatpay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=600,
                 times=1)
        page.locator("#standin-pay").wait_for(state="visible")
        page.click("#standin-pay")
        page.locator('#result[data-state="succeeded"]').wait_for(timeout=30_000)
        order = Order.objects.get(merchant=shop.merchant)
        assert order.state == "succeeded" and polls  # learnt through the status endpoint's query of the channel
    finally:
        context.close()


@pytest.mark.parametrize(("ready", "bridge", "call"), [
    ("WeixinJSBridgeReady", "WeixinJSBridge", "invoke"),
    ("AlipayJSBridgeReady", "AlipayJSBridge", "call"),
])
def test_the_wallets_payment_sheet_opens_when_its_bridge_arrives_after_the_page(browser, shop, live_server,  # noqa: F811
                                                                             settings, ready, bridge, call):
    # In the real wallets the bridge is injected when it is ready, often after the page's scripts ran, and
    # announced by an event on document: the page must open the payment sheet then, not only poll.
    settings.AGGPAY_PAYER_STANDIN = False
    user_agent = UA_WECHAT if bridge == "WeixinJSBridge" else UA_ALIPAY
    context, page, _ = _to_pay_page(browser, live_server, shop, "6.60", user_agent=user_agent)
    try:
        page.evaluate("""([bridge, call, ready]) => {
            window.__opened = [];
            window[bridge] = {[call]: (name, params, answer) => { window.__opened.push([name, params]); }};
            document.dispatchEvent(new Event(ready));
        }""", [bridge, call, ready])
        opened = page.evaluate("window.__opened")
        sent = page.evaluate('JSON.parse(document.getElementById("bridge").textContent)')
        if bridge == "WeixinJSBridge":
            assert opened == [["getBrandWCPayRequest", sent["jsapi"]]]
        else:
            assert opened == [["tradePay", {"tradeNO": sent["trade_no"]}]]
    finally:
        context.close()


@pytest.mark.parametrize("how", ["store code", "cashier"])
def test_a_double_tapped_pay_button_still_opens_the_wallet_hand_off(browser, shop, live_server, monkeypatch, how):  # noqa: F811
    # The channel takes three seconds to answer the create; the payer taps Pay again meanwhile. The browser shows the
    # second submit's answer — the same order (one order per form), whose hand-off is not there yet: the page it
    # lands on must go on to the hand-off when it is, not poll for a minute and say "still processing".
    monkeypatch.setattr(views_payer, "RESULT_POLL_INTERVAL_MS", 300)
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=3, times=1,
             match={"path": "transactions/jsapi"})
    context = browser.new_context(user_agent=UA_WECHAT, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        if how == "store code":
            code = store_code_for(shop)
            page.goto(f"{live_server.url}/c/{code.code}")
            page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
            page.fill("#amount", "7.70")
        else:
            status, _, created = shop.client.request("POST", "/api/v1/orders", json={
                "out_trade_no": "TAP00001", "amount": 770, "product": "cashier", "subject": "Tea"})
            assert status == 201, created
            page.goto(created["pay_params"]["cashier_url"])
            page.locator("#fixed-amount").wait_for()
        # Two taps a second apart, from the page itself (as a person makes them: neither waits for an answer).
        page.evaluate("""() => {
            const pay = document.getElementById("pay");
            setTimeout(() => pay.click(), 0);
            setTimeout(() => pay.click(), 1000);
        }""")
        page.locator("#standin-pay").wait_for(state="visible", timeout=15_000)
        order = Order.objects.get(merchant=shop.merchant)
        assert order.amount == 770 and order.channel_calls.filter(verb="create").count() == 1
        assert page.locator('#status[data-state="pending"]').is_visible()
    finally:
        context.close()

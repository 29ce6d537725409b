"""The pay page when the payer cancels in the wallet, or the wallet fails the payment (channel-protocols.md §E: WeChat's
``getBrandWCPayRequest`` answers ``err_msg`` ``get_brand_wcpay_request:cancel`` / ``:fail``, Alipay's ``tradePay`` a
``resultCode`` ``6001`` / ``4000``). The page says so in Chinese and English and offers to pay again — the wallet
opened once more with the same order's parameters — instead of "Confirm in your wallet…" for five minutes; and it
keeps asking our server, so a payment that went through after all still shows as paid. A real browser with the
wallet's JS bridge faked (it answers what the test says), against live_server and the channel simulators."""

from __future__ import annotations

import re

import pytest

from tests.trades.conftest import shop  # noqa: F401  the Tea House persona contracted on all three simulators
from tests.trades.onecode_flow import UA_ALIPAY, UA_WECHAT, store_code_for
from trades.models import Order
from trades.onecode import views_payer

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("payer_on_plain_http", "quiet_channels")]

# The wallets' bridges as the page meets them inside the app: there when its scripts run. Each opening of the payment
# sheet is recorded, and the sheet answers the next of window.__answers.
FAKE_BRIDGES = """
window.__opened = []; window.__answers = %s;
window.WeixinJSBridge = {invoke: function (name, params, done) {
  window.__opened.push([name, params]);
  var answer = window.__answers.shift();
  setTimeout(function () { done({err_msg: answer}); }, 50);
}};
window.AlipayJSBridge = {call: function (name, params, done) {
  window.__opened.push([name, params]);
  var answer = window.__answers.shift();
  setTimeout(function () { done({resultCode: answer}); }, 50);
}};
"""

WALLETS = {
    "wechat": (UA_WECHAT, ["get_brand_wcpay_request:cancel", "get_brand_wcpay_request:fail"]),
    "alipay": (UA_ALIPAY, ["6001", "4000"]),
}


@pytest.mark.parametrize("wallet", ["wechat", "alipay"])
def test_a_payer_who_cancels_in_the_wallet_is_told_so_and_can_pay_again(browser, shop, live_server,  # noqa: F811
                                                                        settings, monkeypatch, wallet):
    settings.AGGPAY_PAYER_STANDIN = False  # the wallet's own bridge, as in the app
    monkeypatch.setattr(views_payer, "RESULT_POLL_INTERVAL_MS", 300)
    user_agent, (cancel, fail) = WALLETS[wallet]
    code = store_code_for(shop)
    context = browser.new_context(user_agent=user_agent, viewport={"width": 390, "height": 844})
    context.add_init_script(FAKE_BRIDGES % f'["{cancel}", "{fail}"]')
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
        page.fill("#amount", "9.90")
        page.click("#pay")
        page.wait_for_url(re.compile(r"/pay/[^/#]+(#.*)?$"))
        sent = page.evaluate('JSON.parse(document.getElementById("bridge").textContent)')
        sheet = (["getBrandWCPayRequest", sent["jsapi"]] if wallet == "wechat"
                 else ["tradePay", {"tradeNO": sent["trade_no"]}])

        # The payer closes the sheet: cancelled.
        status = page.locator('#status[data-outcome="cancel"]')
        status.wait_for()
        assert status.inner_text() == "已取消 You cancelled the payment."
        again = page.locator("#pay-again")
        assert again.is_visible() and "再次付款" in again.inner_text() and "Pay again" in again.inner_text()
        assert page.evaluate("window.__opened") == [sheet]

        # Pay again: the same order's parameters; this time the wallet fails it.
        again.click()
        page.locator('#status[data-outcome="fail"]').wait_for()
        assert "支付未完成" in page.locator("#status").inner_text()
        assert "The payment was not completed" in page.locator("#status").inner_text()
        assert page.evaluate("window.__opened") == [sheet, sheet] and again.is_visible()
        order = Order.objects.get(merchant=shop.merchant)
        assert order.state == "pending" and order.channel_calls.filter(verb="create").count() == 1

        # The payment went through after all (the wallet's answer is not the result): the page, still asking our
        # server in the background, shows it.
        if wallet == "wechat":
            shop.sim("wechatpay", "/_payer/pay", prepay_id=sent["prepay_id"], jsapi=sent["jsapi"])
        else:
            shop.sim("alipay", "/_payer/pay", trade_no=sent["trade_no"])
        page.locator('#result[data-state="succeeded"]').wait_for(timeout=30_000)
        assert Order.objects.get(pk=order.pk).state == "succeeded"
    finally:
        context.close()


def test_a_payer_whose_wallet_says_paid_is_not_offered_to_pay_again(browser, shop, live_server,  # noqa: F811
                                                                    settings):
    settings.AGGPAY_PAYER_STANDIN = False
    code = store_code_for(shop)
    context = browser.new_context(user_agent=UA_WECHAT, viewport={"width": 390, "height": 844})
    context.add_init_script(FAKE_BRIDGES % '["get_brand_wcpay_request:ok"]')
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
        page.fill("#amount", "9.90")
        page.click("#pay")
        page.wait_for_url(re.compile(r"/pay/[^/#]+(#.*)?$"))
        page.wait_for_function("window.__opened.length === 1 && window.__answers.length === 0")
        page.wait_for_timeout(200)  # the sheet's answer (50 ms) has come
        assert not page.locator("#pay-again").is_visible()
        assert page.locator("#status").inner_text() == "请在钱包中确认付款 Confirm in your wallet…"
    finally:
        context.close()

"""The payer's result page in a real browser (merchant-api.md "Payer-facing pages"): a pending order is checked
through the status endpoint, which asks the channel, so a payment whose notification has not arrived still shows as
paid; the checks stop after a bounded number and say the payment is still being processed. And the Pay button wears
the wallet's colour."""

from __future__ import annotations

import re

import pytest
import requests

from tests.trades.conftest import shop  # noqa: F401  the Tea House persona contracted on all three simulators
from tests.trades.onecode_flow import UA_ALIPAY, UA_UNIONPAY, UA_WECHAT, store_code_for
from trades.models import Order
from trades.onecode import views_payer
from trades.services.cashier import cashier_token

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("payer_on_plain_http", "quiet_channels")]


def _phone(browser, user_agent):
    return browser.new_context(user_agent=user_agent, viewport={"width": 390, "height": 844})


def test_a_pending_result_page_shows_a_payment_the_channel_has_not_notified_yet(browser, shop, live_server,  # noqa: F811
                                                                                settings):
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 1.0
    # WeChat creates the trade but answers too late: the order is pending with nothing to hand to the wallet, so
    # the payer lands on the result page (design §5 rule 2: a timeout is unknown, never failed).
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=2.0, times=1,
             match={"path": "transactions/jsapi"})
    code = store_code_for(shop)
    context = _phone(browser, UA_WECHAT)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
        page.fill("#amount", "7.70")
        page.click("#pay")
        page.locator('#result[data-state="pending"]').wait_for()
        order = Order.objects.get(merchant=shop.merchant)
        assert order.state == "pending" and "prepay_id" not in order.pay_params
        # The payer pays in the wallet; WeChat's notification is held back (a slow or lost notify).
        shop.sim("wechatpay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=600,
                 times=1)
        # The wallet pays once WeChat has the trade (its late answer to our create is still on its way).
        shop.wait_for(lambda: requests.post(f"{shop.root}/wechatpay/_payer/pay", timeout=10, json={
            "out_trade_no": order.pk, "outcome": "success"}).status_code == 200, message="the payment")
        page.locator('#result[data-state="succeeded"]').wait_for(timeout=30_000)
        assert Order.objects.get(pk=order.pk).state == "succeeded"
    finally:
        context.close()


def test_a_result_page_that_stays_pending_stops_checking_and_says_so(browser, shop, live_server,  # noqa: F811
                                                                     monkeypatch):
    monkeypatch.setattr(views_payer, "RESULT_POLLS", 3)
    monkeypatch.setattr(views_payer, "RESULT_POLL_INTERVAL_MS", 100)
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHPOL1", "amount": 500, "product": "cashier", "subject": "Tea"})
    token = cashier_token(created["id"])
    context = _phone(browser, UA_WECHAT)
    page = context.new_page()
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/status") else None)
    try:
        page.goto(f"{live_server.url}/pay/{token}")
        page.locator("#still-pending").wait_for(state="visible")
        assert "Still processing" in page.locator("#still-pending").inner_text()
        assert polls == [f"{live_server.url}/pay/{token}/status"] * 3
        assert page.locator('#result[data-state="pending"]').is_visible()
    finally:
        context.close()


@pytest.mark.parametrize(("user_agent", "colour"), [
    (UA_WECHAT, "rgb(7, 193, 96)"), (UA_ALIPAY, "rgb(22, 119, 255)"), (UA_UNIONPAY, "rgb(230, 0, 18)")],
    ids=["wechat", "alipay", "unionpay"])
def test_the_pay_button_is_in_the_wallets_colour(browser, shop, live_server, user_agent, colour):  # noqa: F811
    code = store_code_for(shop)
    context = _phone(browser, user_agent)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{code.code}")
        page.wait_for_url(re.compile(rf"/c/{code.code}/pay"))
        assert page.eval_on_selector("#pay", "b => getComputedStyle(b).backgroundColor") == colour
    finally:
        context.close()

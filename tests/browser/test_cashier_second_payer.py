"""A cashier link in two people's WeChat, in a real browser (issue 5 "One-code-pay", channel-protocols.md §E): the
first to press Pay gets the wallet hand-off; the second, opening the same link, reads that someone else is paying it
— no hand-off, no stand-in — and once the first has paid, that it was paid, not "支付成功"."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from tests.trades.conftest import shop  # noqa: F401  the Tea House persona contracted on all three simulators
from tests.trades.onecode_flow import UA_WECHAT
from trades.models import Order

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("payer_on_plain_http")]


def _wechat_user(browser, who: str):
    """A phone whose WeChat is logged in as ``who``: the WeChat simulator's OAuth reads it from ``payer``, added to
    our page's redirect there (Playwright routes only the first request of a redirect chain)."""
    context = browser.new_context(user_agent=UA_WECHAT, viewport={"width": 390, "height": 844})

    def to_oauth_as_who(route):
        response = route.fetch(max_redirects=0)
        location = response.headers.get("location", "")
        if "/wechatpay/_oauth/authorize?" not in location:
            return route.fulfill(response=response)
        url, _, fragment = location.partition("#")
        headers = {**response.headers, "location": f"{url}&{urlencode({'payer': who})}#{fragment}"}
        return route.fulfill(response=response, headers=headers)

    context.route(re.compile(r"/cashier/[^/?#]+$"), to_oauth_as_who)
    return context


def test_the_second_person_to_open_a_cashier_link_is_told_someone_else_is_paying_it(browser, shop,  # noqa: F811
                                                                                     live_server):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHB2P1", "amount": 1800, "product": "cashier", "subject": "Tea set"})
    assert status == 201, created
    url = created["pay_params"]["cashier_url"]
    alice, bob = _wechat_user(browser, "alice"), _wechat_user(browser, "bob")
    try:
        first = alice.new_page()
        first.goto(url)
        first.click("#pay")
        first.wait_for_url(re.compile(r"/pay/[^/#]+(#.*)?$"))
        first.locator("#standin-pay").wait_for(state="visible")

        second = bob.new_page()
        second.goto(url)
        message = second.locator('#message[data-reason="other_payer"]')
        assert "此订单已由他人发起付款" in message.inner_text() and "by someone else" in message.inner_text()
        assert second.locator("#standin, #bridge, #pay").count() == 0
        assert Order.objects.get(pk=created["id"]).pay_params["prepay_id"] not in second.content()

        first.locator("#standin-pay").click()
        first.locator('#result[data-state="succeeded"]').wait_for(timeout=20_000)
        assert "支付成功" in first.locator("#result").inner_text()

        second.reload()
        result = second.locator('#result[data-state="succeeded"]')
        assert "此订单已付款" in result.inner_text() and "支付成功" not in second.content()
        assert "CASHB2P1" not in second.content()  # the merchant's order number is the payer's to see
    finally:
        alice.close()
        bob.close()

"""A cashier order's payer is logged in (the wallet's OAuth) at the account routing picks for the order's amount, and
the order may only go there (channel-protocols.md §E: a WeChat openid belongs to one appid). The session keeps that
login; when that account stops taking the order before the payer presses Pay, a fresh load of the cashier page logs
them in again at an account that takes it — as a store code's amount page does (views_payer._current_payer) —
instead of "try another wallet" for the rest of the session while this wallet can pay. While the account still takes
it, the payer stays logged in there (test_onecode_accounts: a cheaper account contracted meanwhile changes nothing)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore

from channels.models import ChannelProduct
from tests.trades.onecode_flow import UA_WECHAT, bridge, enter_amount, phone
from tests.trades.test_onecode_accounts import _second_wechat_account
from trades.models import Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


def _logged_in_at(payer, order_id: str) -> int:
    session = SessionStore(session_key=payer.cookies["sessionid"]).load()
    return session["onecode"]["payers"]["o:" + order_id]["a"]


def test_a_cashier_payer_whose_account_stopped_taking_the_wallet_logs_in_again_at_one_that_does(shop, live_server):
    first = shop.accounts["wechatpay"]
    second = _second_wechat_account(shop, cost_rate="0.0030")  # dearer: routing picks the first while it can
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHRE01", "amount": 1000, "product": "cashier", "subject": "Tea"})
    url = created["pay_params"]["cashier_url"]
    payer = phone(UA_WECHAT)
    assert payer.get(url, timeout=10).status_code == 200 and _logged_in_at(payer, created["id"]) == first.pk

    offer = ChannelProduct.objects.get(account=first, product="wechat.jsapi")
    offer.enabled = False  # ops take WeChat JSAPI off the first account while the payer looks at the page
    offer.save()

    again = payer.get(url, timeout=10)  # the payer reloads, or opens the link again
    assert again.status_code == 200 and "10.00" in again.text
    assert any(f"appid={second.config['sp_appid']}" in r.headers.get("Location", "") for r in again.history)
    assert _logged_in_at(payer, created["id"]) == second.pk
    pay_page = enter_amount(payer, again, "")
    order = Order.objects.get(pk=created["id"])
    assert pay_page.status_code == 200, pay_page.text[-600:]
    assert order.channel_account_id == second.pk and order.state == "pending" and order.pay_params["prepay_id"]
    assert bridge(pay_page.text)["prepay_id"] == order.pay_params["prepay_id"]


def test_a_cashier_payer_stays_logged_in_where_they_were_while_that_account_still_takes_the_order(shop, live_server):
    first = shop.accounts["wechatpay"]
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHRE02", "amount": 1000, "product": "cashier", "subject": "Tea"})
    url = created["pay_params"]["cashier_url"]
    payer = phone(UA_WECHAT)
    assert payer.get(url, timeout=10).status_code == 200 and _logged_in_at(payer, created["id"]) == first.pk
    _second_wechat_account(shop, cost_rate="0.0010")  # cheaper: routing alone would now pick it
    again = payer.get(url, timeout=10)
    assert again.status_code == 200 and not again.history  # no second trip through the wallet's OAuth
    enter_amount(payer, again, "")
    assert Order.objects.get(pk=created["id"]).channel_account_id == first.pk

"""One-code-pay and cashier pages tried as a payer, and as a hostile one — issue 5 "One-code-pay",
channel-protocols.md §E. Live HTTP against live_server and the simulators' OAuth and payer endpoints."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from merchants.models import Merchant
from tests.trades.onecode_flow import (
    UA_SAFARI,
    UA_WECHAT,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from tests.trades.test_onecode_accounts import _oauth_account_id, _second_wechat_account
from trades.models import ChannelCall, Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


# --- a returning payer after the merchant changed accounts -------------------------------------------------------
def test_a_returning_payer_is_logged_in_again_at_the_account_the_shop_now_uses_and_pays(shop, live_server):
    old = shop.accounts["wechatpay"]
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    scan_and_authorise(payer, live_server.url, code.code)  # a regular: their browser remembers them at ``old``
    assert _oauth_account_id(payer, code.code) == old.pk
    old.enabled = False  # ops retire the old account; the merchant's new contract is at another one
    old.save()
    new = _second_wechat_account(shop, cost_rate="0.0030")

    again = payer.get(f"{live_server.url}/c/{code.code}", timeout=10)  # the next visit to the shop
    assert any("_oauth/authorize" in r.url for r in again.history)  # a silent login at the new account
    assert _oauth_account_id(payer, code.code) == new.pk
    paid = enter_amount(payer, again, "6.00")
    assert paid.status_code == 200 and "/pay/" in paid.url
    order = Order.objects.get(merchant=shop.merchant)
    assert order.channel_account_id == new.pk and order.amount == 600 and order.state == "pending"


def test_an_amount_page_reloaded_after_the_account_changed_logs_the_payer_in_again(shop, live_server):
    old = shop.accounts["wechatpay"]
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    scan_and_authorise(payer, live_server.url, code.code)
    old.enabled = False
    old.save()
    new = _second_wechat_account(shop, cost_rate="0.0030")
    reloaded = payer.get(f"{live_server.url}/c/{code.code}/pay", timeout=10)
    assert reloaded.status_code == 200 and 'name="amount"' in reloaded.text
    assert _oauth_account_id(payer, code.code) == new.pk


# --- merchants that may not trade ---------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["frozen", "closed"])
def test_a_code_of_a_merchant_that_may_not_trade_says_so_before_the_wallet_login_and_names_nothing(
        shop, live_server, state):
    code = store_code_for(shop)
    Merchant.objects.filter(pk=shop.merchant.pk).update(state=state)
    for user_agent in (UA_WECHAT, UA_SAFARI):
        page = phone(user_agent).get(f"{live_server.url}/c/{code.code}", timeout=10)
        assert page.status_code == 403 and "This shop is not taking payments right now" in page.text
        assert not page.history  # no trip through the wallet's OAuth, no amount to type
        assert shop.merchant.merchant_no not in page.text and state not in page.text
    assert not ChannelCall.objects.exists()


def test_an_open_amount_page_of_a_merchant_frozen_meanwhile_does_not_name_the_merchant_or_why(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    Merchant.objects.filter(pk=shop.merchant.pk).update(state="frozen")
    refused = enter_amount(payer, amount_page, "5")
    assert refused.status_code == 403 and "This shop is not taking payments right now" in refused.text
    assert shop.merchant.merchant_no not in refused.text and "frozen" not in refused.text
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_a_cashier_page_of_a_frozen_merchant_says_so_before_the_wallet_login(shop, live_server):
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHFRZ1", "amount": 2500, "product": "cashier", "subject": "Tea set"})
    Merchant.objects.filter(pk=shop.merchant.pk).update(state="frozen")
    page = phone(UA_WECHAT).get(created["pay_params"]["cashier_url"], timeout=10)
    assert page.status_code == 403 and "This shop is not taking payments right now" in page.text
    assert not page.history and shop.merchant.merchant_no not in page.text


def test_a_pay_page_reopened_after_the_merchant_was_frozen_hands_nothing_to_the_wallet(shop, live_server):
    # The order was created and routed while the shop could trade; risk froze it before the payer confirmed. The pay
    # page is ours: it no longer hands the wallet what it needs to pay (design §4: a frozen merchant may not trade).
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    pay_page = enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "8.00")
    assert pay_page.status_code == 200 and "/pay/" in pay_page.url and "prepay_id" in pay_page.text
    Merchant.objects.filter(pk=shop.merchant.pk).update(state="frozen")

    again = payer.get(pay_page.url, timeout=10)

    assert again.status_code == 403 and "This shop is not taking payments right now" in again.text
    assert "prepay_id" not in again.text and "paySign" not in again.text
    assert shop.merchant.merchant_no not in again.text and "frozen" not in again.text
    Merchant.objects.filter(pk=shop.merchant.pk).update(state="active")  # unfrozen: the same order can be paid
    assert "prepay_id" in payer.get(pay_page.url, timeout=10).text


# --- the cashier link of an order past its expiry -----------------------------------------------------------------
def test_a_cashier_link_past_the_orders_expiry_says_it_expired_before_the_wallet_login(shop, live_server):
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHEXP1", "amount": 2500, "product": "cashier", "subject": "Tea set",
        "expire_seconds": 120})
    # Past its expiry, and the minute's expiry sweep has not closed it yet.
    Order.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=5))
    page = phone(UA_WECHAT).get(created["pay_params"]["cashier_url"], timeout=10)
    assert page.status_code == 410 and "This order has expired" in page.text
    assert not page.history and 'id="pay"' not in page.text  # no wallet login, no Pay button that cannot work
    order = Order.objects.get(pk=created["id"])
    assert order.state == "pending" and order.channel_account_id is None and not ChannelCall.objects.exists()


# --- a cashier order whose create at the channel timed out -------------------------------------------------------
@pytest.mark.usefixtures("quiet_channels")
def test_a_cashier_order_whose_create_timed_out_shows_processing_not_a_wallet_hand_off_with_nothing_to_pay(
        shop, live_server, settings):
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 1.0
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHTMO1", "amount": 2500, "product": "cashier", "subject": "Tea set"})
    shop.sim("wechatpay", "/_control/faults", fault="timeout", seconds=2.0, match={"path": "transactions/jsapi"})
    payer = phone(UA_WECHAT)
    answer = enter_amount(payer, payer.get(created["pay_params"]["cashier_url"], timeout=10), "")
    order = Order.objects.get(pk=created["id"])
    assert order.state == "pending" and order.sync_state == "unknown" and "prepay_id" not in order.pay_params
    # No prepay_id to hand to WeixinJSBridge: the payer is told it is being processed (the ladder settles it).
    assert answer.status_code == 200 and 'id="bridge"' not in answer.text
    assert 'data-state="pending"' in answer.text and "Processing" in answer.text

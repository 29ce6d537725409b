"""Whose OAuth learns the payer id when a store code's order goes to a bank (channel-protocols.md §E).

The bank's userAuth (docs/channels/bank.md §10) logs in UnionPay payers only. A WeChat payer's openid must belong to
the appid the bank order names (the contract's ``sub_appid``, bank.md §6.2), so it comes from WeChat OAuth under
that appid — our WeChat Pay ISV account's; an Alipay payer's buyer id from our Alipay app's OAuth. The order still
goes to the bank. A bank whose appid is none of our WeChat accounts' cannot take WeChat payers and is passed over."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from channels.models import ChannelProduct
from merchants.models import Contract
from tests.trades.onecode_flow import (
    UA_ALIPAY,
    UA_UNIONPAY,
    UA_WECHAT,
    enter_amount,
    phone,
    route_wallets_to_the_bank,
    store_code_for,
)
from trades.models import Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


@pytest.fixture
def bank_wallets(shop):
    route_wallets_to_the_bank(shop)
    return shop


def _with(url: str, **params) -> str:
    """``url`` with more query parameters (before a ``#wechat_redirect`` fragment)."""
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}{hash_}{fragment}"


def _scan_as(session, base_url: str, code: str, **who):
    """Open /c/<code>; at the wallet's OAuth page say who the payer is (the simulators' stand-in for the wallet's
    logged-in user); back on our amount page. Returns (the OAuth URL we sent the payer to, the amount page)."""
    start = session.get(f"{base_url}/c/{code}", timeout=10, allow_redirects=False)
    assert start.status_code == 302, start.text[:500]
    oauth_url = start.headers["Location"]
    amount_page = session.get(_with(oauth_url, **who), timeout=10)
    assert amount_page.status_code == 200 and "/pay" in amount_page.url, amount_page.text[:500]
    return oauth_url, amount_page


def _wechat_openid(shop, appid: str, payer: str) -> str:
    """The openid WeChat's OAuth (the simulator) gives ``payer`` under ``appid``, asked as a wallet would."""
    wechat = shop.accounts["wechatpay"]
    authorize = phone(UA_WECHAT).get(_with(wechat.config["oauth_authorize_url"].rstrip("/"), appid=appid,
                                           redirect_uri="https://example.test/back", response_type="code",
                                           scope="snsapi_base", payer=payer), timeout=10, allow_redirects=False)
    code = parse_qs(urlparse(authorize.headers["Location"]).query)["code"][0]
    return wechat.adapter().oauth_payer_id(code=code)


def test_it_logs_a_wechat_payer_of_a_bank_order_in_through_wechat_oauth_under_the_contracts_appid(bank_wallets):
    shop = bank_wallets
    wechat = shop.accounts["wechatpay"]
    appid = Contract.objects.get(merchant=shop.merchant, channel_account=shop.accounts["bank"]).sub_appid
    assert appid == wechat.config["sp_appid"]
    payer = phone(UA_WECHAT)

    oauth_url, amount_page = _scan_as(payer, shop.client.base_url, store_code_for(shop).code, payer="alice")
    pay_page = enter_amount(payer, amount_page, "12.34")

    # WeChat's snsapi_base under the appid, not UnionPay's login page.
    assert oauth_url.startswith(wechat.config["oauth_authorize_url"]) and "userAuth" not in oauth_url
    assert parse_qs(urlparse(oauth_url).query)["appid"] == [appid]
    assert pay_page.status_code == 200 and "/pay/" in pay_page.url, pay_page.text[:500]
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.channel_account == shop.accounts["bank"]
    assert order.payer == {"openid": _wechat_openid(shop, appid, "alice")}


def test_it_logs_an_alipay_payer_of_a_bank_order_in_through_our_alipay_apps_oauth(bank_wallets):
    shop = bank_wallets
    payer = phone(UA_ALIPAY)

    oauth_url, amount_page = _scan_as(payer, shop.client.base_url, store_code_for(shop).code,
                                      user_id="2088102177846880")
    pay_page = enter_amount(payer, amount_page, "8.80")

    assert parse_qs(urlparse(oauth_url).query)["app_id"] == [shop.accounts["alipay"].config["app_id"]]
    assert "userAuth" not in oauth_url
    assert pay_page.status_code == 200 and "/pay/" in pay_page.url, pay_page.text[:500]
    order = Order.objects.get(merchant=shop.merchant, product="alipay.jsapi")
    assert order.channel_account == shop.accounts["bank"]
    assert order.payer == {"buyer_id": "2088102177846880"}


def test_it_still_logs_a_unionpay_payer_in_through_the_banks_user_auth(bank_wallets):
    shop = bank_wallets
    payer = phone(UA_UNIONPAY)

    oauth_url, amount_page = _scan_as(payer, shop.client.base_url, store_code_for(shop).code)
    pay_page = enter_amount(payer, amount_page, "3")

    assert "/bank/_oauth/userAuth" in oauth_url
    assert pay_page.status_code == 200, pay_page.text[:500]
    order = Order.objects.get(merchant=shop.merchant, channel_product="unionpay.qr")
    assert order.channel_account == shop.accounts["bank"] and order.payer["user_id"]


def test_it_passes_over_a_bank_whose_appid_is_none_of_our_wechat_accounts_for_wechat_payers(bank_wallets):
    shop = bank_wallets
    bank = shop.accounts["bank"]
    Contract.objects.filter(merchant=shop.merchant, channel_account=bank).update(sub_appid="wx0000000000000000")
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)

    # The bank is cheaper and routing takes it for API orders, but no OAuth of ours gives an openid under its appid:
    # the payer pays at our WeChat ISV account, logged in through its own OAuth.
    oauth_url, amount_page = _scan_as(payer, shop.client.base_url, code.code)
    pay_page = enter_amount(payer, amount_page, "5")

    assert oauth_url.startswith(shop.accounts["wechatpay"].config["oauth_authorize_url"])
    assert pay_page.status_code == 200, pay_page.text[:500]
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.channel_account == shop.accounts["wechatpay"]

    # With nowhere else to go, the shop says it cannot take WeChat — not a UnionPay login inside WeChat.
    ChannelProduct.objects.filter(account=shop.accounts["wechatpay"], product="wechat.jsapi").update(enabled=False)
    refused = phone(UA_WECHAT).get(f"{shop.client.base_url}/c/{code.code}", timeout=10, allow_redirects=False)
    assert refused.status_code == 400 and "This shop does not take this wallet yet" in refused.text


def test_it_logs_a_cashier_orders_wechat_payer_in_through_wechat_oauth_when_the_order_goes_to_a_bank(bank_wallets):
    shop = bank_wallets
    wechat, bank = shop.accounts["wechatpay"], shop.accounts["bank"]
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHBANK1", "amount": 1000, "product": "cashier", "subject": "Tea"})
    url = created["pay_params"]["cashier_url"]
    payer = phone(UA_WECHAT)

    page = payer.get(url, timeout=10)
    pay_page = enter_amount(payer, page, "")

    assert any(f"appid={wechat.config['sp_appid']}" in r.headers.get("Location", "") for r in page.history)
    assert not any("userAuth" in r.headers.get("Location", "") for r in page.history)
    assert pay_page.status_code == 200, pay_page.text[-600:]
    order = Order.objects.get(pk=created["id"])
    assert order.channel_account == bank and order.channel_product == "wechat.jsapi"
    assert order.payer == {"openid": _wechat_openid(shop, wechat.config["sp_appid"], "demo-payer")}

    # The same WeChat user in a new session (another tab) is recognised as the order's payer through the same OAuth.
    again = phone(UA_WECHAT).get(url, timeout=10)
    assert again.status_code == 200 and "/pay/" in again.url, again.text[:500]

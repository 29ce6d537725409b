"""One-code-pay pays at the account that knows the payer — channel-protocols.md §E (a WeChat openid belongs to one
appid) and A.7 (``payer.sp_openid`` belongs to sp_appid, ``payer.sub_openid`` to sub_appid). Live HTTP against
live_server and the simulators, whose OAuth remembers which appid each openid was issued for."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.sessions.backends.db import SessionStore

from channels.models import ChannelAccount, ChannelProduct
from channels.simulators import wechatpay as wechat_sim
from merchants.models import Contract, ContractRate
from tests.trades.onecode_flow import (
    UA_WECHAT,
    bridge,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from trades.models import Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


def _limit(account, max_amount: int) -> None:
    # Saved, not QuerySet.update: the save moves the front door's generation token, as ops' edits do.
    offer = ChannelProduct.objects.get(account=account, product="wechat.jsapi")
    offer.max_amount = max_amount
    offer.save()


def _second_wechat_account(shop, *, cost_rate: str, max_amount: int = 5_000_000) -> ChannelAccount:
    """Another WeChat Pay account (another sp_appid) with an active contract for the shop."""
    root = shop.root
    name = f"wx2{shop.accounts['wechatpay'].code[-8:]}"
    account = ChannelAccount.objects.create(code=f"{name}-2", kind="wechatpay", name=name, base_url=f"{root}/wechatpay",
                                            config=wechat_sim.provision(root, name=name), enabled=True)
    contract = Contract.objects.create(merchant=shop.merchant, channel_account=account, state="active",
                                       business_code=f"B{name}", sub_mchid="1900000109")
    ChannelProduct.objects.create(account=account, product="wechat.jsapi", cost_rate=Decimal(cost_rate),
                                  max_amount=max_amount)
    ContractRate.objects.create(contract=contract, product="wechat.jsapi", rate=Decimal("0.0038"))
    return account


def _oauth_account_id(payer, code: str) -> int:
    """The account whose wallet login (OAuth) gave the payer's session its openid."""
    session = SessionStore(session_key=payer.cookies["sessionid"]).load()
    return session["onecode"]["payers"]["c:" + code]["a"]


# --- which account logs the payer in, and where the order goes ----------------------------------------------------
def test_a_store_code_logs_the_payer_in_at_the_account_with_the_widest_limits_and_pays_there(shop, live_server):
    cheap = shop.accounts["wechatpay"]
    _limit(cheap, 10_000)  # the cheapest account only takes up to ¥100
    wide = _second_wechat_account(shop, cost_rate="0.0030")
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    page = scan_and_authorise(payer, live_server.url, code.code)
    assert _oauth_account_id(payer, code.code) == wide.pk
    pay_page = enter_amount(payer, page, "200.00")
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.channel_account_id == wide.pk and order.state == "pending" and order.pay_params["prepay_id"]
    assert bridge(pay_page.text)["prepay_id"] == order.pay_params["prepay_id"]


def test_a_small_amount_also_goes_to_the_account_that_knows_the_payer_not_the_cheapest(shop, live_server):
    cheap = shop.accounts["wechatpay"]
    _limit(cheap, 10_000)
    wide = _second_wechat_account(shop, cost_rate="0.0030")
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "1.00")
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.channel_account_id == wide.pk and order.state == "pending"
    assert order.cost_rate == Decimal("0.0030")  # priced at the account it went to (the fee snapshot applies)
    assert {c["account"]: c["reason"] for c in order.routing["candidates"]}[cheap.code] == "not the payer's account"


def test_an_account_contracted_after_the_payer_logged_in_does_not_take_their_order(shop, live_server):
    first = shop.accounts["wechatpay"]
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    page = scan_and_authorise(payer, live_server.url, code.code)
    assert _oauth_account_id(payer, code.code) == first.pk
    _second_wechat_account(shop, cost_rate="0.0010")  # cheaper: routing alone would now pick it
    enter_amount(payer, page, "12.00")
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.channel_account_id == first.pk and order.state == "pending"


def test_an_amount_beyond_the_payers_account_is_refused_on_the_amount_page_naming_its_limits(shop, live_server):
    _limit(shop.accounts["wechatpay"], 10_000)
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    refused = enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "200.00")
    assert refused.status_code == 422
    assert "¥0.01 to ¥100.00" in refused.text and 'name="amount"' in refused.text
    assert not Order.objects.filter(merchant=shop.merchant).exists()
    paid = enter_amount(payer, refused, "99.00")  # the same form, a smaller amount: one order
    assert paid.status_code == 200 and Order.objects.get(merchant=shop.merchant).amount == 9900


def test_a_cashier_order_goes_to_the_account_whose_login_gave_the_payer_id(shop, live_server):
    first = shop.accounts["wechatpay"]
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASHACC1", "amount": 2500, "product": "cashier", "subject": "Tea set"})
    payer = phone(UA_WECHAT)
    confirm = payer.get(created["pay_params"]["cashier_url"], timeout=10)
    assert confirm.status_code == 200 and "25.00" in confirm.text
    _second_wechat_account(shop, cost_rate="0.0010")  # cheaper, contracted while the payer looks at the page
    enter_amount(payer, confirm, "")
    order = Order.objects.get(pk=created["id"])
    assert order.channel_product == "wechat.jsapi" and order.channel_account_id == first.pk
    assert order.pay_params["prepay_id"] and order.state == "pending"


# --- which openid it is (A.7) ---------------------------------------------------------------------------------
def test_a_payer_logged_in_under_the_providers_app_pays_with_an_sp_openid_even_when_the_contract_has_a_sub_appid(
        shop, live_server):
    account = shop.accounts["wechatpay"]
    contract = Contract.objects.get(merchant=shop.merchant, channel_account=account)
    contract.sub_appid = "wxsubapp0000000001"
    contract.save()  # not QuerySet.update: the save moves the front door's generation token
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    page = scan_and_authorise(payer, live_server.url, code.code)
    assert any(f"appid={account.config['sp_appid']}" in r.headers.get("Location", "") for r in page.history)
    pay_page = enter_amount(payer, page, "1.00")
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.state == "pending", order.failure_message  # the simulator refuses an sp_openid sent as sub_openid
    assert order.pay_params["jsapi"]["appId"] == account.config["sp_appid"]  # A.9: the openid's appid
    assert bridge(pay_page.text)["jsapi"]["appId"] == account.config["sp_appid"]

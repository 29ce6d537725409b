"""A UnionPay payer comes back to our result page after paying on the bank's page (docs/channels/bank.md §6.2: a
UnionPay JS payment's ``pay_info.redirect_url`` is the bank's cashier, which sends the payer's browser to the
trade's ``front_url``). A store code's and a cashier order's create at the bank name our result page as
``front_url``; without it the payer was left on the bank's page. Live HTTP against live_server and the bank
simulator, through UnionPay's simulated OAuth."""

from __future__ import annotations

import json

import pytest

from tests.trades.onecode_flow import (
    UA_UNIONPAY,
    UA_WECHAT,
    bridge,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from trades.models import ChannelCall, Order
from trades.services.cashier import cashier_token

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


def _front_url(order: Order) -> str | None:
    """The ``front_url`` of the order's create as we sent it to the bank (the trade timeline's channel call)."""
    call = ChannelCall.objects.get(order=order, verb="create")
    body = call.request[call.request.index("{"):]
    return json.loads(body).get("front_url")


def _pay_at_the_bank(shop, pay_page_text: str) -> None:
    redirect_url = bridge(pay_page_text)["redirect_url"]
    shop.sim("bank", "/_payer/pay", code=redirect_url.split("code=")[1])


def test_it_sends_a_store_codes_unionpay_payer_back_from_the_bank_to_the_orders_result(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_UNIONPAY)
    pay_page = enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "3.30")
    order = Order.objects.get(merchant=shop.merchant, channel_product="unionpay.qr")
    assert order.channel_account == shop.accounts["bank"]

    front_url = _front_url(order)

    assert front_url and front_url.startswith(live_server.url + f"/c/{code.code}/")
    _pay_at_the_bank(shop, pay_page.text)
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")
    back = payer.get(front_url, timeout=10)  # the bank's cashier sends the payer's browser here
    assert back.status_code == 200 and back.url == f"{live_server.url}/pay/{cashier_token(order.pk)}?back=1"
    assert 'data-state="succeeded"' in back.text and "支付成功 Paid" in back.text


def test_a_payer_back_from_the_bank_before_its_notice_sees_the_result_coming_not_the_bank_again(shop, live_server):
    # The bank's notification often comes a moment after the payer: the order is still pending when they are back.
    # Its pay page would send a UnionPay payer straight back to the bank's page (the hand-off); this one asks the
    # status endpoint, and links to the pay page for a payer who left the bank's page without paying.
    code = store_code_for(shop)
    payer = phone(UA_UNIONPAY)
    enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "3.30")
    order = Order.objects.get(merchant=shop.merchant)

    back = payer.get(_front_url(order), timeout=10)

    assert back.status_code == 200 and 'id="bridge"' not in back.text
    assert '<h1 id="result" data-state="pending">' in back.text and '<script id="poll"' in back.text
    pay_url = f"/pay/{cashier_token(order.pk)}"
    assert f'<a id="back-to-pay" href="{pay_url}">' in back.text
    assert 'id="bridge"' in payer.get(live_server.url + pay_url, timeout=10).text  # the hand-off, to pay after all


def test_it_names_no_other_order_on_the_way_back(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_UNIONPAY)
    enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "3.30")
    front_url = _front_url(Order.objects.get(merchant=shop.merchant))
    # The way back names the order by a signed reference: changed, or under another code, it finds nothing.
    other = store_code_for(shop, store_no="S002", name="Lakeside")
    for url in (front_url[:-2] + ("xx" if not front_url.endswith("xx") else "yy"),
                front_url.replace(f"/c/{code.code}/", f"/c/{other.code}/")):
        assert payer.get(url, timeout=10, allow_redirects=False).status_code == 404


def test_it_tells_the_bank_nothing_of_a_return_for_wallets_that_pay_over_our_page(shop, live_server):
    # WeChat's (and Alipay's) JSAPI sheet opens over our pay page, which stays and shows the result itself.
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "3.30")
    assert Order.objects.get(merchant=shop.merchant).return_url == ""


def _cashier_payer(shop, live_server, out_trade_no: str, **fields):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1200, "product": "cashier", "subject": "Tea set", **fields})
    assert status == 201, created
    payer = phone(UA_UNIONPAY)
    confirm = payer.get(created["pay_params"]["cashier_url"], timeout=10)
    assert confirm.status_code == 200 and 'id="pay"' in confirm.text, confirm.text[:300]
    return payer, enter_amount(payer, confirm, ""), Order.objects.get(merchant=shop.merchant, out_trade_no=out_trade_no)


def test_it_sends_a_cashier_orders_unionpay_payer_back_from_the_bank_to_the_orders_result(shop, live_server):
    payer, pay_page, order = _cashier_payer(shop, live_server, "CASHUP01")
    assert order.channel_product == "unionpay.qr"
    result = f"{live_server.url}/pay/{cashier_token(order.pk)}?back=1"

    assert _front_url(order) == result

    _pay_at_the_bank(shop, pay_page.text)
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")
    back = payer.get(result, timeout=10)
    assert back.status_code == 200 and "支付成功 Paid" in back.text


def test_it_keeps_a_cashier_orders_own_return_url_for_the_bank(shop, live_server):
    # The merchant's return_url (merchant-api.md "Orders") is where the merchant wants the payer after the channel's
    # page; the order keeps it, and the bank is told it rather than ours.
    _, _, order = _cashier_payer(shop, live_server, "CASHUP02", return_url="https://shop.example/thanks")
    assert _front_url(order) == "https://shop.example/thanks"
    assert order.return_url == "https://shop.example/thanks"

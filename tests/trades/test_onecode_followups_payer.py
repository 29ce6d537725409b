"""The payer pages (merchant-api.md "Payer-facing pages", channel-protocols.md §E) as a payer reads them: every
error in Chinese and English like the rest of the page, zoom allowed, the Pay button in the wallet's colour, and a
pending result page that checks the order through the status endpoint (which asks the channel) instead of only
reloading. Live HTTP against live_server and the simulators."""

from __future__ import annotations

import re

import pytest

from aggpay.errors import ApplicationError, InvalidRequest
from tests.trades.onecode_flow import (
    UA_ALIPAY,
    UA_SAFARI,
    UA_UNIONPAY,
    UA_WECHAT,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from trades.models import Order
from trades.onecode import views_payer
from trades.onecode.services import parse_amount
from trades.services.cashier import cashier_token, order_cashier_pay
from trades.services.orders import order_close

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENGLISH = re.compile(r"[A-Za-z]{3,}")


def _bilingual(text: str) -> bool:
    return bool(CHINESE.search(text) and ENGLISH.search(text))


def _alert(page_html: str) -> str:
    return re.search(r'<p class="error" role="alert">(.*?)</p>', page_html, re.S).group(1)


def _cashier(shop, out_trade_no: str, amount: int = 2500) -> dict:
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "cashier", "subject": "Tea set"})
    assert status == 201, created
    return created


# --- bilingual errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["abc", "0", "1000000.01"])
def test_every_amount_format_error_reads_in_chinese_and_english(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_amount(text)
    assert _bilingual(caught.value.message), caught.value.message


def test_a_mistyped_amount_is_explained_in_chinese_and_english_on_the_page(shop, live_server):
    payer = phone(UA_ALIPAY)
    answer = enter_amount(payer, scan_and_authorise(payer, live_server.url, store_code_for(shop).code), "12.345")
    assert answer.status_code == 422
    assert "请输入以元为单位的金额" in _alert(answer.text) and "Enter an amount in yuan" in _alert(answer.text)


def test_an_expired_or_foreign_form_and_a_resubmitted_one_are_explained_in_both_languages(shop, live_server,
                                                                                         monkeypatch):
    from trades.onecode import services

    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, store_code_for(shop).code)
    enter_amount(payer, amount_page, "12.34", allow_redirects=False)
    changed = enter_amount(payer, amount_page, "15")
    assert changed.status_code == 422 and _bilingual(_alert(changed.text)) and "¥12.34" in _alert(changed.text)
    foreign = payer.post(amount_page.url, data={"amount": "5", "attempt": "garbage",
                                                "csrfmiddlewaretoken": re.search(
                                                    r'name="csrfmiddlewaretoken" value="([^"]+)"',
                                                    amount_page.text).group(1)},
                         headers={"Referer": amount_page.url}, timeout=10)
    assert foreign.status_code == 422 and _bilingual(_alert(foreign.text))
    monkeypatch.setattr(services, "ATTEMPT_MAX_AGE", -1)
    expired = enter_amount(payer, changed, "15")
    assert expired.status_code == 422 and "付款页面已过期" in _alert(expired.text)


def test_a_cashier_order_this_wallet_can_no_longer_pay_is_explained_in_both_languages(shop, live_server):
    created = _cashier(shop, "CASHBI01")
    payer = phone(UA_WECHAT)
    confirm = payer.get(created["pay_params"]["cashier_url"], timeout=10)
    assert 'id="pay"' in confirm.text  # logged in at the WeChat account, ready to pay
    account = shop.accounts["wechatpay"]
    account.enabled = False  # ops switched the account off while the payer looked at the page
    account.save()
    refused = enter_amount(payer, confirm, "")
    assert refused.status_code == 422
    assert "此订单暂不能用此钱包付款" in _alert(refused.text) and "try another wallet" in _alert(refused.text)


def test_the_cashier_state_refusals_read_in_chinese_and_english(shop, live_server):
    payer_id = "o_payer_1"
    account = shop.accounts["wechatpay"].pk
    closed = _cashier(shop, "CASHBI02")
    order_close(order_id=closed["id"])
    expired = _cashier(shop, "CASHBI03")
    Order.objects.filter(pk=expired["id"]).update(expires_at=Order.objects.get(pk=expired["id"]).created_at)
    for created, words in ((closed, "此订单已关闭"), (expired, "订单已过期")):
        with pytest.raises(ApplicationError) as caught:  # what order_cashier_pay says, in English
            order_cashier_pay(order_id=created["id"], wallet="wechat", payer_id=payer_id, account_id=account)
        said = views_payer.cashier_refusal(caught.value)
        assert words in said and _bilingual(said), said


# --- zoom and the Pay button ---------------------------------------------------------------------------------------
def test_the_payer_pages_let_the_payer_zoom(shop, live_server):
    for page in (phone(UA_SAFARI).get(f"{live_server.url}/c/{store_code_for(shop).code}", timeout=10),
                 phone(UA_WECHAT).get(f"{live_server.url}/c/no-such-code", timeout=10)):
        viewport = re.search(r'<meta name="viewport" content="([^"]+)">', page.text).group(1)
        assert "maximum-scale" not in viewport and "user-scalable" not in viewport, viewport


@pytest.mark.parametrize(("user_agent", "wallet", "colour"), [
    (UA_WECHAT, "wechat", "#07c160"), (UA_ALIPAY, "alipay", "#1677ff"), (UA_UNIONPAY, "unionpay", "#e60012")])
def test_the_pay_button_takes_the_wallets_colour(shop, live_server, user_agent, wallet, colour):
    payer = phone(user_agent)
    amount_page = scan_and_authorise(payer, live_server.url, store_code_for(shop).code)
    assert f'id="pay" class="{wallet}"' in amount_page.text
    if wallet != "wechat":
        assert f"button.{wallet}{{background:{colour}}}" in amount_page.text
    cashier = phone(user_agent)
    confirm = cashier.get(_cashier(shop, f"CASHCOL{wallet[:2]}")["pay_params"]["cashier_url"], timeout=10)
    assert f'id="pay" class="{wallet}"' in confirm.text


# --- a pending result page -----------------------------------------------------------------------------------------
def test_a_pending_result_page_polls_the_status_endpoint_a_bounded_number_of_times(shop, live_server):
    created = _cashier(shop, "CASHRES1")  # not opened by any wallet yet: pending, nothing to hand to a wallet
    token = cashier_token(created["id"])
    page = phone(UA_WECHAT).get(f"{live_server.url}/pay/{token}", timeout=10)
    assert page.status_code == 200 and 'data-state="pending"' in page.text
    poll = re.search(r'<script id="poll" type="application/json">(.*?)</script>', page.text, re.S)
    assert poll and f'"/pay/{token}/status"' in poll.group(1)
    assert f'"max_polls": {views_payer.RESULT_POLLS}' in poll.group(1)
    assert "location.reload" not in page.text and 'id="still-pending"' in page.text

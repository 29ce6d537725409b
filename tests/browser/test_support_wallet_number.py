"""The wallet's own number, in a real browser (issue 5 "Staff pages": support searches by any number a caller
quotes): a payer who calls reads the number off their UnionPay receipt. Behind the partner bank that number is not
the bank's trade number but the wallet's (the bank reports it as ``channel_trade_no``). A UnionPay order is paid at
the Bank A simulator over HTTP, the bank calling back the live server; the support agent types the wallet's number
into the support page's search box and lands on the trade, which shows it as "Wallet's number"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.trades.conftest import shop  # noqa: F401 - the paying shop persona (a fixture)
from trades.models import Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_channels")]


def paid_at_the_bank_by_scanning(shop, out_trade_no: str, amount: int) -> tuple[Order, dict]:  # noqa: F811
    """A UnionPay QR order the payer scans and pays at the bank: the order once the bank's notice has come back, and
    what the payer's wallet said (its ``channel_trade_no`` is the number on their receipt)."""
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "unionpay.qr", "subject": "Longjing tea"})
    assert status == 201, created
    payer = shop.sim("bank", "/_payer/pay", org_no=shop.accounts["bank"].config["org_no"],
                     out_trade_no=created["id"])
    shop.sim("bank", "/_control/flush")  # the bank's PAY_RESULT notice reaches the live server
    order = shop.wait_for(lambda: Order.objects.filter(pk=created["id"], state="succeeded").first(), message="paid")
    return order, payer


def test_a_support_agent_finds_a_bank_trade_by_the_number_on_the_payers_wallet(shop, staff_member, sign_in,  # noqa: F811
                                                                                live_server, shots):
    order, payer = paid_at_the_bank_by_scanning(shop, "TEA-WALLET-0001", 1880)
    wallet_no = payer["channel_trade_no"]  # what the payer's UnionPay app shows
    assert wallet_no and wallet_no != order.channel_trade_no  # the bank's own number is another one
    assert order.wallet_trade_no == wallet_no

    staff_member("support_agent", username="chen.support")
    page = sign_in("chen.support")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.click('nav a[data-section="support"]')
    page.fill('#trade-lookup input[name="q"]', wallet_no)
    page.click('#trade-lookup button[type="submit"]')

    # The wallet's number belongs to one trade: the search opens it.
    page.wait_for_url(f"{live_server.url}/staff/trades/{order.pk}/")
    expect(page.locator("#order-id")).to_have_text(order.pk)
    expect(page.locator("#order-state")).to_have_text("Succeeded")
    expect(page.locator("#order-amount")).to_contain_text("¥18.80")
    expect(page.locator("#wallet-trade-no")).to_have_text(wallet_no)
    expect(page.locator("xpath=//dd[@id='wallet-trade-no']/preceding-sibling::dt[1]")).to_contain_text(
        "Wallet's number")
    expect(page.locator("#channel-trade-no")).to_have_text(order.channel_trade_no)  # the bank's, shown beside it
    page.screenshot(path=str(shots / "support-wallet-number.png"), full_page=True)


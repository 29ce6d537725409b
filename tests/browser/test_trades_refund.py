"""Issue 5 "How it is checked", in a real browser: a support agent finds a trade paid on the WeChat Pay simulator (over
signed HTTP, the channel calling back the live server) by the merchant's number, and refunds part of it from the
staff pages, seeing the refund on the trade's timeline."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.trades.conftest import shop  # noqa: F401 - the paying shop persona (a fixture)
from trades.models import Order, Refund

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _paid(shop, out_trade_no: str, amount: int) -> Order:  # noqa: F811 - the fixture's value
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "wechat.native", "subject": "Longjing tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def test_a_support_agent_finds_a_paid_trade_and_refunds_part_of_it(shop, staff_member, sign_in, live_server):  # noqa: F811
    order = _paid(shop, "TEA-2026-0001", 1234)
    staff_member("support_agent", username="chen.support")
    page = sign_in("chen.support")

    card = page.locator('section.section-card[data-section="support"]')
    expect(card).to_contain_text("Unknown outcomes")
    page.click('nav a[data-section="support"]')
    page.fill('#trade-lookup input[name="q"]', "TEA-2026-0001")
    page.click('#trade-lookup button[type="submit"]')

    # One exact hit opens the trade.
    page.wait_for_url(f"{live_server.url}/staff/trades/{order.pk}/")
    expect(page.locator("#order-state")).to_have_text("Succeeded")
    expect(page.locator("#order-amount")).to_contain_text("¥12.34")
    expect(page.locator('#timeline li[data-kind="callback"]').first).to_contain_text("applied")

    page.fill('#refund-form input[name="amount"]', "20")  # more than paid: refused, the field says why
    page.fill('#refund-form input[name="reason"]', "one cup short")
    page.click('#refund-form button[type="submit"]')
    expect(page.locator('#refund-form [data-field="amount"]')).to_contain_text("At most 12.34 yuan")
    assert not Refund.objects.exists()

    page.fill('#refund-form input[name="amount"]', "2.34")
    page.fill('#refund-form input[name="reason"]', "one cup short")
    page.click('#refund-form button[type="submit"]')

    refund = shop.wait_for(lambda: Refund.objects.filter(order=order).first(), message="the refund")
    expect(page.locator(".message.success")).to_contain_text(f"Refund {refund.pk} of 2.34 yuan")
    entry = page.locator(f"#refund-{refund.pk}")
    expect(entry).to_contain_text("2.34 yuan")
    expect(entry).to_contain_text("one cup short")
    expect(entry).to_contain_text("chen.support")
    expect(page.locator(f'#refunds tr[data-refund="{refund.pk}"]')).to_contain_text("¥2.34")
    expect(page.locator("#order-refunded")).to_contain_text("refundable ¥10.00")
    assert refund.amount == 234 and refund.requested_by == "chen.support"
    if os.environ.get("AGGPAY_SCREENSHOT_DIR"):  # for a person to look at the page
        page.screenshot(path=os.path.join(os.environ["AGGPAY_SCREENSHOT_DIR"], "trade-refunded.png"), full_page=True)

"""A failed-over order on the trade page in a real browser (trades.workbench ``failover_hops``, templates/trades/
detail.html): Bank A refuses the create with HTTP 429 at its simulator and the order moves to Bank B (design §7
layer 4). A support agent finds it by the merchant's number and reads the hop in its timeline, between the refused
call and the one that took it, and in the Routing card."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.laptop import assert_fits_a_laptop
from tests.trades.conftest import shop  # noqa: F401 - the paying shop persona (a fixture)
from tests.trades.failover_flow import bank_b, create_order, rate_limited  # noqa: F401 - bank_b: its second bank

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_channels")]


def test_a_support_agent_reads_that_an_order_failed_over_from_bank_a_to_bank_b(
        shop, bank_b, staff_member, sign_in, live_server, shots):  # noqa: F811
    bank_a = shop.accounts["bank"]
    rate_limited(shop, bank_a)
    status, _, order = create_order(shop, "FO-TEA-0001")
    assert status == 201, order
    staff_member("support_agent", username="chen.support")
    page = sign_in("chen.support")

    page.click('nav a[data-section="support"]')
    page.fill('#trade-lookup input[name="q"]', "FO-TEA-0001")
    page.click('#trade-lookup button[type="submit"]')

    page.wait_for_url(f"{live_server.url}/staff/trades/{order['id']}/")
    hop = f"Failed over from {bank_a.code} to {bank_b.code}: rate_limited"
    entries = page.locator("#timeline li")
    expect(entries.filter(has_text=hop)).to_have_count(1)
    expect(page.locator("#failover-1")).to_have_attribute("data-kind", "routing")
    whats = entries.locator(".what").all_inner_texts()
    refused, moved, taken = (whats.index("Channel call: create → error"), whats.index(hop),
                             whats.index("Channel call: create → pending"))
    assert refused < moved < taken, whats  # read in the order it happened
    routing = page.locator("#routing")
    expect(routing.locator('[data-failover="1"]')).to_contain_text(f"from {bank_a.code} to {bank_b.code}: rate_limited")
    expect(routing.locator("[data-failover]")).to_have_count(1)
    expect(routing).to_contain_text("failover")  # chosen by the failover layer
    expect(page.locator(f'#routing + table tr[data-candidate="{bank_b.code}"] .badge')).to_have_text("chosen")
    page.screenshot(path=str(shots / "support-trade-failed-over.png"), full_page=True)
    assert_fits_a_laptop(page)

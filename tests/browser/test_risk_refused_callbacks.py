"""Issue 5 "Callbacks", in a real browser: refused channel callbacks are security events visible to risk. Three
notices refused over HTTP by the live server (a tampered Alipay one, a WeChat Pay one of another amount, one about an
order we never had); a risk officer follows the home tile, filters the queue, opens one, and marks the rest reviewed
in one go with a note."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from channels.models import ChannelCallback
from tests.channels.test_refused_callbacks import refused  # noqa: F401 - three refused notices (a fixture)
from tests.trades.conftest import shop  # noqa: F401 - the shop persona paying through the simulators (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_channels")]


def test_a_risk_officer_reviews_refused_callbacks_from_the_home_tile(refused, staff_member, sign_in,  # noqa: F811
                                                                     live_server, shots):
    staff_member("risk_officer", username="zhao.risk")
    page = sign_in("zhao.risk")

    card = page.locator('section.section-card[data-section="risk"]')
    tile = card.locator("li", has_text="Refused channel callbacks to review")
    expect(tile.locator(".count")).to_have_text("3")
    expect(tile.locator(".count")).to_have_class(re.compile(r"\bbad\b"))
    tile.locator("a").click()
    expect(page.locator("#refused-callbacks tbody tr[data-callback]")).to_have_count(3)
    expect(page.locator("#count-unreviewed")).to_have_text("3")

    # Only the cross-check mismatches: the WeChat Pay notice naming another amount, with the order it is about.
    page.select_option('#refused-filters select[name="kind"]', "mismatch")
    page.click('#refused-filters button[type="submit"]')
    rows = page.locator("#refused-callbacks tbody tr[data-callback]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Cross-check mismatch")
    expect(rows.first.locator("[data-trade]")).to_have_text(refused["wx_order"]["id"])
    page.screenshot(path=str(shots / "risk-refused-callbacks-filtered.png"), full_page=True)

    rows.first.locator("a", has_text="Open").click()
    expect(page.locator("#reason")).to_have_text("Cross-check mismatch")
    expect(page.locator("#refusal")).to_contain_text("differs from the order's 1500")
    expect(page.locator("#notice-body")).to_contain_text(refused["wx_order"]["id"])  # decrypted, PII masked
    expect(page.locator("#notice-body")).not_to_contain_text("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    page.screenshot(path=str(shots / "risk-refused-callback-detail.png"), full_page=True)

    page.click("text=← Refused channel callbacks")
    expect(page.locator("#refused-callbacks tbody tr[data-callback]")).to_have_count(3)
    page.check("#select-all")
    page.fill('#refused-review textarea[name="note"]', "bank and WeChat confirmed: replayed sandbox traffic")
    page.click("#mark-reviewed")

    expect(page.locator(".message.success")).to_contain_text("Marked 3 refused callbacks reviewed")
    expect(page.locator("#refused-callbacks tbody tr[data-callback]")).to_have_count(0)
    expect(page.locator("#count-unreviewed")).to_have_text("0")
    assert set(ChannelCallback.objects.values_list("review_note", flat=True)) == {
        "bank and WeChat confirmed: replayed sandbox traffic"}

    page.goto(live_server.url + "/staff/")
    expect(tile.locator(".count")).to_have_text("0")
    expect(tile.locator(".count")).not_to_have_class(re.compile(r"\bbad\b"))

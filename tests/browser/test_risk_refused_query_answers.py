"""Issue 5 "Callbacks" for the answers to our own queries, in a real browser: two WeChat Pay query answers that the
cross-check refused (another amount, another currency), produced over signed HTTP against the simulator, beside a
refused callback; a risk officer follows the home tile to the queue's query answers tab, filters it,
opens one, and marks both reviewed in one go with a note."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from aggpay.models import AuditLog
from tests.channels.test_refused_query_mismatches import mismatches  # noqa: F401 - refused query answers (a fixture)
from tests.trades.conftest import shop  # noqa: F401 - the shop persona paying through the simulators (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_channels")]


def test_a_risk_officer_reviews_refused_query_answers_from_the_queues_second_tab(
        mismatches, staff_member, sign_in, live_server, shots):  # noqa: F811
    staff_member("risk_officer", username="zhao.risk")
    page = sign_in("zhao.risk")

    card = page.locator('section.section-card[data-section="risk"]')
    tile = card.locator("li", has_text="Refused channel answers to review")
    expect(tile).to_contain_text("2")
    tile.locator("a").click()  # the queue's second tab, on its unreviewed answers
    answers_tab = page.locator('#security-tabs a[data-source="answers"]')
    expect(answers_tab.locator(".n")).to_have_text("2")
    expect(answers_tab.locator(".n")).to_have_class(re.compile(r"\bbad\b"))
    expect(answers_tab).to_have_class(re.compile(r"\bactive\b"))
    rows = page.locator("#refused-answers tbody tr[data-answer]")
    expect(rows).to_have_count(2)
    expect(page.locator("#count-unreviewed")).to_have_text("2")
    expect(page.locator('#count-fields li[data-field="amount"]')).to_contain_text("1 / 1")

    # Only the amounts: the answer that stated 0.01 yuan for a 15.00 order, with the order it is about.
    page.select_option('#answer-filters select[name="field"]', "amount")
    page.click('#answer-filters button[type="submit"]')
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("amount 1 differs from the order's 1500")
    expect(rows.first.locator("[data-trade]")).to_have_text(mismatches["amount_order"]["id"])
    page.screenshot(path=str(shots / "risk-refused-answers-filtered.png"), full_page=True)

    rows.first.locator("a", has_text="Open").click()
    expect(page.locator("#field")).to_have_text("Amount")
    expect(page.locator("#amount-stated")).to_have_text("¥0.01")
    expect(page.locator("#answer-body")).to_contain_text(mismatches["amount_order"]["id"])
    expect(page.locator("#answer-body")).to_contain_text('"sp_openid": "***"')  # who paid, masked
    page.screenshot(path=str(shots / "risk-refused-answer-detail.png"), full_page=True)

    page.click("text=← Refused channel answers")
    expect(rows).to_have_count(2)
    page.check("#select-all")
    page.fill('#answer-review textarea[name="note"]', "WeChat confirmed: their record of both trades was wrong")
    page.click("#mark-reviewed")

    expect(page.locator(".message.success")).to_contain_text("Marked 2 refused answers reviewed")
    expect(rows).to_have_count(0)
    expect(page.locator("#count-unreviewed")).to_have_text("0")
    expect(answers_tab.locator(".n")).to_have_text("0")
    expect(page.locator('#security-tabs a[data-source="callbacks"] .n')).to_have_text("1")  # left as it was
    assert {(r.target_id, r.reason) for r in AuditLog.objects.filter(action="security.query.reviewed")} == {
        (str(mismatches[k].pk), "WeChat confirmed: their record of both trades was wrong")
        for k in ("amount", "currency")}

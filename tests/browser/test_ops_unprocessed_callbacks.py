"""Callbacks not processed in a real browser (channels.views ``unprocessed_callbacks``, /staff/channels/callbacks/
unprocessed/): three open notices — a failing refund handler and a complaint we have no handler for on wx-main, an
error on bank-b two days ago — beside one a retry applied and processed and refused ones that are not the queue's.
An operator follows the home tile, reads the counts, marks the two wx-main ones handled with a note, and finds them
under "Handled" with who, when and the note; the open count and the tile drop to one
(channels.services.callback_handling)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aggpay.models import AuditLog
from channels.models import ChannelCallback
from tests.channels.test_unprocessed_callbacks_handling import ops_amy, queue  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTE = "refund timeout was the bank's outage; complaints have no handler yet (issue 7)"


def test_an_operator_marks_two_open_callbacks_handled_from_the_home_tile(queue, ops_amy, sign_in,  # noqa: F811
                                                                         live_server, shots):
    page = sign_in("ops-amy")

    tile = page.locator('section.section-card[data-section="operations"]').locator(
        "li", has_text="Callbacks not processed, open")
    expect(tile.locator(".count")).to_have_text("3")
    expect(tile.locator(".count")).to_have_class(re.compile(r"\bbad\b"))
    tile.locator("a").click()

    rows = page.locator("#unprocessed-callbacks tbody tr[data-callback]")
    expect(rows).to_have_count(3)
    expect(page.locator("#count-all")).to_have_text("3")
    expect(page.locator("#count-last-day")).to_have_text("2")  # bank-b's is two days old
    expect(page.locator('#count-outcomes li[data-outcome="error"] .count')).to_have_text("2")
    expect(page.locator('#count-outcomes li[data-outcome="ignored"] .count')).to_have_text("1")
    expect(page.locator('#count-accounts li[data-account="wx-main"] [data-n="error"]')).to_have_text("1")
    expect(page.locator('#count-accounts li[data-account="wx-main"] [data-n="ignored"]')).to_have_text("1")
    expect(page.locator('#count-accounts li[data-account="bank-b"] [data-n="error"]')).to_have_text("1")
    tabs = page.locator("#unprocessed-states")
    expect(tabs.locator('a[data-state="open"]')).to_have_class(re.compile(r"\bactive\b"))
    expect(tabs.locator('a[data-state="open"] .n')).to_have_text("3")
    expect(tabs.locator('a[data-state="settled"] .n')).to_have_text("1")  # the one a retry applied
    expect(tabs.locator('a[data-state="handled"] .n')).to_have_text("0")
    expect(page.locator(f'tr[data-callback="{queue["failing"].pk}"]')).to_contain_text("channel timed out")
    for other in ("retried", "retry_applied", "rejected"):  # not open: not on this list
        expect(page.locator(f'tr[data-callback="{queue[other].pk}"]')).to_have_count(0)
    page.screenshot(path=str(shots / "ops-unprocessed-callbacks-open.png"), full_page=True)

    for chosen in ("failing", "ignored"):
        page.check(f'#unprocessed-callbacks tr[data-callback="{queue[chosen].pk}"] input[name="record"]')
    page.fill('#unprocessed-handle textarea[name="note"]', NOTE)
    page.click("#mark-handled")

    expect(page.locator(".message.success")).to_have_text("Marked 2 callbacks handled.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-callback", str(queue["old"].pk))
    expect(page.locator("#count-all")).to_have_text("1")
    expect(tabs.locator('a[data-state="open"]')).to_have_class(re.compile(r"\bactive\b"))  # the same list again
    expect(tabs.locator('a[data-state="open"] .n')).to_have_text("1")
    expect(tabs.locator('a[data-state="handled"] .n')).to_have_text("2")
    page.screenshot(path=str(shots / "ops-unprocessed-callbacks-marked.png"), full_page=True)

    marked = {c.pk: c for c in ChannelCallback.objects.filter(handled_at__isnull=False)}
    assert set(marked) == {queue["failing"].pk, queue["ignored"].pk}
    assert {(c.handled_by, c.handled_note) for c in marked.values()} == {(ops_amy, NOTE)}
    assert AuditLog.objects.filter(action="channels.callback.handled", actor=ops_amy).count() == 2

    tabs.locator('a[data-state="handled"]').click()
    expect(tabs.locator('a[data-state="handled"]')).to_have_class(re.compile(r"\bactive\b"))
    expect(rows).to_have_count(2)
    for pk, callback in marked.items():
        row = page.locator(f'#unprocessed-callbacks tr[data-callback="{pk}"]')
        expect(row.locator("[data-handled-by]")).to_have_text("ops-amy")
        expect(row.locator("[data-handled-at]")).to_have_text(
            timezone.localtime(callback.handled_at).strftime("%Y-%m-%d %H:%M"))
        expect(row.locator("[data-handled-note]")).to_have_text(NOTE)
        expect(row.locator('input[name="record"]')).to_have_count(0)  # nothing left to mark
    page.screenshot(path=str(shots / "ops-unprocessed-callbacks-handled.png"), full_page=True)

    page.goto(live_server.url + "/staff/")
    expect(tile.locator(".count")).to_have_text("1")
    expect(tile.locator(".count")).to_have_class(re.compile(r"\bbad\b"))

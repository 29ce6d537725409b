"""Support's trade tables fit the window (a support lead's trial of the demo): the content was capped at 1280 px, so
the abnormal refunds' note box and button sat off to the right even on a 1920-px monitor, and the search list's and
the unknown queue's Created column at 1400 px — each only reachable by scrolling the table sideways. Now the trade
pages use the window's width, long ids wrap in their cells and a row's forms wrap within theirs: at 1366 (a laptop),
1400 and 1920 px no table or card hides a column, and the support page's search box is wide enough to read its own
placeholder."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from aggpay.audit import audit_log
from tests.trades.test_staff_workbench import _order
from trades.models import Delivery, Refund
from trades.services.events import delivery_attempt, event_emit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1366, 1400, 1920)
HIDDEN = """() => [...document.querySelectorAll('.table-scroll, section.card')]
  .filter(box => box.scrollWidth > box.clientWidth + 1)
  .map(box => (box.id || box.className) + ': ' + box.scrollWidth + ' px of content in ' + box.clientWidth)"""


@pytest.fixture
def busy_shop(tea_house_app, callback_receiver):
    """A merchant with what the queues hold on the demo, its numbers as long as they come: paid and pending trades
    from a till, an order whose outcome is unknown, one in the manual queue, an abnormal refund the channel could not
    return, and an exhausted notification."""
    merchant = tea_house_app.merchant
    for n in range(6):
        _order(merchant, f"T2026112809{n:02d}-ABCDEFGHIJKLMNOPQRSTU"[:32], state="succeeded", amount=2350 + n,
               store_id="HZ-WESTLAKE-01", terminal_id="POS-02", paid_at=timezone.now())
    _order(merchant, "T-UNKNOWN-0000000000000000000001", sync_state="unknown")
    _order(merchant, "T-MANUAL-00000000000000000000001", sync_state="manual")
    paid = _order(merchant, "T-ABNORMAL-000000000000000000001", state="succeeded", refund_reserved=4200,
                  amount=4200)
    refund = Refund.objects.create(order=paid, merchant=merchant, out_refund_no="R-ABNORMAL-0000000000000000000001",
                                   amount=4200, request_fingerprint="x", requested_by="api:app_demoteahouse0001",
                                   abnormal=True, channel_refund_no="R20261128031168798046",
                                   failure_code="ABNORMAL",
                                   failure_message="payer account abnormal, money could not be returned")
    with transaction.atomic():
        audit_log(actor="channel:bank-a", action="trades.refund.channel_abnormal", target=refund,
                  data={"attempt": 0, "channel_no": refund.pk})
    callback_receiver.status = 500
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    with transaction.atomic():
        event = event_emit(merchant=merchant, type="order.succeeded", obj_type="order", obj_id=paid.pk,
                           data={"id": paid.pk, "out_trade_no": paid.out_trade_no})
    delivery = event.deliveries.get()
    while delivery.state != "exhausted":
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
        delivery = delivery_attempt(delivery_id=delivery.pk)
    return {"merchant": merchant, "refund": refund}


def test_the_trade_tables_show_every_column_at_laptop_and_desktop_widths(busy_shop, staff_member, sign_in,
                                                                         live_server, shots):
    staff_member("support_agent", username="lin.support")
    page = sign_in("lin.support")
    refund = busy_shop["refund"]
    pages = {
        "search": f"/staff/trades/?q={busy_shop['merchant'].merchant_no}",
        "unknown": "/staff/trades/queues/unknown/",
        "abnormal": "/staff/trades/queues/abnormal/",
        "exhausted": "/staff/trades/queues/exhausted/",
        "trade": f"/staff/trades/{refund.order_id}/",
    }
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(live_server.url + path)
            assert page.evaluate(HIDDEN) == [], (name, width)
            page.screenshot(path=str(shots / f"support-{name}-{width}.png"), full_page=True)
        # The abnormal refund's form, its note box and its button are in the window, not past its right edge.
        page.goto(live_server.url + pages["abnormal"])
        for part in ("select[name=outcome]", "input[name=note]", "button"):
            box = page.locator(f'form[data-mark-handled="{refund.pk}"] {part}').bounding_box()
            assert box and box["x"] + box["width"] <= width, (part, width, box)


def test_the_support_pages_search_box_is_wide_enough_for_its_placeholder(staff_member, sign_in, live_server):
    staff_member("support_agent", username="lin.support")
    page = sign_in("lin.support")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(live_server.url + "/staff/support/")
    box = page.locator('#trade-lookup input[name="q"]')
    placeholder = box.get_attribute("placeholder")
    # The placeholder's own width, in the box's font, fits inside the box.
    needed = page.evaluate("""(text) => { const input = document.querySelector('#trade-lookup input[name=q]');
        const canvas = document.createElement('canvas').getContext('2d');
        canvas.font = getComputedStyle(input).font; return canvas.measureText(text).width; }""", placeholder)
    assert needed <= box.evaluate("el => el.clientWidth") - 10, needed

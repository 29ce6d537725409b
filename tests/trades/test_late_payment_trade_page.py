"""A late payment on its trade page (a support lead's trial of the demo, DEMO-0030: the bank failed the automatic
refund of a payment made after the order was closed):

- the trade page offers "Refund to payer" as the late-payment queue does — the same service and permission — not
  only "Settled by hand", and says what became of it in a sentence, not the late payment's whole history in one line;
- once the money went back, the page says so: the order was paid late (how much, when), the late payment's refund
  is in the Refunds table with its number and state, and "Refunded" says the late payment went back to the payer —
  not Paid "—", "Refunded ¥0.00" and "No refunds".
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from tests.trades.bank_flow import bank_refunds, late_refund_failed_first, settle_now
from tests.trades.test_staff_workbench import _order
from trades.models import LatePayment
from trades.services.late import late_refund_no

REASON = "payer called: paid after the shop closed the order (ticket 3301)"


def _page(client, order_id: str) -> str:
    response = client.get(reverse("trades:detail", args=[order_id]))
    assert response.status_code == 200
    return response.content.decode()


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_late_payment_is_refunded_from_its_trade_page_and_the_page_then_says_where_the_money_went(
        shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LP-PAGE-1")
    page = _page(client, late.order_id)
    assert 'id="refund-late-form"' in page and "Refund to payer" in page and 'id="settle-late-form"' in page
    assert re.search(r'id="order-paid">.*¥15\.00.*late', page)  # paid late, not "—"
    assert 'data-late-money="with_support"' in page

    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    response = client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON, "order": late.order_id},
                           follow=True)
    assert response.redirect_chain[-1][0] == reverse("trades:detail", args=[late.order_id])
    said = _messages(response)
    assert len(said) == 1 and "\n" not in said[0] and said[0].count("refund") <= 3, said
    assert said[0].startswith("The late payment's ¥15.00") and "is being refunded" in said[0], said
    assert AuditLog.objects.get(action="trades.late_payment.staff_refund", target_id=late.order_id).actor == agent

    settle_now(shop, simulator_server, late_refund_no(late.order_id, 1))
    done = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").first(), message="resolved")
    page = _page(client, late.order_id)
    assert 'id="refund-late-form"' not in page
    paid = re.search(r'id="order-paid">(.*?)</dd>', page, re.S).group(1)
    assert "¥15.00" in paid and "late" in paid and "after the order was closed" in paid
    refunded = re.search(r'id="late-refunded"[^>]*>(.*?)</div>', page, re.S).group(1)
    assert "late payment ¥15.00: refunded to the payer" in refunded
    assert f"{timezone.localtime(done.refunded_at):%Y-%m-%d %H:%M}" in refunded
    row = re.search(rf'<tr data-late-refund-row="{late.pk}">(.*?)</tr>', page, re.S).group(1)
    assert late_refund_no(late.order_id, 1) in row and "¥15.00" in row and "refunded to the payer" in row
    assert "No refunds." not in page
    assert re.search(r'<h2>Refunds <span class="muted small">1</span>', page)


@pytest.mark.django_db
def test_refund_to_payer_on_the_trade_page_needs_the_refund_permission(tea_house, client, staff_member):
    closed = _order(tea_house, "LP-PAGE-2", state="closed")
    late = LatePayment.objects.create(order=closed, channel_trade_no="4200002", amount=1000, refund_attempts=1)
    client.force_login(staff_member("finance"))
    assert 'id="refund-late-form"' not in _page(client, closed.pk)
    client.force_login(staff_member("support_agent", username="sun.support"))
    page = _page(client, closed.pk)
    assert 'id="refund-late-form"' in page and "Refund to payer" in page
    LatePayment.objects.filter(pk=late.pk).update(abnormal=True)  # held for a person: settled by hand only
    assert 'id="refund-late-form"' not in _page(client, closed.pk)

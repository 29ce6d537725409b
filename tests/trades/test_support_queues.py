"""Working the support queues (issue 5 "Staff pages"):

- an abnormal refund a person has settled with the channel is marked handled with a note — permission
  ``trades.refund_order``, audited in the same transaction, no money moved — and leaves the queue and its counts;
- the manual queue lists every order in it whatever its state, saying why: a paid payment-code order whose reverse
  the channel never confirmed holds its whole amount there until support has the channel asked again.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from tests.trades.test_staff_workbench import _order
from trades.models import Order, Refund
from trades.tasks_orders import sync_due_orders

PAID_AT_ONCE = "134567890123456780"  # a WeChat payment code the simulator charges at once


def _count(html: str, slug: str) -> int:
    return int(re.search(rf'data-queue="{slug}".*?data-count="(\d+)"', html, re.S).group(1))


def _home_counts(client) -> dict[str, str]:
    page = client.get("/staff/support/").content.decode()
    return dict(re.findall(r'<a href="/staff/trades/queues/\w+/">([^<]+)</a> <span class="count[^"]*">(\d+)', page))


def _abnormal(merchant, no: str, *, state: str = "pending") -> Refund:
    paid = _order(merchant, no, state="succeeded", refund_reserved=300 if state != "failed" else 0,
                  refunded_amount=300 if state == "succeeded" else 0)
    refund = Refund.objects.create(order=paid, merchant=merchant, out_refund_no=f"R{no}", amount=300,
                                   request_fingerprint="x", requested_by="api:x", abnormal=True,
                                   channel_refund_no="50300000001")
    Refund.objects.filter(pk=refund.pk).update(state=state)
    return Refund.objects.get(pk=refund.pk)


# --- abnormal refunds: mark handled -------------------------------------------------------------------------------
def test_an_abnormal_refund_is_marked_handled_with_a_note_and_leaves_the_queue(tea_house, client, agent):
    refund = _abnormal(tea_house, "AB1", state="succeeded")
    html = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert _count(html, "abnormal") == 1 and "Mark handled" in html
    assert _home_counts(client)["Abnormal refunds"] == "1"

    url = reverse("trades:refund-handled", args=[refund.pk])
    client.post(url, {"note": "  "})
    assert Refund.objects.get(pk=refund.pk).abnormal  # a note is required
    response = client.post(url, {"note": "WeChat confirmed one refund only (ticket 8812)"})
    assert response.status_code == 302 and response.url == reverse("trades:queue", args=["abnormal"])

    handled = Refund.objects.get(pk=refund.pk)
    order = Order.objects.get(pk=refund.order_id)
    assert not handled.abnormal and handled.state == "succeeded"
    assert (order.refunded_amount, order.refund_reserved) == (300, 300)  # no money moved
    row = AuditLog.objects.get(action="trades.refund.abnormal_resolved", target_id=refund.pk)
    assert row.actor == agent and row.reason == "WeChat confirmed one refund only (ticket 8812)"
    assert row.data["state"] == "succeeded" and row.data["amount"] == 300
    html = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert _count(html, "abnormal") == 0 and "No abnormal refunds" in html
    assert _home_counts(client)["Abnormal refunds"] == "0"


def test_a_pending_abnormal_refund_marked_handled_is_asked_about_again(tea_house, client, agent):
    refund = _abnormal(tea_house, "AB2")
    client.post(reverse("trades:refund-handled", args=[refund.pk]),
                {"note": "card reopened", "outcome": "requery", "order": refund.order_id})
    handled = Refund.objects.get(pk=refund.pk)
    assert not handled.abnormal and handled.state == "pending"
    assert handled.next_query_at is not None and handled.next_query_at <= timezone.now()  # the sweeper asks next


def test_marking_handled_rechecks_the_flag_under_the_lock(tea_house, staff_member):
    from trades.services.staff import refund_abnormal_resolve

    agent = staff_member("support_agent", username="wu.support")
    refund = _abnormal(tea_house, "AB3", state="failed")
    refund_abnormal_resolve(refund_id=refund.pk, actor=agent, note="settled")
    with pytest.raises(InvalidState):
        refund_abnormal_resolve(refund_id=refund.pk, actor=agent, note="settled again")
    with pytest.raises(InvalidRequest):
        refund_abnormal_resolve(refund_id=refund.pk, actor=agent, note="")
    assert AuditLog.objects.filter(action="trades.refund.abnormal_resolved", target_id=refund.pk).count() == 1


@pytest.mark.parametrize("role", ["finance", "operations"])
def test_only_who_may_refund_may_mark_an_abnormal_refund_handled(tea_house, client, staff_member, role):
    refund = _abnormal(tea_house, f"AB-{role}")
    client.force_login(staff_member(role))
    assert client.post(reverse("trades:refund-handled", args=[refund.pk]), {"note": "x"}).status_code == 403
    assert "Mark handled" not in client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert Refund.objects.get(pk=refund.pk).abnormal


def test_the_trade_page_offers_mark_handled_on_an_abnormal_refund(tea_house, client, agent):
    refund = _abnormal(tea_house, "AB4", state="succeeded")
    html = client.get(reverse("trades:detail", args=[refund.order_id])).content.decode()
    assert f'data-refund-handle="{refund.pk}"' in html
    response = client.post(reverse("trades:refund-handled", args=[refund.pk]),
                           {"note": "checked with the channel", "order": refund.order_id})
    assert response.url == reverse("trades:detail", args=[refund.order_id])
    assert "trades.refund.abnormal_resolved" in client.get(response.url).content.decode()


# --- the manual queue ----------------------------------------------------------------------------------------------
def _reverse_held(shop, out_trade_no: str) -> Order:
    """A paid payment-code order whose reverse the channel never answered, past the ladder's last rung."""
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "barcode", "subject": "tea",
        "auth_code": PAID_AT_ONCE})
    assert status == 201 and order["state"] == "succeeded", order
    shop.sim("wechatpay", "/_control/faults", fault="http_500", times=2,
             match={"path": f"out-trade-no/{order['id']}/reverse$"})
    status, _, answer = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/reverse")
    assert status == 200 and answer["state"] == "succeeded", answer
    Order.objects.filter(pk=order["id"]).update(reverse_requested_at=timezone.now() - dt.timedelta(minutes=2),
                                                next_query_at=timezone.now() - dt.timedelta(seconds=1))
    sync_due_orders()
    held = Order.objects.get(pk=order["id"])
    assert held.state == "succeeded" and held.sync_state == "manual" and held.refund_reserved == 1500
    return held


def test_the_manual_queue_lists_a_paid_order_whose_reverse_was_not_confirmed_and_says_why(
        shop, client, agent, quiet_channels):
    held = _reverse_held(shop, "MQ-REV-1")
    html = client.get(reverse("trades:queue", args=["unknown"])).content.decode()
    assert f'data-order="{held.pk}"' in html and _count(html, "unknown") == 1
    why = re.search(rf'data-why="{held.pk}">([^<]*)', html).group(1)
    assert "reverse not confirmed" in why and "15.00 yuan held" in why
    assert _home_counts(client)["Unknown outcomes"] == "1"
    detail = client.get(reverse("trades:detail", args=[held.pk])).content.decode()
    assert 'id="reverse-retry-form"' in detail and "reverse not confirmed" in detail


def test_asking_the_channel_again_needs_a_reason_then_reverses_and_releases_the_hold(
        shop, client, agent, quiet_channels):
    held = _reverse_held(shop, "MQ-REV-2")
    url = reverse("trades:reverse-retry", args=[held.pk])
    client.post(url, {"reason": ""})
    assert Order.objects.get(pk=held.pk).reverse_requested_at is not None  # a reason is required
    assert not AuditLog.objects.filter(action="trades.order.staff_reverse_retried").exists()

    response = client.post(url, {"reason": "payer at the counter asked for the money back", "order": held.pk})
    assert response.url == reverse("trades:detail", args=[held.pk])
    reversed_ = Order.objects.get(pk=held.pk)
    assert reversed_.state == "reversed" and reversed_.reverse_requested_at is None
    # The hold is gone; the reversal refunded the whole payment (trades.services.orders._reversal_refunded).
    assert reversed_.refund_reserved == reversed_.refunded_amount == 1500 and reversed_.sync_state == "ok"
    row = AuditLog.objects.get(action="trades.order.staff_reverse_retried", target_id=held.pk)
    assert row.actor == agent and row.reason == "payer at the counter asked for the money back"
    assert row.data["state"] == "succeeded" and row.data["held"] == 1500
    html = client.get(reverse("trades:queue", args=["unknown"])).content.decode()
    assert f'data-order="{held.pk}"' not in html and _count(html, "unknown") == 0


def test_asking_again_is_refused_when_no_reverse_is_waiting_and_for_roles_that_may_not_refund(
        tea_house, client, staff_member):
    paid = _order(tea_house, "MQ-PAID", state="succeeded")
    client.force_login(staff_member("support_agent", username="he.support"))
    client.post(reverse("trades:reverse-retry", args=[paid.pk]), {"reason": "why not"})
    assert not AuditLog.objects.filter(action="trades.order.staff_reverse_retried").exists()
    held = _order(tea_house, "MQ-HELD", state="succeeded", sync_state="manual", refund_reserved=1000,
                  reverse_requested_at=timezone.now())
    client.force_login(staff_member("finance"))
    assert client.post(reverse("trades:reverse-retry", args=[held.pk]), {"reason": "x"}).status_code == 403
    assert Order.objects.get(pk=held.pk).reverse_requested_at is not None

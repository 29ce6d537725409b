"""What the trade workbench does with input nobody meant to type (issue 5 "Staff pages", design §5 rule 12): a NUL
byte — pasted from a terminal, or sent by a hand-made request — in a trade URL, a note or reason, or the hidden
"back to this trade" field. PostgreSQL refuses a NUL in a text parameter, so each of these answered 500, and a staff
close had already had the channel close the order before its audit row failed. Now a URL naming no trade is 404,
a note or reason is refused naming the field before anything is done, and a done action still comes back to the
page it was pressed on. Since then every staff page refuses a NUL in any parameter before its view runs
(aggpay/staff/nul_guard.py, 400 naming the field); the services refuse it too, for callers other than the pages.
Also: the timeline shows every amount an audit row keeps in fen in yuan."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from tests.trades.test_staff_workbench import _order, _paid
from trades.models import ChannelCall, Delivery, LatePayment, Order, Refund
from trades.services.late import BY_HAND_OUTCOMES
from trades.services.staff import (
    order_close_by_staff,
    order_manual_requery,
    order_manual_resolve,
    order_reverse_retry,
    refund_abnormal_resolve,
)

NUL = "\x00"


def _abnormal(merchant, no: str) -> Refund:
    paid = _order(merchant, no, state="succeeded", refund_reserved=300)
    return Refund.objects.create(order=paid, merchant=merchant, out_refund_no=f"R{no}", amount=300,
                                 request_fingerprint="x", requested_by="api:x", abnormal=True)


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


# --- ids in the URL -----------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_trade_url_with_a_nul_byte_is_refused_and_does_nothing(tea_house, client, agent):
    assert client.get(f"/staff/trades/ord_{NUL}x/").status_code == 400
    for url in (f"/staff/trades/ord_{NUL}/sync/", f"/staff/trades/ord_{NUL}/handled/",
                f"/staff/trades/refunds/ref_{NUL}/handled/",
                f"/staff/trades/queues/exhausted/{tea_house.merchant_no}{NUL}/resend/"):
        assert client.post(url, {"reason": "x", "note": "x"}).status_code == 400, repr(url)
    assert not AuditLog.objects.filter(action__startswith="trades.").exists()


# --- notes and reasons --------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_note_with_a_nul_byte_is_refused_naming_the_field_and_changes_nothing(tea_house, client, agent):
    handled = _order(tea_house, "NUL-1", state="succeeded", sync_state="manual")
    pending = _order(tea_house, "NUL-2", sync_state="manual")
    refund = _abnormal(tea_house, "NUL-3")
    late = LatePayment.objects.create(order=_order(tea_house, "NUL-4", state="closed"), channel_trade_no="4200044",
                                      amount=1000)
    held = _order(tea_house, "NUL-5", state="succeeded", sync_state="manual", refund_reserved=1000,
                  reverse_requested_at=timezone.now() - dt.timedelta(hours=1))
    posts = [
        (reverse("trades:order-handled", args=[handled.pk]), {"note": f"settled{NUL}"}),
        (reverse("trades:order-requery", args=[pending.pk]), {"note": f"asked{NUL}", "channel_said": "unclear"}),
        (reverse("trades:refund-handled", args=[refund.pk]), {"note": f"settled{NUL}"}),
        (reverse("trades:late-settle", args=[late.pk]), {"note": f"kept{NUL}", "outcome": next(iter(BY_HAND_OUTCOMES))}),
        (reverse("trades:reverse-retry", args=[held.pk]), {"reason": f"again{NUL}"}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 400, url
        assert "NUL character" in response.content.decode(), url

    assert Order.objects.get(pk=handled.pk).sync_state == "manual"
    assert Order.objects.get(pk=pending.pk).sync_state == "manual"
    assert Refund.objects.get(pk=refund.pk).abnormal
    assert LatePayment.objects.get(pk=late.pk).state == "open"
    assert Order.objects.get(pk=held.pk).refund_reserved == 1000
    assert not AuditLog.objects.filter(action__startswith="trades.").exists()


@pytest.mark.django_db
def test_the_staff_services_refuse_a_nul_byte_in_a_note_or_reason_naming_it(tea_house, agent):
    handled = _order(tea_house, "NUL-6", state="succeeded", sync_state="manual")
    pending = _order(tea_house, "NUL-7", sync_state="manual")
    refund = _abnormal(tea_house, "NUL-8")
    held = _order(tea_house, "NUL-9", state="succeeded", sync_state="manual", refund_reserved=1000,
                  reverse_requested_at=timezone.now())
    calls = [
        (lambda: order_manual_resolve(order_id=handled.pk, actor=agent, note=NUL), "note"),
        (lambda: order_manual_requery(order_id=pending.pk, actor=agent, note=f"a{NUL}b", channel_said="unclear"),
         "note"),
        (lambda: refund_abnormal_resolve(refund_id=refund.pk, actor=agent, note=f"a{NUL}"), "note"),
        (lambda: order_reverse_retry(order_id=held.pk, actor=agent, reason=f"{NUL}a"), "reason"),
        (lambda: order_close_by_staff(order_id=pending.pk, actor=agent, reason=f"left{NUL}"), "reason"),
    ]
    for call, param in calls:
        with pytest.raises(InvalidRequest) as caught:
            call()
        assert caught.value.param == param
    assert not AuditLog.objects.filter(action__startswith="trades.").exists()


def test_a_close_whose_reason_has_a_nul_byte_is_refused_before_the_channel_is_asked(shop, client, agent):
    """Bug: the channel was asked to close the order, then the audit row (with the reason) failed — a 500, and the
    order closed at the channel but still pending here."""
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "T-CLOSE-NUL", "amount": 800, "product": "wechat.native", "subject": "tea"})
    assert status == 201
    response = client.post(reverse("trades:close", args=[created["id"]]), {"reason": f"customer left{NUL}"})
    assert response.status_code == 400 and "“reason”" in response.content.decode()
    assert Order.objects.get(pk=created["id"]).state == "pending"
    assert not ChannelCall.objects.filter(order_id=created["id"], verb="close").exists()
    assert not AuditLog.objects.filter(action="trades.order.staff_closed").exists()


def test_resend_with_a_nul_byte_in_the_reason_is_refused_and_resends_nothing(shop, client, agent):
    order = _paid(shop, "T-RESEND-NUL")
    delivery = shop.wait_for(lambda: Delivery.objects.filter(event__object_id=order.pk, state="delivered").first(),
                             message="the notification delivered")
    response = client.post(reverse("trades:delivery-resend", args=[delivery.pk]),
                           {"reason": f"lost{NUL}", "order": order.pk})
    assert response.status_code == 400 and "“reason”" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempt_log.count() == 1
    response = client.post(reverse("trades:resend-exhausted", args=[shop.merchant.merchant_no]),
                           {"reason": f"fixed{NUL}"})
    assert response.status_code == 400
    assert not AuditLog.objects.filter(action="trades.delivery.resent").exists()


# --- the hidden "back to this trade" field ------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_nul_byte_in_the_back_field_refuses_the_action_before_it_is_done(tea_house, client, agent):
    # It used to be looked up after the action was done: a done action answered 500.
    refund = _abnormal(tea_house, "NUL-10")
    response = client.post(reverse("trades:refund-handled", args=[refund.pk]),
                           {"note": "WeChat confirmed (ticket 8812)", "order": f"{refund.order_id}{NUL}"})
    assert response.status_code == 400 and "“order”" in response.content.decode()
    assert Refund.objects.get(pk=refund.pk).abnormal


# --- amounts on the timeline --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_timeline_shows_held_and_reported_amounts_in_yuan_like_the_amount_beside_them(tea_house, client, agent):
    """A refund amount mismatch reads "reported: 1499 · amount: 15.00 yuan" — the channel's figure in fen beside ours
    in yuan, as if it had reported a hundred times more; a reverse retry's "held: 1500" read as 1500 yuan."""
    refund = _abnormal(tea_house, "FEN-1")
    order = Order.objects.get(pk=refund.order_id)
    late = LatePayment.objects.create(order=_order(tea_house, "FEN-2", state="closed"), channel_trade_no="4200052",
                                      amount=1500)
    with transaction.atomic():
        audit_log(actor="channel:wx", action="trades.refund.amount_mismatch", target=refund,
                  data={"reported": 1499, "amount": 300})
        audit_log(actor=agent, action="trades.order.staff_reverse_retried", target=order, reason="again",
                  data={"held": 1500})
        audit_log(actor="channel:wx", action="trades.late_payment.refund", target=late.order,
                  data={"amount": 1500, "reported_amount": 150})
    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert "reported:</span> 14.99 yuan" in html and "amount:</span> 3.00 yuan" in html
    assert "held:</span> 15.00 yuan" in html
    html = client.get(reverse("trades:detail", args=[late.order_id])).content.decode()
    assert "reported_amount:</span> 1.50 yuan" in html and "amount:</span> 15.00 yuan" in html

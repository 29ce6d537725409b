"""Settling by hand what support settled outside aggpay (issue 5 "Staff pages"), each with a required note,
permission ``trades.refund_order``, and an audit row in the same transaction (design §5 rule 9):

- "Settled by hand" for an open late payment the channel refunded by hand, or the merchant kept: it is resolved and
  leaves the late-payment queue. Never while it is being refunded — that would race the channel's refund.
- The manual queue: an order no longer pending is "Mark handled" (sync ok; state, amounts and holds unchanged). A
  pending one can only go back on the query ladder ("Ask again from now"): a payment is recorded only from the
  channel's own answer (design §5 rule 2), which the sweeper then asks for. An order holding a reverse is left to
  "Ask the channel again".
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import Forbidden, InvalidRequest, InvalidState
from aggpay.models import AuditLog
from tests.trades.test_late_payments_settle import _late
from tests.trades.test_order_sweepers import _create, _hold_callbacks
from tests.trades.test_staff_workbench import _order
from trades.models import LatePayment, Order
from trades.services.staff import late_payment_settle_by_staff, order_manual_requery, order_manual_resolve
from trades.tasks_orders import sync_due_orders

ACTIONS = ["trades.late_payment.settled_by_hand", "trades.order.staff_marked_handled", "trades.order.staff_requeried"]
NOTE = "WeChat merchant desk refunded it by hand (ticket 4471)"


def _count(html: str, slug: str) -> int:
    return int(re.search(rf'data-queue="{slug}".*?data-count="(\d+)"', html, re.S).group(1))


def _queue(client, slug: str) -> str:
    return client.get(reverse("trades:queue", args=[slug])).content.decode()


def _late_open(merchant, no: str, *, state: str = "open") -> LatePayment:
    closed = _order(merchant, no, state="closed")
    return LatePayment.objects.create(order=closed, channel_trade_no=f"42000{no}", amount=1000, state=state)


def _manual(merchant, no: str, **fields) -> Order:
    fields.setdefault("state", "succeeded")
    return _order(merchant, no, sync_state="manual", **fields)


def _audits(action: str) -> int:
    return AuditLog.objects.filter(action=action).count()


# --- late payments: settled by hand --------------------------------------------------------------------------------
def test_an_open_late_payment_settled_by_hand_is_resolved_audited_and_leaves_the_queue(tea_house, client, agent):
    late = _late_open(tea_house, "LH1")
    html = _queue(client, "late")
    assert _count(html, "late") == 1 and f'data-settle="{late.pk}"' in html and "Settled by hand" in html

    url = reverse("trades:late-settle", args=[late.pk])
    client.post(url, {"outcome": "refunded_outside", "note": "  "})
    client.post(url, {"outcome": "", "note": NOTE})
    assert LatePayment.objects.get(pk=late.pk).state == "open"  # a note and an outcome are required
    assert _audits("trades.late_payment.settled_by_hand") == 0

    response = client.post(url, {"outcome": "refunded_outside", "note": NOTE})
    assert response.status_code == 302 and response.url == reverse("trades:queue", args=["late"])
    settled = LatePayment.objects.get(pk=late.pk)
    assert settled.state == "resolved"
    assert "settled by hand: refunded outside aggpay" in settled.resolution and NOTE in settled.resolution
    row = AuditLog.objects.get(action="trades.late_payment.settled_by_hand", target_id=late.order_id)
    assert row.actor == agent and row.reason == NOTE
    assert row.data == {"late_payment": late.pk, "outcome": "refunded_outside", "amount": 1000,
                        "channel_trade_no": "42000LH1", "from": "open", "to": "resolved"}
    html = _queue(client, "late")
    assert _count(html, "late") == 0 and f'data-late="{late.pk}"' not in html


def test_a_late_payment_the_merchant_kept_is_settled_from_the_trade_page(tea_house, client, agent):
    late = _late_open(tea_house, "LH2")
    detail = reverse("trades:detail", args=[late.order_id])
    assert 'id="settle-late-form"' in client.get(detail).content.decode()
    response = client.post(reverse("trades:late-settle", args=[late.pk]),
                           {"outcome": "kept_by_merchant", "note": "goods delivered, payer agreed",
                            "order": late.order_id})
    assert response.url == detail
    assert "kept by the merchant" in LatePayment.objects.get(pk=late.pk).resolution
    html = client.get(detail).content.decode()
    assert "trades.late_payment.settled_by_hand" in html and 'id="settle-late-form"' not in html


@pytest.mark.parametrize("state", ["refunding", "resolved"])
def test_a_late_payment_being_refunded_or_already_resolved_is_not_settled_by_hand(tea_house, client, agent, state):
    late = _late_open(tea_house, f"LH-{state}", state=state)
    response = client.post(reverse("trades:late-settle", args=[late.pk]),
                           {"outcome": "refunded_outside", "note": NOTE}, follow=True)
    assert ("being refunded at the channel" if state == "refunding" else "already resolved") in \
        response.content.decode()
    assert LatePayment.objects.get(pk=late.pk).state == state
    assert _audits("trades.late_payment.settled_by_hand") == 0
    with pytest.raises(InvalidState):
        late_payment_settle_by_staff(late_payment_id=late.pk, actor=agent, outcome="kept_by_merchant", note=NOTE)


@pytest.mark.usefixtures("quiet_channels")
def test_a_late_payment_whose_refund_the_channel_keeps_failing_is_closed_by_hand(
        shop, simulator_server, settings, client, agent):
    late = _late(shop, simulator_server, settings, "LP-BYHAND-1", auto=False)
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="NOT_ENOUGH", message="基本账户余额不足",
             status=403, times=2, match={"path": "/v3/refund/domestic/refunds$"})
    for _ in range(2):  # the same late_<order id> refund, refused twice
        client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": "the payer asked for the money back"})
        assert LatePayment.objects.get(pk=late.pk).state == "open"
    assert "refund failed at the channel" in LatePayment.objects.get(pk=late.pk).resolution

    client.post(reverse("trades:late-settle", args=[late.pk]), {"outcome": "refunded_outside", "note": NOTE})
    settled = LatePayment.objects.get(pk=late.pk)
    assert settled.state == "resolved" and NOTE in settled.resolution
    assert _count(_queue(client, "late"), "late") == 0


# --- the manual queue: mark handled ----------------------------------------------------------------------------------
def test_a_paid_order_in_the_manual_queue_is_marked_handled_and_leaves_the_queue(tea_house, client, agent):
    paid = _manual(tea_house, "MH1", refunded_amount=0, refund_reserved=0)
    html = _queue(client, "unknown")
    assert _count(html, "unknown") == 1 and f'data-mark-handled="{paid.pk}"' in html
    assert f'data-requery="{paid.pk}"' not in html

    url = reverse("trades:order-handled", args=[paid.pk])
    client.post(url, {"note": ""})
    assert Order.objects.get(pk=paid.pk).sync_state == "manual"  # a note is required
    response = client.post(url, {"note": "the channel confirmed it paid; the reverse is not wanted"})
    assert response.status_code == 302 and response.url == reverse("trades:queue", args=["unknown"])

    handled = Order.objects.get(pk=paid.pk)
    assert (handled.state, handled.sync_state, handled.next_query_at) == ("succeeded", "ok", None)
    assert (handled.amount, handled.refunded_amount, handled.refund_reserved) == (1000, 0, 0)  # nothing else
    row = AuditLog.objects.get(action="trades.order.staff_marked_handled", target_id=paid.pk)
    assert row.actor == agent and row.reason == "the channel confirmed it paid; the reverse is not wanted"
    assert row.data["state"] == "succeeded" and row.data["sync_state"] == "manual"
    html = _queue(client, "unknown")
    assert _count(html, "unknown") == 0 and f'data-order="{paid.pk}"' not in html


def test_the_trade_page_offers_mark_handled_and_comes_back_to_it(tea_house, client, agent):
    paid = _manual(tea_house, "MH2")
    detail = reverse("trades:detail", args=[paid.pk])
    assert 'id="mark-handled-form"' in client.get(detail).content.decode()
    response = client.post(reverse("trades:order-handled", args=[paid.pk]), {"note": "checked", "order": paid.pk})
    assert response.url == detail
    html = client.get(detail).content.decode()
    assert "trades.order.staff_marked_handled" in html and 'id="mark-handled-form"' not in html


def test_marking_handled_rechecks_the_queue_under_the_lock(tea_house, agent):
    paid = _manual(tea_house, "MH3")
    order_manual_resolve(order_id=paid.pk, actor=agent, note="settled")
    with pytest.raises(InvalidState):
        order_manual_resolve(order_id=paid.pk, actor=agent, note="settled again")
    with pytest.raises(InvalidRequest):
        order_manual_resolve(order_id=paid.pk, actor=agent, note=" ")
    assert _audits("trades.order.staff_marked_handled") == 1


@pytest.mark.parametrize("state", ["succeeded", "pending"])
def test_an_order_holding_a_reverse_is_left_to_asking_the_channel_again(tea_house, client, agent, state):
    held = _manual(tea_house, f"MH-HOLD-{state}", state=state, refund_reserved=1000,
                   reverse_requested_at=timezone.now())
    html = _queue(client, "unknown")
    assert f'data-mark-handled="{held.pk}"' not in html and f'data-requery="{held.pk}"' not in html
    response = client.post(reverse("trades:order-handled", args=[held.pk]), {"note": "x"}, follow=True)
    assert "Ask the channel again" in response.content.decode()
    client.post(reverse("trades:order-requery", args=[held.pk]), {"note": "x", "channel_said": "unclear"})
    after = Order.objects.get(pk=held.pk)
    assert (after.state, after.sync_state, after.refund_reserved) == (state, "manual", 1000)
    assert after.reverse_requested_at is not None
    assert not AuditLog.objects.filter(target_id=held.pk).exists()


# --- the manual queue: a pending order only goes back on the ladder -------------------------------------------------
@pytest.mark.usefixtures("quiet_channels")
def test_a_pending_order_can_only_be_put_back_on_the_ladder_and_the_sweeper_then_asks_the_channel(shop, client,
                                                                                                   agent):
    order = _create(shop, "MH-PEND-1")
    _hold_callbacks(shop, order["id"])
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])  # paid; we have not heard
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - dt.timedelta(hours=25),
                                                sync_state="manual", next_query_at=None, query_attempts=12)
    html = _queue(client, "unknown")
    assert f'data-requery="{order["id"]}"' in html and f'data-mark-handled="{order["id"]}"' not in html

    refused = client.post(reverse("trades:order-handled", args=[order["id"]]), {"note": "paid, says WeChat"},
                          follow=True).content.decode()
    assert "is pending" in refused and "Sync now" in refused
    requery = reverse("trades:order-requery", args=[order["id"]])
    refused = client.post(requery, {"note": "WeChat says paid", "channel_said": "paid"}, follow=True).content.decode()
    assert "never by hand" in refused and "Sync now" in refused  # no payment by hand
    client.post(requery, {"note": "", "channel_said": "unclear"})  # a note is required
    stuck = Order.objects.get(pk=order["id"])
    assert (stuck.state, stuck.sync_state, stuck.query_attempts) == ("pending", "manual", 12)
    assert not AuditLog.objects.filter(target_id=order["id"], action__startswith="trades.order.staff_").exists()

    response = client.post(requery, {"note": "WeChat desk could not say; asking again", "channel_said": "unclear"})
    assert response.url == reverse("trades:queue", args=["unknown"])
    queued = Order.objects.get(pk=order["id"])
    assert (queued.state, queued.sync_state, queued.query_attempts) == ("pending", "unknown", 0)
    assert queued.next_query_at <= timezone.now()
    row = AuditLog.objects.get(action="trades.order.staff_requeried", target_id=order["id"])
    assert row.actor == agent and row.reason == "WeChat desk could not say; asking again"
    assert row.data == {"state": "pending", "sync_state": "manual", "query_attempts": 12, "channel_said": "unclear"}

    sync_due_orders()  # the channel's own answer settles it
    paid = Order.objects.get(pk=order["id"])
    assert (paid.state, paid.sync_state) == ("succeeded", "ok")
    assert _count(_queue(client, "unknown"), "unknown") == 0


def test_asking_again_is_only_for_pending_orders_in_the_manual_queue(tea_house, agent):
    paid = _manual(tea_house, "MH-RQ-PAID")
    with pytest.raises(InvalidState):
        order_manual_requery(order_id=paid.pk, actor=agent, note="x", channel_said="unclear")
    on_ladder = _order(tea_house, "MH-RQ-LADDER", sync_state="unknown")
    with pytest.raises(InvalidState):
        order_manual_requery(order_id=on_ladder.pk, actor=agent, note="x", channel_said="not_paid")
    with pytest.raises(InvalidRequest):
        order_manual_requery(order_id=on_ladder.pk, actor=agent, note="x", channel_said="")
    assert _audits("trades.order.staff_requeried") == 0


# --- who may, and how -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["finance", "operations"])
def test_only_who_may_refund_may_settle_by_hand_or_clear_the_manual_queue(tea_house, client, staff_member, role):
    late = _late_open(tea_house, f"LH-{role}")
    paid = _manual(tea_house, f"MH-{role}")
    pending = _manual(tea_house, f"MH-P-{role}", state="pending")
    user = staff_member(role)
    client.force_login(user)
    assert client.post(reverse("trades:late-settle", args=[late.pk]),
                       {"outcome": "refunded_outside", "note": NOTE}).status_code == 403
    assert client.post(reverse("trades:order-handled", args=[paid.pk]), {"note": "x"}).status_code == 403
    assert client.post(reverse("trades:order-requery", args=[pending.pk]),
                       {"note": "x", "channel_said": "unclear"}).status_code == 403
    with pytest.raises(Forbidden):  # the service checks too
        order_manual_resolve(order_id=paid.pk, actor=user, note="x")
    assert LatePayment.objects.get(pk=late.pk).state == "open"
    assert Order.objects.filter(pk__in=[paid.pk, pending.pk], sync_state="manual").count() == 2
    assert not AuditLog.objects.filter(action__in=ACTIONS).exists()


def test_a_get_changes_nothing(tea_house, client, agent):
    late = _late_open(tea_house, "LH-GET")
    paid = _manual(tea_house, "MH-GET")
    pending = _manual(tea_house, "MH-P-GET", state="pending")
    for url in (reverse("trades:late-settle", args=[late.pk]), reverse("trades:order-handled", args=[paid.pk]),
                reverse("trades:order-requery", args=[pending.pk])):
        assert client.get(url, {"note": "x", "outcome": "kept_by_merchant", "channel_said": "unclear"}).status_code \
            == 405
    assert LatePayment.objects.get(pk=late.pk).state == "open"
    assert Order.objects.filter(pk__in=[paid.pk, pending.pk], sync_state="manual").count() == 2
    assert not AuditLog.objects.filter(action__in=ACTIONS).exists()

"""A late payment is never lost (design §5 rule 3): it is resolved only when the channel says its refund
succeeded. A refund still processing, or a call nobody answered, keeps it ``refunding`` and the sweeper asks again;
a refund the channel refuses, closes or cannot return reopens it for a person with the channel's reason; one left
``refunding`` by a crash (intent recorded, channel never asked) is refunded by the sweeper or from the queue.

Payments arrive on the WeChat simulator after a local close; its refunds answer PROCESSING and are decided through
its control endpoint.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import wechatpay as wechat_sim
from tests.trades.test_faults import _notify_success
from trades.models import ChannelCall, LatePayment
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


@pytest.fixture
def slow_refunds(shop):
    """The simulator keeps refunds PROCESSING (no notice of its own) until the test decides them."""
    sp_mchid = shop.accounts["wechatpay"].config["sp_mchid"]
    shop.sim("wechatpay", f"/_control/accounts/{sp_mchid}/settings", refund_delay_seconds=3600)
    return sp_mchid


def _late(shop, simulator_server, settings, out_trade_no: str, *, auto: bool, amount: int = 1500) -> LatePayment:
    """An order closed here, then paid at the wallet anyway: a late payment (refunded at once if ``auto``)."""
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = auto
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    status, _, closed = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/close")
    assert status == 200 and closed["state"] == "closed"
    _notify_success(shop, simulator_server, order["id"])
    found = LatePayment.objects.filter(order_id=order["id"])
    # Refunded at once: wait for the channel's answer to be noted, not just for the intent.
    found = found.filter(state="refunding").exclude(resolution="") if auto else found.filter(state="open")
    return shop.wait_for(found.first, message="the late payment")


def _decide(shop, sp_mchid: str, late: LatePayment, status: str) -> None:
    """The channel decides the refund and sends its notice (REFUND.SUCCESS / ABNORMAL / CLOSED)."""
    shop.sim("wechatpay", f"/_control/refunds/late_{late.order_id}", status=status, sp_mchid=sp_mchid)
    shop.sim("wechatpay", "/_control/flush")


def _settled_at_channel_without_notice(simulator_server, sp_mchid: str, late: LatePayment) -> None:
    """The channel finished the refund, but its notice never reached us: only a query can tell."""
    sim = simulator_server.app.apps["wechatpay"]
    sim.store.update(wechat_sim.NS_REFUNDS, f"{sp_mchid}:late_{late.order_id}", settle_at=0)


def _due(late: LatePayment) -> None:
    """Stand-in for the minute the sweeper waits after its last question to the channel (late_payments_refunding)."""
    ChannelCall.objects.filter(order_id=late.order_id, verb__startswith="late_").update(
        created_at=timezone.now() - dt.timedelta(minutes=2))


def _count(html: str, slug: str) -> int:
    return int(re.search(rf'data-queue="{slug}".*?data-count="(\d+)"', html, re.S).group(1))


def test_a_refund_still_processing_keeps_the_late_payment_refunding_until_the_channel_says_succeeded(
        shop, simulator_server, settings, slow_refunds):
    late = _late(shop, simulator_server, settings, "LP-SETTLE-1", auto=True)
    assert late.state == "refunding" and "refund processing at the channel" in late.resolution
    calls = ChannelCall.objects.filter(order_id=late.order_id, verb__startswith="late_")
    asked = calls.count()
    sync_due_orders()  # just asked: not again within the minute
    assert calls.count() == asked

    _due(late)
    sync_due_orders()  # asked again: still processing, nothing changes
    late.refresh_from_db()
    assert late.state == "refunding" and calls.filter(verb="late_query_refund", outcome="processing").exists()

    _decide(shop, slow_refunds, late, "SUCCESS")
    resolved = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").first(),
                             message="the late payment resolved by the refund notice")
    assert "refund succeeded at the channel" in resolved.resolution
    assert not ChannelCallback.objects.filter(account=shop.accounts["wechatpay"],
                                              outcome=CallbackOutcome.REJECTED).exists()
    changes = [row.data["to"] for row in AuditLog.objects.filter(action="trades.late_payment.refund",
                                                                 target_id=late.order_id).order_by("id")]
    assert changes == ["refunding", "resolved"]


def test_the_sweeper_resolves_a_late_payment_whose_refund_notice_never_came(shop, simulator_server, settings,
                                                                             slow_refunds):
    late = _late(shop, simulator_server, settings, "LP-SETTLE-2", auto=True)
    _settled_at_channel_without_notice(simulator_server, slow_refunds, late)
    _due(late)
    sync_due_orders()
    late.refresh_from_db()
    assert late.state == "resolved" and "refund succeeded at the channel" in late.resolution


@pytest.mark.parametrize("status", ["CLOSED", "ABNORMAL"])
def test_a_refund_the_channel_closes_or_cannot_return_reopens_the_late_payment_for_a_person(
        shop, simulator_server, settings, slow_refunds, client, agent, status):
    late = _late(shop, simulator_server, settings, f"LP-REOPEN-{status}", auto=True)
    _decide(shop, slow_refunds, late, status)
    reopened = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="open").first(),
                             message="the late payment back in the queue")
    assert f"refund {status.lower()} at the channel" in reopened.resolution
    assert "needs a person" in reopened.resolution
    row = AuditLog.objects.filter(action="trades.late_payment.refund", target_id=late.order_id).latest("id")
    assert row.data["to"] == "open" and row.data["channel_state"] == status.lower() and "needs a person" in row.reason

    html = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert _count(html, "late") == 1 and f'data-late="{late.pk}"' in html

    sync_due_orders()  # an open late payment waits for a person: the sweeper leaves it
    assert LatePayment.objects.get(pk=late.pk).state == "open"


def test_a_refund_the_channel_refuses_reopens_the_late_payment_with_its_words(shop, simulator_server, settings):
    late = _late(shop, simulator_server, settings, "LP-REFUSED-1", auto=False)
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="NOT_ENOUGH", message="基本账户余额不足",
             status=403, match={"path": "/v3/refund/domestic/refunds$"})
    from trades.services.late import late_payment_refund

    late = late_payment_refund(late_payment_id=late.pk)
    assert late.state == "open" and "refund failed at the channel" in late.resolution
    assert "NOT_ENOUGH" in late.resolution


def test_a_refund_call_nobody_answers_keeps_the_late_payment_refunding_and_the_sweeper_finishes_it(
        shop, simulator_server, settings, slow_refunds):
    shop.sim("wechatpay", "/_control/faults", fault="http_500", match={"path": "/v3/refund/domestic/refunds$"})
    late = _late(shop, simulator_server, settings, "LP-UNKNOWN-1", auto=True)
    assert "no answer from the channel" in late.resolution  # not resolved, not back in the queue

    _due(late)
    sync_due_orders()  # the channel has no such refund: it is sent now
    late.refresh_from_db()
    assert late.state == "refunding" and "refund processing at the channel" in late.resolution
    _settled_at_channel_without_notice(simulator_server, slow_refunds, late)
    _due(late)
    sync_due_orders()
    assert LatePayment.objects.get(pk=late.pk).state == "resolved"


def test_a_late_payment_left_refunding_by_a_crash_is_refunded_by_the_sweeper(shop, simulator_server, settings,
                                                                              slow_refunds):
    late = _late(shop, simulator_server, settings, "LP-CRASH-1", auto=False)
    # The intent committed (refund_start: refunding, attempt 1 counted); the process died before asking the channel.
    LatePayment.objects.filter(pk=late.pk).update(state="refunding", refund_attempts=1)

    sync_due_orders()
    late.refresh_from_db()
    assert late.state == "refunding" and "refund processing at the channel" in late.resolution
    at_channel = simulator_server.app.apps["wechatpay"].store.get(wechat_sim.NS_REFUNDS,
                                                                   f"{slow_refunds}:late_{late.order_id}")
    assert at_channel["refund"] == 1500
    _due(late)
    sync_due_orders()  # asked again, the same number: still one refund at the channel
    _decide(shop, slow_refunds, late, "SUCCESS")
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").exists(), message="resolved")


def test_support_asks_again_about_a_late_payment_stuck_refunding(shop, simulator_server, settings, slow_refunds,
                                                                  client, agent):
    late = _late(shop, simulator_server, settings, "LP-CRASH-2", auto=False)
    # The intent committed (refund_start: refunding, attempt 1 counted); the process died before asking the channel.
    LatePayment.objects.filter(pk=late.pk).update(state="refunding", refund_attempts=1)

    html = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert _count(html, "late") == 0 and f'data-late-refunding="{late.pk}"' in html
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": "stuck: ask the bank again"})
    late.refresh_from_db()
    assert late.state == "refunding" and "refund processing at the channel" in late.resolution
    staff_row = AuditLog.objects.get(action="trades.late_payment.staff_refund", target_id=late.order_id)
    assert staff_row.actor == agent and staff_row.data["state"] == "refunding"

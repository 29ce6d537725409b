"""The late-payment queue (issue 5: "work the queues: … late payments"; "refund from staff with permission and a
reason (audited)"):

- "Refund to payer" (and "Ask the channel again" on one being refunded) asks for a reason, as the trade page's staff
  refund form does: it is in the ``trades.late_payment.staff_refund`` audit row; without one the refund is refused
  with a message naming the field, and nothing happens — no attempt, no audit row, no channel call;
- the notes written on a late payment are stamped in local time (Asia/Shanghai), as its "Detected" time beside them
  is — a UTC stamp read eight hours early.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from tests.trades.bank_flow import late_refund_failed_first, paid_after_close
from tests.trades.test_staff_workbench import _order
from trades.models import ChannelCall, LatePayment
from trades.services.staff import late_payment_refund_by_staff, late_payment_settle_by_staff


def _open_late(merchant, no: str) -> LatePayment:
    return LatePayment.objects.create(order=_order(merchant, no, state="closed"), channel_trade_no=f"42000{no}",
                                      amount=1000)


def _stamp(note_line: str) -> dt.datetime:
    """The time a late payment's note line starts with ("YYYY-mm-dd HH:MM …"), read as local time."""
    return timezone.make_aware(dt.datetime.strptime(note_line[:16], "%Y-%m-%d %H:%M"))


def _stamped_now(note_line: str, before: dt.datetime, after: dt.datetime) -> bool:
    minute = dt.timedelta(minutes=1)
    return before - minute < _stamp(note_line) <= after


# --- "Refund to payer" needs a reason ------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["", "   "])
def test_refund_to_payer_without_a_reason_is_refused_naming_the_field_and_does_nothing(tea_house, client, agent,
                                                                                      reason):
    late = _open_late(tea_house, f"LQ-NOREASON-{len(reason)}")
    response = client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": reason}, follow=True)

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("reason" in m for m in messages), messages
    late.refresh_from_db()
    assert (late.state, late.refund_attempts, late.resolution) == ("open", 0, "")
    assert not AuditLog.objects.filter(action="trades.late_payment.staff_refund").exists()
    assert not ChannelCall.objects.filter(order_id=late.order_id).exists()
    with pytest.raises(InvalidRequest) as refused:
        late_payment_refund_by_staff(late_payment_id=late.pk, actor=agent, reason=reason)
    assert refused.value.param == "reason"


def test_the_late_queue_asks_for_a_reason_on_each_refund_form(tea_house, client, agent):
    late = _open_late(tea_house, "LQ-FORM-1")
    html = client.get(reverse("trades:queue", args=["late"])).content.decode()
    form = html[html.index(f'data-late-refund="{late.pk}"'):]
    form = form[:form.index("</form>")]
    assert 'name="reason"' in form and "required" in form and "Refund to payer" in form


@pytest.mark.usefixtures("quiet_channels")
def test_refund_to_payer_puts_the_reason_in_the_audit_row(shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False  # left open for support
    late = paid_after_close(shop, simulator_server, "LQ-REASON-1")
    assert late.state == "open"

    client.post(reverse("trades:late-refund", args=[late.pk]),
                {"reason": "payer called: paid twice for one order (ticket 5521)"})

    late.refresh_from_db()
    assert late.state in ("refunding", "resolved") and late.refund_attempts == 1
    row = AuditLog.objects.get(action="trades.late_payment.staff_refund", target_id=late.order_id)
    assert row.actor == agent and row.reason == "payer called: paid twice for one order (ticket 5521)"
    assert row.data["amount"] == late.amount


# --- notes in local time -------------------------------------------------------------------------------------------
def test_a_note_settled_by_hand_is_stamped_in_local_time(tea_house, agent):
    late = _open_late(tea_house, "LQ-TZ-1")
    before = timezone.localtime()
    late_payment_settle_by_staff(late_payment_id=late.pk, actor=agent, outcome="kept_by_merchant",
                                 note="the merchant delivered the tea")
    after = timezone.localtime()
    note = LatePayment.objects.get(pk=late.pk).resolution
    assert note.endswith("settled by hand: kept by the merchant — the merchant delivered the tea")
    assert _stamped_now(note, before, after), (note, before)


@pytest.mark.usefixtures("quiet_channels")
def test_the_channels_refusal_is_noted_in_local_time_in_the_queue_as_detected_is(shop, simulator_server, settings,
                                                                                client, agent):
    before = timezone.localtime()
    late = late_refund_failed_first(shop, simulator_server, "LQ-TZ-2")  # the bank fails the automatic refund
    after = timezone.localtime()
    failed = next(line for line in late.resolution.splitlines() if "refund failed" in line)
    assert _stamped_now(failed, before, after), (failed, before)

    html = client.get(reverse("trades:queue", args=["late"])).content.decode()
    row = html[html.index(f'data-late="{late.pk}"'):]
    row = row[:row.index("</tr>")]
    assert f"{timezone.localtime(late.detected_at):%Y-%m-%d %H:%M}" in row  # "Detected", local
    assert failed[:16] in row

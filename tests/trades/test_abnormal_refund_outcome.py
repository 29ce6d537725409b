"""Every pending refund the channel could not return reaches a final outcome or stays followed (a support lead's trial
of the demo: DEMO-0023, ¥42, the bank said "payer account abnormal"). "Mark handled" took it off the queue, the
bank's ABNORMAL to the requery kept it handled and off the ladder, and the refund stayed pending for ever: sync ok,
no next query, the merchant's API saying pending with nothing refundable — money held and nobody following it.

"Mark handled" on a pending refund now asks what becomes of it, on the bank simulator (docs/channels/bank.md §7.3):

- **close the refund** (the money did not go back through the channel): ``pending → closed`` under the locks, its
  amount released so the order is refundable again, the merchant told ``refund.closed`` as for a refund the channel
  closed, audited with the note; and should the bank later say the money went back after all, that is still
  recorded (flagged, then "Ask the channel and record as refunded");
- **keep asking the channel**: it stays on the query ladder, counted from the person's choice, and comes back to the
  abnormal queue, flagged, when the ladder runs out with the bank still saying ABNORMAL.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from tests.trades.bank_flow import paid_at_the_bank, refund, succeeded_after_all
from tests.trades.test_abnormal_refund_handled import (
    BANK_SAYS,
    CHANNEL_ABNORMAL,
    _abnormal_at_the_bank,
    _queue,
)
from tests.trades.test_orders_review_refund_query_after_fail import _bank_changes_its_mind
from tests.trades.test_support_queues import _abnormal, _count, _home_counts
from trades.models import ChannelCall, Event, Order, Refund
from trades.services.refunds import QUERY_CLAIM_PREFIX
from trades.services.staff import refund_abnormal_resolve
from trades.tasks_orders import sync_due_orders

CLOSED_BY_HAND = "trades.refund.closed_by_hand"
NOTE = "bank desk: the payer's card is closed; the shop paid the payer back in cash (ticket 5120)"


def _handled(client, refund_: Refund, *, outcome: str = "", note: str = NOTE, order: bool = False):
    data = {"note": note, **({"outcome": outcome} if outcome else {}), **({"order": refund_.order_id} if order else {})}
    return client.post(reverse("trades:refund-handled", args=[refund_.pk]), data, follow=True)


def _merchant_sees(shop, path: str) -> dict:
    status, _, body = shop.client.request("GET", path)
    assert status == 200, body
    return body


@pytest.mark.usefixtures("quiet_channels")
def test_mark_handled_on_a_pending_abnormal_refund_asks_what_becomes_of_it(shop, simulator_server, client, agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AO-ASK-1", amount=4200)
    html = _queue(client)
    form = html.split(f'data-mark-handled="{flagged.pk}"', 1)[1].split("</form>", 1)[0]
    assert '<option value="close">Close the refund: the money did not go back through the channel</option>' in form
    assert '<option value="requery">Keep asking the channel</option>' in form

    page = _handled(client, flagged).content.decode()  # a note, no outcome: refused, nothing changes
    assert "say what becomes of it" in page
    still = Refund.objects.get(pk=flagged.pk)
    assert still.abnormal and still.state == "pending"
    assert not AuditLog.objects.filter(target_id=flagged.pk, action__in=(
        "trades.refund.abnormal_resolved", CLOSED_BY_HAND)).exists()
    assert _count(_queue(client), "abnormal") == 1


@pytest.mark.usefixtures("quiet_channels")
def test_closing_a_refund_the_bank_could_not_return_releases_it_and_tells_the_merchant(shop, simulator_server,
                                                                                         client, agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AO-CLOSE-1", amount=4200)
    before = _merchant_sees(shop, "/api/v1/orders/AO-CLOSE-1")
    assert before["refundable_amount"] == 0  # the whole amount held by the refund the bank could not return

    response = _handled(client, flagged, outcome="close", order=True)
    assert response.redirect_chain[-1][0] == reverse("trades:detail", args=[flagged.order_id])
    assert "is closed: its ¥42.00 did not go back through the channel and is released" in response.content.decode()

    closed = Refund.objects.get(pk=flagged.pk)
    assert (closed.state, closed.abnormal, closed.sync_state, closed.next_query_at) == ("closed", False, "ok", None)
    order = Order.objects.get(pk=flagged.order_id)
    assert (order.refund_reserved, order.refunded_amount, order.refund_state) == (0, 0, "none")
    # The merchant hears it as it hears a refund the channel closed, and its API says so.
    assert list(Event.objects.filter(object_id=flagged.pk).values_list("type", flat=True)) == ["refund.closed"]
    assert _merchant_sees(shop, "/api/v1/refunds/R-AO-CLOSE-1")["state"] == "closed"
    assert _merchant_sees(shop, "/api/v1/orders/AO-CLOSE-1")["refundable_amount"] == 4200
    row = AuditLog.objects.get(action=CLOSED_BY_HAND, target_id=flagged.pk)
    assert row.actor == agent and row.reason == NOTE
    assert (row.data["from"], row.data["to"], row.data["amount"]) == ("pending", "closed", 4200)
    # Nothing left to follow: out of the abnormal queue and the unknown one, and never asked about again.
    assert _count(_queue(client), "abnormal") == 0 and _home_counts(client)["Abnormal refunds"] == "0"
    assert f'data-refund="{flagged.pk}"' not in client.get(reverse("trades:queue", args=["unknown"])).content.decode()
    sync_due_orders()
    assert not ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").exists()
    page = client.get(reverse("trades:detail", args=[flagged.order_id])).content.decode()
    assert "Refund closed by staff: the money did not go back through the channel" in page


@pytest.mark.usefixtures("quiet_channels")
def test_a_refund_closed_by_hand_that_the_bank_later_returns_is_still_recorded(shop, simulator_server, client, agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AO-CLOSE-2", amount=4200)
    _handled(client, flagged, outcome="close")
    _bank_changes_its_mind(shop, simulator_server, flagged.pk)
    succeeded_after_all(shop, simulator_server, flagged.pk)  # the bank's SUCCESS notice, after all

    again = shop.wait_for(lambda: Refund.objects.filter(pk=flagged.pk, state="closed", abnormal=True).first(),
                          message="the closed refund flagged for the bank's success")
    assert f'data-record-refunded="{again.pk}"' in _queue(client)
    client.post(reverse("trades:refund-record-refunded", args=[again.pk]), {"note": "bank confirms it went back"})
    done = Refund.objects.get(pk=again.pk)
    assert done.state == "succeeded" and not done.abnormal
    order = Order.objects.get(pk=again.order_id)
    assert (order.refunded_amount, order.refund_reserved, order.refund_state) == (4200, 4200, "full")


@pytest.mark.usefixtures("quiet_channels")
def test_keep_asking_leaves_it_on_the_ladder_and_back_in_the_queue_when_the_ladder_runs_out(shop, simulator_server,
                                                                                           client, agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AO-ASK-2", amount=4200)
    _handled(client, flagged, outcome="requery")
    sync_due_orders()  # asked at once; the bank still says ABNORMAL

    followed = Refund.objects.get(pk=flagged.pk)
    assert ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").get().outcome == "abnormal"
    assert followed.state == "pending" and not followed.abnormal and followed.sync_state == "ok"
    assert followed.next_query_at is not None and followed.next_query_at > timezone.now()  # the ladder's next rung
    assert _count(_queue(client), "abnormal") == 0  # handled: not back at once
    page = client.get(reverse("trades:detail", args=[flagged.order_id])).content.decode()
    assert f'data-refund-handle="{flagged.pk}"' in page and "Close the refund" in page  # still closable

    # A day of asking later (its ladder counts from the person's choice), the bank still says ABNORMAL.
    with time_machine.travel(timezone.now() + dt.timedelta(hours=25), tick=True):
        Refund.objects.filter(pk=flagged.pk).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))
        cache.delete(f"{QUERY_CLAIM_PREFIX}{flagged.pk}")
        sync_due_orders()

    back = Refund.objects.get(pk=flagged.pk)
    assert back.abnormal and back.state == "pending" and back.next_query_at is None
    assert _count(_queue(client), "abnormal") == 1 and _home_counts(client)["Abnormal refunds"] == "1"
    said_again = AuditLog.objects.filter(action=CHANNEL_ABNORMAL, target_id=flagged.pk).order_by("pk").last()
    assert said_again.data.get("again") is True and BANK_SAYS in said_again.reason
    # ...where a person closes it.
    _handled(client, back, outcome="close")
    assert Refund.objects.get(pk=flagged.pk).state == "closed"


@pytest.mark.django_db
def test_only_a_refund_the_channel_called_abnormal_can_be_closed_by_hand(tea_house, staff_member):
    agent = staff_member("support_agent", username="qian.support")
    # Flagged for another reason (an answer naming another amount): the channel has not said the money stayed.
    flagged = _abnormal(tea_house, "AO-GUARD-1")
    with pytest.raises(InvalidState):
        refund_abnormal_resolve(refund_id=flagged.pk, actor=agent, note="close it", outcome="close")
    with pytest.raises(InvalidRequest):
        refund_abnormal_resolve(refund_id=flagged.pk, actor=agent, note="close it", outcome="later")
    still = Refund.objects.get(pk=flagged.pk)
    assert still.state == "pending" and still.abnormal
    assert Order.objects.get(pk=flagged.order_id).refund_reserved == 300


@pytest.mark.usefixtures("quiet_channels")
def test_a_refund_still_with_the_bank_is_not_closed_by_hand(shop, simulator_server, agent):
    order = paid_at_the_bank(shop, "AO-GUARD-2", amount=1000)
    status, asked = refund(shop, order, "R-AO-GUARD-2", 1000)
    assert status == 201 and asked["state"] == "pending", asked
    with pytest.raises(InvalidState):
        refund_abnormal_resolve(refund_id=asked["id"], actor=agent, note="close it", outcome="close")
    assert Refund.objects.get(pk=asked["id"]).state == "pending"

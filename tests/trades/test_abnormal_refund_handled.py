"""An abnormal refund a person has marked handled (issue 5: "work the queues: … abnormal refunds"), on the bank
simulator (docs/channels/bank.md §7.3: ABNORMAL, the bank could not return the money to the payer's account):

- "Mark handled", keeping asking the bank (a pending refund asks what becomes of it: test_abnormal_refund_outcome),
  has the bank asked again at once; when it still answers ABNORMAL about the same refund, the refund stays handled —
  it does not come straight back to the queue and the home tile (support could never clear it) but stays on the
  query ladder — while a different later word, the bank's SUCCESS, still settles it;
- the bank's reason ("payer account abnormal…") is kept on the refund and shown in the abnormal queue and in the
  trade page's refunds table, not only in the raw notice; and the trade page says the order's amount is held by a
  refund the bank could not return, not that the order is fully refunded.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from aggpay.models import AuditLog
from tests.trades.bank_flow import (
    bank_refunds,
    paid_at_the_bank,
    refund,
    refund_in_state,
    settle_now,
    succeeded_after_all,
)
from tests.trades.test_support_queues import _count, _home_counts
from trades.models import ChannelCall, Order, Refund
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

BANK_SAYS = "payer account abnormal, money could not be returned"  # the simulator's fail_reason for ABNORMAL
CHANNEL_ABNORMAL = "trades.refund.channel_abnormal"  # the audit row of the bank's first ABNORMAL about a refund


def _abnormal_at_the_bank(shop, simulator_server, no: str, *, amount: int = 1000) -> Refund:
    """A bank-paid order refunded in full; the bank cannot return the money (ABNORMAL) and says so in its notice."""
    order = paid_at_the_bank(shop, no, amount=amount)
    bank_refunds(shop, refund_outcome="ABNORMAL", refund_seconds=600)
    status, asked = refund(shop, order, f"R-{no}", amount)
    assert status == 201 and asked["state"] == "pending", asked
    settle_now(shop, simulator_server, asked["id"])
    return shop.wait_for(lambda: Refund.objects.filter(pk=asked["id"], abnormal=True).first(),
                         message="the refund flagged abnormal")


def _queue(client) -> str:
    return client.get(reverse("trades:queue", args=["abnormal"])).content.decode()


def _mark_handled(client, refund: Refund, note: str) -> None:
    response = client.post(reverse("trades:refund-handled", args=[refund.pk]), {"note": note, "outcome": "requery"})
    assert response.status_code == 302, response


def test_a_handled_abnormal_refund_stays_handled_when_the_bank_says_abnormal_again(shop, simulator_server, client,
                                                                                   agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AB-HANDLED-1")
    assert _count(_queue(client), "abnormal") == 1 and _home_counts(client)["Abnormal refunds"] == "1"

    _mark_handled(client, flagged, "bank desk: the payer's card is closed, returned by transfer (ticket 4471)")
    sync_due_orders()  # the sweeper asks the bank at once, as "Mark handled" has it; the bank still says ABNORMAL

    asked = ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund")
    assert asked.count() == 1 and asked.get().outcome == "abnormal"  # the bank was asked, and said it again
    handled = Refund.objects.get(pk=flagged.pk)
    assert not handled.abnormal and handled.state == "pending"
    # Still followed: on the ladder, its next rung a minute on (not asked every sweep, which only repeats the word).
    assert handled.next_query_at is not None and handled.next_query_at > handled.updated_at
    html = _queue(client)
    assert _count(html, "abnormal") == 0 and "No abnormal refunds" in html
    assert _home_counts(client)["Abnormal refunds"] == "0"
    row = AuditLog.objects.get(action="trades.refund.abnormal_resolved", target_id=flagged.pk)
    assert row.actor == agent and "ticket 4471" in row.reason
    # The bank's ABNORMAL is audited once, when it first said it — not again for the repeat.
    assert AuditLog.objects.filter(action=CHANNEL_ABNORMAL, target_id=flagged.pk).count() == 1
    sync_due_orders()
    assert ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").count() == 1  # not due again


def test_a_handled_abnormal_refund_still_succeeds_when_the_bank_later_returns_the_money(shop, simulator_server,
                                                                                      client, agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AB-HANDLED-2")
    _mark_handled(client, flagged, "the payer reopened the account; the bank will pay it out again")
    sync_due_orders()
    assert not Refund.objects.get(pk=flagged.pk).abnormal

    succeeded_after_all(shop, simulator_server, flagged.pk)  # the bank's REFUND_RESULT: SUCCESS after all

    done = refund_in_state(shop, flagged.pk, "succeeded")
    assert not done.abnormal
    order = Order.objects.get(pk=flagged.order_id)
    assert (order.refunded_amount, order.refund_reserved, order.refund_state) == (1000, 1000, "full")
    assert _count(_queue(client), "abnormal") == 0


def test_the_banks_reason_is_shown_in_the_abnormal_queue_and_on_the_trade_page(shop, simulator_server, client,
                                                                               agent):
    flagged = _abnormal_at_the_bank(shop, simulator_server, "AB-REASON-1")
    assert (flagged.failure_code, flagged.failure_message) == ("ABNORMAL", BANK_SAYS)
    row = AuditLog.objects.get(action=CHANNEL_ABNORMAL, target_id=flagged.pk)
    assert row.actor_label == f"channel:{shop.accounts['bank'].code}" and BANK_SAYS in row.reason

    queue = _queue(client)
    assert re.search(rf'data-refund-reason="{flagged.pk}">[^<]*{BANK_SAYS}', queue), queue
    page = client.get(reverse("trades:detail", args=[flagged.order_id])).content.decode()
    reason = re.search(rf'data-refund-reason="{flagged.pk}">(.*?)</div>', page, re.S)
    assert reason and BANK_SAYS in reason.group(1), page
    # Nothing was refunded: the order's whole amount is held by the refund the bank could not return.
    assert "fully refunded" not in page
    said = re.search(r'id="nothing-to-do">(.*?)</p>', page, re.S).group(1)
    assert "¥0.00 of ¥10.00 went back" in said and "¥10.00 is held by refund" in said, said
    assert "could not return" in said and BANK_SAYS in said, said


def test_a_fully_refunded_order_still_says_so(shop, simulator_server, client, agent):
    order = paid_at_the_bank(shop, "AB-FULL-1", amount=1000)
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, asked = refund(shop, order, "R-AB-FULL-1", 1000)
    assert status == 201, asked
    settle_now(shop, simulator_server, asked["id"])
    refund_in_state(shop, asked["id"], "succeeded")
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    said = re.search(r'id="nothing-to-do">(.*?)</p>', page, re.S).group(1)
    assert said == "Nothing to do on a succeeded order that is fully refunded.", said
    assert f'data-refund-reason="{asked["id"]}"' not in page

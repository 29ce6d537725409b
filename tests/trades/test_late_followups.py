"""Late payments after their refunds are retried under new numbers (trades.services.late; design §5 rule 3), from
support's side:

- a payer or the bank quotes the number a late payment's refund went out under (``late_<order id>`` for the first
  attempt, ``late_<id>_<n>`` after), or the bank's own number of that refund (``R…``): the support search opens the
  order;
- a late payment flagged because an earlier refund attempt succeeded after all, whose current attempt the bank says
  it never received, is not sent again (that could return the money twice) — nor asked about for ever: it goes back
  to the late-payment queue as needing a person, who settles it by hand with a note (audited).

Bank A's simulator fails the first refund (its ``refund_outcome`` setting) and keeps it failed, as a real bank does.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from tests.trades.bank_flow import (
    at_the_bank,
    bank_refunds,
    late_refund_failed_first,
    settle_now,
    succeeded_after_all,
)
from trades import workbench
from trades.models import ChannelCall, LatePayment
from trades.services.late import late_payments_refunding, late_refund_no
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

SEARCH = "/staff/trades/"
REASON = "the bank failed the first refund (ticket 3107)"  # "Refund to payer" needs one


def _opened(client, number: str) -> str | None:
    """The trade the search box opens for ``number`` (None if it opens none)."""
    response = client.get(SEARCH, {"q": number})
    return response.url.rstrip("/").rsplit("/", 1)[-1] if response.status_code == 302 else None


def test_support_finds_a_late_payments_order_by_each_number_its_refund_went_out_under(
        shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LF-SEARCH")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    # Support refunds it again: attempt 1.
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON})
    first, retry = late_refund_no(late.order_id), late_refund_no(late.order_id, 1)
    assert at_the_bank(shop, simulator_server, first) and at_the_bank(shop, simulator_server, retry)

    assert _opened(client, first) == late.order_id
    assert _opened(client, retry) == late.order_id
    never_sent = late_refund_no(late.order_id, 2)
    assert client.get(SEARCH, {"q": never_sent}).context["page"].paginator.count == 0


def test_support_finds_a_late_payments_order_by_the_banks_own_refund_number(
        shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LF-BANK-NO")
    # The bank numbers each refund itself (refund_no "R…", docs/channels/bank.md §7.3): the number its staff and its
    # statements quote. Read off the bank's own record, as the caller would have it.
    failed = at_the_bank(shop, simulator_server, late_refund_no(late.order_id))["refund_no"]
    assert failed.startswith("R")
    assert _opened(client, failed) == late.order_id

    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    # Support refunds it again: attempt 1, a new number.
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON})
    retried = at_the_bank(shop, simulator_server, late_refund_no(late.order_id, 1))["refund_no"]
    assert retried != failed
    assert _opened(client, retried) == late.order_id
    assert f'id="late-channel-refund-no">{retried}<' in client.get(
        reverse("trades:detail", args=[late.order_id])).content.decode()

    # Its notice says the money went back: still found by it.
    settle_now(shop, simulator_server, late_refund_no(late.order_id, 1))
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").exists(), message="resolved")
    assert _opened(client, retried) == late.order_id


def test_a_flagged_late_refund_the_bank_never_received_goes_to_a_person_instead_of_being_asked_about_for_ever(
        shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LF-NEVER")
    retry = late_refund_no(late.order_id, 1)
    # Support refunds it again; the request is lost in front of the bank (a 503 from its front end): no answer.
    shop.sim("bank", "/_control/faults", fault="http_503", match={"path": "^/api/refund/apply$", "contains": retry})
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON})
    assert LatePayment.objects.get(pk=late.pk).state == "refunding"
    assert at_the_bank(shop, simulator_server, retry) is None

    # The bank then says the first refund returned the money after all: flagged, a retry could return it twice.
    succeeded_after_all(shop, simulator_server, late_refund_no(late.order_id))
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, abnormal=True).exists(), message="flagged")

    # The sweeper asks about the retry a minute later; the bank has no such refund.
    ChannelCall.objects.filter(order_id=late.order_id).update(created_at=timezone.now() - dt.timedelta(minutes=2))
    sync_due_orders()
    assert at_the_bank(shop, simulator_server, retry) is None  # not sent again
    late.refresh_from_db()
    assert (late.state, late.abnormal) == ("open", True), late.resolution
    assert f"no refund {retry}" in late.resolution
    assert late.pk not in late_payments_refunding()  # no longer asked about
    row = AuditLog.objects.filter(action="trades.late_payment.refund", target_id=late.order_id).latest("id")
    assert (row.data["from"], row.data["to"], row.data["out_refund_no"]) == ("refunding", "open", retry)
    assert row.reason.startswith("needs a person")

    # In the late-payment queue for a person: no refund button, "Settled by hand" offered.
    assert list(workbench.open_late_payments()) == [late]
    queue = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert f'data-settle="{late.pk}"' in queue and f'data-late-abnormal="{late.pk}"' in queue
    assert reverse("trades:late-refund", args=[late.pk]) not in queue
    note = "bank confirmed the first refund returned it; the retry never reached them (ticket 5120)"
    client.post(reverse("trades:late-settle", args=[late.pk]), {"outcome": "refunded_outside", "note": note})
    late.refresh_from_db()
    assert (late.state, late.abnormal) == ("resolved", False) and note in late.resolution
    settled = AuditLog.objects.get(action="trades.late_payment.settled_by_hand", target_id=late.order_id)
    assert settled.actor == agent and settled.reason == note and settled.data["abnormal"] is True

"""Support finds a trade by the channel's number of a refund attempt that failed and was retried (issue 5: search by
any number). A retried refund goes to the channel as a new attempt, which the channel numbers anew; the refund then
shows the new number, but the channel's bill, its back office and the payer's complaint still name the old one —
above all when that old attempt succeeded after all (a possible double refund). Each such number is kept
(trades.models.EarlierRefundNumber) and searched through its own index.

End to end on the bank simulator (its refund numbers ``R…``, docs/channels/bank.md §7.3), the staff search page
through Django's client signed in as a support agent; then the services with the channel's parsed answers."""

from __future__ import annotations

import datetime as dt
import importlib
import json

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.models import AuditLog
from channels.adapters.base import CallbackEvent, RefundResult
from tests.trades.bank_flow import (
    bank_refunds,
    late_refund_failed_first,
    paid_at_the_bank,
    refund,
    refund_in_state,
    settle_now,
    unreachable_bank_account,
)
from trades import workbench
from trades.models import EarlierRefundNumber, LatePayment, Order, Refund
from trades.services.callbacks import refund_callback
from trades.services.refunds import RETRIED, refund_fingerprint

SEARCH = "/staff/trades/"
REASON = "the bank failed the first refund; send it again"  # "Refund to payer" needs one


def _opens(client, number: str, order: Order) -> bool:
    """The search for ``number`` opens ``order``'s trade page (one exact hit does)."""
    response = client.get(SEARCH, {"q": number})
    return response.status_code == 302 and response.url == reverse("trades:detail", args=[order.pk])


def _failed(shop, order: Order, out_refund_no: str) -> Refund:
    """The bank fails the refund's current attempt at once; its FAIL notice is applied."""
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=0)
    status, body = refund(shop, order, out_refund_no, 500)
    # Pending, or already failed when the bank's FAIL notice beat its own answer to us (502 channel_error).
    assert (status, body.get("state")) == (201, "pending") or body["error"]["code"] == "channel_error", body
    shop.sim("bank", "/_control/flush")
    return refund_in_state(shop, Refund.objects.get(order=order, out_refund_no=out_refund_no).pk, "failed")


# --- end to end -------------------------------------------------------------------------------------------------


def test_it_finds_the_trade_by_the_number_of_each_failed_attempt_of_a_retried_refund(shop, simulator_server,
                                                                                      client, agent):
    order = paid_at_the_bank(shop, "T-SRCH-RETRY-1")
    other = paid_at_the_bank(shop, "T-SRCH-RETRY-2")  # a trade of the same merchant the numbers must not find
    first = _failed(shop, order, "R-SRCH-RETRY").channel_refund_no
    second = _failed(shop, order, "R-SRCH-RETRY").channel_refund_no  # the merchant retried; it failed again
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=0)
    status, body = refund(shop, order, "R-SRCH-RETRY", 500)  # retried once more: the bank returns the money
    assert status == 201, body
    shop.sim("bank", "/_control/flush")
    done = refund_in_state(shop, body["id"], "succeeded")
    assert done.channel_attempt == 2 and len({first, second, done.channel_refund_no} - {""}) == 3, (
        "the bank numbers each attempt anew", first, second, done.channel_refund_no)

    for number in (first, second, done.channel_refund_no):
        assert _opens(client, number, order), number
        assert list(workbench.search_orders(q=number)) == [order], number
    assert other not in workbench.search_orders(q=first)


def test_a_retried_refund_keeps_the_failed_attempts_number_beside_its_audit_row(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-SRCH-RETRY-3")
    failed = _failed(shop, order, "R-SRCH-RETRY-3")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, body = refund(shop, order, "R-SRCH-RETRY-3", 500)
    assert status == 201 and body["state"] == "pending", body

    kept = EarlierRefundNumber.objects.get(channel_refund_no=failed.channel_refund_no)
    assert (kept.order_id, kept.refund_id, kept.attempt) == (order.pk, failed.pk, 0)
    row = AuditLog.objects.get(action=RETRIED, target_id=failed.pk)
    assert row.data["failed_channel_refund_no"] == kept.channel_refund_no  # the same number the timeline shows


# --- the services, with the channel's parsed answers --------------------------------------------------------------


@pytest.fixture
def retried(tea_house_app):
    """Refund R1 of a paid order at an unreachable bank account: attempt 0 failed without the bank naming a number
    of its own; the merchant retried, attempt 1 is pending."""
    account = unreachable_bank_account("bank-srch")
    order = Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-SRCH-SVC",
                                 amount=1000, product="unionpay.qr", subject="tea", request_fingerprint="x" * 64,
                                 expires_at=timezone.now() + dt.timedelta(hours=2), channel_account=account,
                                 state="succeeded", refund_reserved=1000)
    return Refund.objects.create(order=order, merchant=order.merchant, out_refund_no="R1", amount=1000,
                                 request_fingerprint=refund_fingerprint(out_refund_no="R1", amount=1000, reason="",
                                                                        notify_url=""),
                                 requested_by="api:x", channel_attempt=1)


def test_it_finds_the_trade_by_the_number_the_channel_gives_when_an_earlier_attempt_succeeds_after_all(retried):
    # The bank changes its mind about attempt 0 and names its own number for it: the one on its bill.
    refund_callback(account=retried.order.channel_account, event=CallbackEvent(
        kind="refund", event_id="late", refund=RefundResult(state="succeeded", out_refund_no=retried.pk,
                                                             amount=1000, channel_refund_no="R2026112600000042")))
    retried.refresh_from_db()
    assert retried.abnormal and retried.channel_refund_no == ""  # flagged; attempt 1 has no number yet
    assert list(workbench.search_orders(q="R2026112600000042")) == [retried.order]


def test_a_number_no_attempt_had_finds_nothing(retried):
    EarlierRefundNumber.keep(order_id=retried.order_id, refund_id=retried.pk, attempt=0, channel_refund_no="R-OLD")
    EarlierRefundNumber.keep(order_id=retried.order_id, refund_id=retried.pk, attempt=0, channel_refund_no="R-OLD")
    assert EarlierRefundNumber.objects.count() == 1  # kept once, however often it is learnt
    assert list(workbench.search_orders(q="R-OLD")) == [retried.order]
    assert list(workbench.search_orders(q="R-OL")) == [] and list(workbench.search_orders(q="R-OLD2")) == []


def test_the_lookup_goes_through_the_numbers_own_index(retried):
    query = EarlierRefundNumber.objects.filter(channel_refund_no="R-OLD").values_list("order_id", flat=True)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is tiny here: ask what the plan can use
        plan = json.loads(query.explain(format="json"))
    assert "earlierrefundnumber_no" in json.dumps(plan)


def test_refunds_retried_before_the_numbers_were_kept_are_found_after_the_migration(retried):
    """Migration 0014 fills the table from the audit rows the retries wrote (they kept the numbers)."""
    fill = importlib.import_module("trades.migrations.0014_earlier_refund_numbers").keep_earlier_refund_numbers
    audit_log(actor="api:x", action=RETRIED, target=retried,
              data={"attempt": 1, "channel_no": f"{retried.pk}_1", "failed_channel_refund_no": "R-BEFORE-1"})
    audit_log(actor="api:x", action=RETRIED, target=retried,  # a failure the bank had not numbered
              data={"attempt": 2, "channel_no": f"{retried.pk}_2", "failed_channel_refund_no": ""})
    assert list(workbench.search_orders(q="R-BEFORE-1")) == []

    fill(apps, batch=1)
    fill(apps, batch=1)  # run again: nothing twice
    kept = EarlierRefundNumber.objects.get()
    assert (kept.order_id, kept.refund_id, kept.attempt, kept.channel_refund_no) == (
        retried.order_id, retried.pk, 0, "R-BEFORE-1")
    assert list(workbench.search_orders(q="R-BEFORE-1")) == [retried.order]


def test_it_finds_a_late_payment_by_its_failed_first_refunds_channel_number(shop, simulator_server, settings, client,
                                                                               agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LR-SRCH-1")
    first = late.channel_refund_no
    assert first
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": REASON})
    settle_now(shop, simulator_server, f"late_{late.order_id.removeprefix('ord_')}_1")
    resolved = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").first(), message="r")
    assert resolved.channel_refund_no and resolved.channel_refund_no != first
    order = Order.objects.get(pk=late.order_id)
    for number in (first, resolved.channel_refund_no):
        assert list(workbench.search_orders(q=number)) == [order], number

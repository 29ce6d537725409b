"""A refund query that finds the refund succeeded after it was recorded failed (design §5 rule 6; bank.md §7.3: a
failed refund is "refundable again", so the channel's "fail" is not final for the money).

The query paths (the merchant's GET /refunds/{no}, the sweeper) only ask about pending refunds, but no lock is held
across the call (rule 7): the bank's FAIL notice can settle the refund while the query is on its way, and the bank can
then answer the query SUCCESS. That success must not be dropped — the payer has the money while the merchant was told
the refund failed and its amount was released (a possible double refund): the refund keeps its state and is flagged
abnormal for a person, as for such a notice (trades.services.callbacks), once. Over HTTP against Bank A's simulator,
the query slowed by the simulator's ``latency`` fault."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import bank_wire
from channels.simulators.bank_state import ns
from tests.trades.bank_flow import bank_refunds, bank_simulator, paid_at_the_bank, refund, settle_now
from trades import workbench
from trades.models import ChannelCall, Order, Refund
from trades.services.refunds import EARLIER_ATTEMPT_SUCCEEDED

pytestmark = pytest.mark.usefixtures("quiet_channels")

SLOW = 2.0  # seconds the bank takes to answer the query: the FAIL notice is handled meanwhile


def _bank_changes_its_mind(shop, simulator_server, number: str) -> None:
    """The bank's record of refund ``number``, which it failed, now says the money went back (no notice sent)."""
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    row = bank.store.get(ns("refunds", org), number)
    bank.store.put(ns("refunds", org), number, {**row, "refund_state": "SUCCESS", "fail_reason": "",
                                                "success_time": bank_wire.now_text(), "resolve": None})


def _failed_while_asked(shop, simulator_server, out_trade_no: str) -> tuple[Order, Refund, dict]:
    """A refund pending at the bank; the merchant asks about it (slowly answered); meanwhile the bank's FAIL notice
    fails it here, then the bank decides the money went back after all and answers the query so."""
    order = paid_at_the_bank(shop, out_trade_no)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    status, body = refund(shop, order, f"{out_trade_no}-R", 500)
    assert status == 201 and body["state"] == "pending", body
    pending = Refund.objects.get(pk=body["id"])
    shop.sim("bank", "/_control/faults", fault="latency", seconds=SLOW, match={"path": "refund/query"})
    answer: dict = {}

    def ask() -> None:
        try:
            answer["status"], _, answer["body"] = shop.client.request("GET", f"/api/v1/refunds/{pending.out_refund_no}")
        finally:
            connection.close()

    asking = threading.Thread(target=ask)
    asking.start()
    shop.wait_for(lambda: _query_sent(simulator_server), message="the query at the bank")
    settle_now(shop, simulator_server, pending.pk)  # the bank's FAIL notice, handled while the query waits
    shop.wait_for(lambda: Refund.objects.filter(pk=pending.pk, state="failed").exists(), message="failed here")
    _bank_changes_its_mind(shop, simulator_server, pending.pk)
    asking.join(30)
    assert answer.get("status") == 200, answer
    pending.refresh_from_db()
    return order, pending, answer["body"]


def _query_sent(simulator_server) -> bool:
    """The bank's latency rule was taken: the query is at the bank, waiting to be answered."""
    faults = bank_simulator(simulator_server).faults
    return not any(rule.get("fault") == "latency" for _, rule in faults.store.items(faults.ns))


def test_a_query_that_finds_a_failed_refund_succeeded_flags_it_abnormal_for_a_person(shop, simulator_server):
    order, flagged, shown = _failed_while_asked(shop, simulator_server, "RQF00001")

    asked = ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").values_list("outcome", flat=True)
    assert list(asked) == ["succeeded"]  # the query did cross the FAIL notice, and found the money gone back
    assert (flagged.state, flagged.abnormal) == ("failed", True)
    assert shown["state"] == "failed"  # the merchant was told the refund failed: that stays as it is
    row = AuditLog.objects.get(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=flagged.pk)
    assert row.data["attempt"] == 0 and row.data["state"] == "failed" and row.actor_label.startswith("channel:")
    assert flagged.channel_refund_no.startswith("R")  # the bank's number of the refund that went back
    assert list(workbench.abnormal_refunds()) == [flagged]
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved) == (0, 0)


def test_the_flagged_refund_is_not_retried_before_a_person_has_looked(shop, simulator_server):
    order, flagged, _ = _failed_while_asked(shop, simulator_server, "RQF00002")

    status, body = refund(shop, order, flagged.out_refund_no, 500)  # the merchant retries the "failed" refund

    assert status == 409 and "held for review" in body["error"]["message"], body
    flagged.refresh_from_db()
    assert (flagged.state, flagged.channel_attempt) == ("failed", 0)


def test_the_success_notice_after_the_query_is_a_copy(shop, simulator_server, client, agent):
    order, flagged, _ = _failed_while_asked(shop, simulator_server, "RQF00003")
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    row = bank.store.get(ns("refunds", org), flagged.pk)
    bank.notify(bank.account(org), row["notify_url"], "REFUND_RESULT",
                {k: row[k] for k in ("mch_no", "out_trade_no", "trade_no", "out_refund_no", "refund_no",
                                     "refund_amount", "refund_state", "success_time")})
    shop.sim("bank", "/_control/flush")

    notice = ChannelCallback.objects.filter(account=shop.accounts["bank"], kind="refund").latest("received_at")
    assert notice.outcome == CallbackOutcome.DUPLICATE and "already flagged" in notice.message
    assert AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED, target_id=flagged.pk).count() == 1
    queue = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert f'data-refund="{flagged.pk}"' in queue

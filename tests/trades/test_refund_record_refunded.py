"""Support's "Ask the channel and record as refunded" on a refund the channel failed (or closed) and later said it
returned (trades.services.staff.refund_abnormal_record_refunded; bank.md §7.3: a failed or closed refund is
"refundable again", so the channel's "fail" or "closed" is not final for the money).

Before it, such a refund stayed ``failed`` and flagged abnormal, and "Mark handled" moved no money: the order, the
fee reversal, the merchant's events and statement all said the merchant kept money that went back to the payer. The
channel is asked again (design §5 rules 2 and 4: only its own answer moves money) and, under the order's and the
refund's locks, the refund is checked to still fit in what the order paid (rule 6). End to end over HTTP against
Bank A's simulator: its FAIL notice fails the refund, then it changes its mind and sends a SUCCESS notice."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import Forbidden
from aggpay.models import AuditLog
from tests.trades.bank_flow import (
    at_the_bank,
    bank_refunds,
    paid_at_the_bank,
    refund,
    refund_in_state,
    settle_now,
    succeeded_after_all,
)
from tests.trades.test_orders_review_refund_query_after_fail import _bank_changes_its_mind
from trades.models import ChannelCall, Event, Order, Refund
from trades.services.finance import fee_report
from trades.services.refunds import (
    CHANNEL_SUCCESS_NOT_RECORDED,
    CHANNEL_SUCCESS_RECORDED,
    RefundSuccessNotRecorded,
)
from trades.services.staff import refund_abnormal_record_refunded
from trades.services.statements import statement_get

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID = 100_000  # fen: the 0.38 % merchant fee is 380, so a quarter refunded gives back 95 exactly
BACK = 25_000


def _failed_then_said_refunded(shop, simulator_server, out_trade_no: str, *, bank_keeps_it: bool = True,
                               bank_says: str = "FAIL"):
    """A refund of BACK fen the bank failed (its FAIL notice applied: ``refund.failed`` to the merchant, the amount
    released), then a SUCCESS notice for it: flagged abnormal for a person. ``bank_keeps_it``: the bank's own record
    says SUCCESS too (a query confirms it); else it still says FAIL (the notice was wrong). ``bank_says="CLOSED"``:
    the bank closed it instead (bank.md §7.3, ``refund.closed`` to the merchant), and everything else is the same."""
    state = {"FAIL": "failed", "CLOSED": "closed"}[bank_says]
    order = paid_at_the_bank(shop, out_trade_no, amount=PAID)
    bank_refunds(shop, refund_outcome=bank_says, refund_seconds=600)
    status, body = refund(shop, order, f"{out_trade_no}-R", BACK)
    assert status == 201 and body["state"] == "pending", body
    settle_now(shop, simulator_server, body["id"])
    refund_in_state(shop, body["id"], state)
    if bank_keeps_it:
        _bank_changes_its_mind(shop, simulator_server, body["id"])
    succeeded_after_all(shop, simulator_server, body["id"])
    flagged = shop.wait_for(lambda: Refund.objects.filter(pk=body["id"], state=state, abnormal=True).first(),
                            message="flagged abnormal")
    assert Order.objects.get(pk=order.pk).refund_reserved == 0
    return Order.objects.get(pk=order.pk), flagged


def _press(client, refund_: Refund, note: str = "bank hotline confirmed it went back (ticket 4411)", *, page=True):
    data = {"note": note, **({"order": refund_.order_id} if page else {})}
    return client.post(reverse("trades:refund-record-refunded", args=[refund_.pk]), data, follow=True)


def _events(refund_: Refund) -> list[tuple[int, str]]:
    return list(Event.objects.filter(object_id=refund_.pk).order_by("sequence").values_list("sequence", "type"))


def test_the_channels_confirmation_records_the_refund_on_the_order_fees_events_and_statement(
        shop, simulator_server, client, agent):
    order, flagged = _failed_then_said_refunded(shop, simulator_server, "RRR00001")
    queue = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert f'data-record-refunded="{flagged.pk}"' in queue and "confirm(" in queue

    page = _press(client, flagged).content.decode()

    assert "The channel confirmed refund" in page
    done = Refund.objects.get(pk=flagged.pk)
    assert (done.state, done.abnormal) == ("succeeded", False)
    assert done.channel_refund_no == at_the_bank(shop, simulator_server, flagged.pk)["refund_no"]
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved, paid.refund_state) == (BACK, BACK, "partial")
    assert (paid.merchant_fee, done.merchant_fee_refunded) == (380, 95)  # its quarter of the fee snapshot
    assert done.channel_cost_refunded == paid.channel_cost // 4
    # The merchant was told it failed; now it is told it succeeded, after, in the refund's own sequence.
    assert [t for _, t in _events(done)] == ["refund.failed", "refund.succeeded"]
    status, _, shown = shop.client.request("GET", f"/api/v1/refunds/{done.out_refund_no}")
    assert status == 200 and shown["state"] == "succeeded"
    # On the statement of the day the money went back.
    day = timezone.localdate(done.succeeded_at)
    statement = statement_get(merchant=shop.merchant, day=day, now=timezone.now() + dt.timedelta(days=2))
    (line,) = [x for x in statement.lines if x.type == "refund"]
    assert (line.id, line.amount, line.fee) == (done.pk, -BACK, -95)
    # ... and in finance's fee report of that day.
    report = fee_report(start=day, end=day, account_id=shop.accounts["bank"].pk)
    assert (report.totals.refund_count, report.totals.refund_amount, report.totals.merchant_fee_reversed) == \
        (1, BACK, 95)
    row = AuditLog.objects.get(action=CHANNEL_SUCCESS_RECORDED, target_id=done.pk)
    assert row.actor == agent and row.reason == "bank hotline confirmed it went back (ticket 4411)"
    assert row.data["channel_no"] == flagged.pk and row.data["refunded_amount"] == BACK
    asked = ChannelCall.objects.filter(refund_id=done.pk, verb="query_refund").values_list("outcome", flat=True)
    assert list(asked) == ["succeeded"]
    assert f'data-refund="{done.pk}"' not in client.get(reverse("trades:queue", args=["abnormal"])).content.decode()


@pytest.mark.parametrize("state", ["failed", "closed"])
def test_a_channel_that_does_not_answer_changes_nothing_and_says_so(shop, simulator_server, client, agent, settings,
                                                                    state):
    said_refunded = {"failed": _failed_then_said_refunded, "closed": _closed_then_said_refunded}[state]
    order, flagged = said_refunded(shop, simulator_server, f"RR{state[0].upper()}00002")
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 1.0
    shop.sim("bank", "/_control/faults", fault="timeout", seconds=2.0, match={"path": "refund/query"})

    page = _press(client, flagged).content.decode()

    assert "did not answer" in page and "nothing was changed" in page and f"stays {state} and flagged" in page
    kept = Refund.objects.get(pk=flagged.pk)
    assert (kept.state, kept.abnormal) == (state, True)
    assert Order.objects.get(pk=order.pk).refunded_amount == 0
    assert [t for _, t in _events(kept)] == [f"refund.{state}"]
    row = AuditLog.objects.get(action=CHANNEL_SUCCESS_NOT_RECORDED, target_id=kept.pk)
    assert row.data["outcome"] == "unknown" and row.actor == agent
    assert not AuditLog.objects.filter(action=CHANNEL_SUCCESS_RECORDED).exists()


def test_a_channel_that_says_the_refund_failed_leaves_it_failed_and_flagged(shop, simulator_server, client, agent):
    order, flagged = _failed_then_said_refunded(shop, simulator_server, "RRR00003", bank_keeps_it=False)

    page = _press(client, flagged).content.decode()

    assert "did not return the money" in page
    kept = Refund.objects.get(pk=flagged.pk)
    assert (kept.state, kept.abnormal) == ("failed", True)
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved) == (0, 0)
    assert [t for _, t in _events(kept)] == ["refund.failed"]
    assert AuditLog.objects.get(action=CHANNEL_SUCCESS_NOT_RECORDED, target_id=kept.pk).data["outcome"] == \
        "not_refunded"
    assert f'data-refund="{kept.pk}"' in client.get(reverse("trades:queue", args=["abnormal"])).content.decode()


@pytest.mark.parametrize("state", ["failed", "closed"])
def test_it_refuses_when_another_refund_took_the_room_and_names_it(shop, simulator_server, client, agent, state):
    said_refunded = {"failed": _failed_then_said_refunded, "closed": _closed_then_said_refunded}[state]
    number = f"RR{state[0].upper()}00004"
    order, flagged = said_refunded(shop, simulator_server, number)
    # Told the refund failed (or closed), the merchant refunded the rest under another number: the order is fully
    # held.
    status, other = refund(shop, order, f"{number}-AGAIN", PAID)
    assert status == 201 and other["state"] == "pending", other

    page = _press(client, flagged).content.decode()

    assert "no longer fits" in page and f"{number}-AGAIN" in page
    kept = Refund.objects.get(pk=flagged.pk)
    assert (kept.state, kept.abnormal) == (state, True)
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved) == (0, PAID)
    assert [t for _, t in _events(kept)] == [f"refund.{state}"]
    assert AuditLog.objects.get(action=CHANNEL_SUCCESS_NOT_RECORDED, target_id=kept.pk).data["outcome"] == "no_room"


@pytest.mark.parametrize("bank_says", ["FAIL", "CLOSED"])
@pytest.mark.parametrize("role", ["finance", "operations"])
def test_a_user_who_may_not_refund_cannot_record_it(shop, simulator_server, client, staff_member, role, bank_says):
    order, flagged = _failed_then_said_refunded(shop, simulator_server, f"RRR-{role}-{bank_says}", bank_says=bank_says)
    user = staff_member(role)
    client.force_login(user)

    assert client.post(reverse("trades:refund-record-refunded", args=[flagged.pk]), {"note": "x"}).status_code == 403
    assert "record-refunded" not in client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    with pytest.raises(Forbidden):
        refund_abnormal_record_refunded(refund_id=flagged.pk, actor=user, note="x")
    assert Refund.objects.get(pk=flagged.pk).state == flagged.state
    assert not ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").exists()  # never asked


def test_a_second_press_finds_it_recorded_and_records_nothing_more(shop, simulator_server, client, agent):
    order, flagged = _failed_then_said_refunded(shop, simulator_server, "RRR00005")
    detail = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert f'data-record-refunded="{flagged.pk}"' in detail

    _press(client, flagged)
    again = _press(client, flagged).content.decode()

    assert "only a failed or closed refund flagged for a person" in again
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved) == (BACK, BACK)
    assert [t for _, t in _events(flagged)] == ["refund.failed", "refund.succeeded"]
    assert AuditLog.objects.filter(action=CHANNEL_SUCCESS_RECORDED, target_id=flagged.pk).count() == 1
    assert ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").count() == 1


def test_two_presses_at_once_record_it_once(shop, simulator_server, staff_member):
    order, flagged = _failed_then_said_refunded(shop, simulator_server, "RRR00006")
    # Both queries wait at the bank, so both presses pass the first check before either records the refund: the
    # check again under the locks decides.
    shop.sim("bank", "/_control/faults", fault="latency", seconds=1.0, times=2, match={"path": "refund/query"})
    agents = [staff_member("support_agent", username=f"press{n}") for n in range(2)]
    outcomes: list = []

    def press(user) -> None:
        try:
            outcomes.append(refund_abnormal_record_refunded(refund_id=flagged.pk, actor=user, note="double click"))
        except RefundSuccessNotRecorded as exc:
            outcomes.append(exc.outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=press, args=(user,)) for user in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(o if isinstance(o, str) else "recorded" for o in outcomes) == ["recorded", "settled"]
    assert ChannelCall.objects.filter(refund_id=flagged.pk, verb="query_refund").count() == 2  # both did ask
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved) == (BACK, BACK)
    assert [t for _, t in _events(flagged)] == ["refund.failed", "refund.succeeded"]


# --- a refund the bank closed (bank.md §7.3 CLOSED, "refundable again"), then said it returned ----------------------
# Before issue #5 the action started only from ``failed``: a flagged closed refund was never offered it, and pressed
# anyway it was refused as "settled", so its money reached no order total, fee reversal, event or statement.


def _closed_then_said_refunded(shop, simulator_server, out_trade_no: str, *, bank_keeps_it: bool = True):
    return _failed_then_said_refunded(shop, simulator_server, out_trade_no, bank_keeps_it=bank_keeps_it,
                                      bank_says="CLOSED")


def test_it_records_a_flagged_closed_refund_the_channel_confirms_on_the_order_fees_events_and_statement(
        shop, simulator_server, agent):
    order, flagged = _closed_then_said_refunded(shop, simulator_server, "RRC00001")
    assert [t for _, t in _events(flagged)] == ["refund.closed"]

    done = refund_abnormal_record_refunded(refund_id=flagged.pk, actor=agent, note="bank: it went back after all")

    assert (done.state, done.abnormal) == ("succeeded", False)
    assert Refund.objects.get(pk=flagged.pk).state == "succeeded"
    assert done.channel_refund_no == at_the_bank(shop, simulator_server, flagged.pk)["refund_no"]
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved, paid.refund_state) == (BACK, BACK, "partial")
    assert done.merchant_fee_refunded == 95  # its quarter of the 380 fen fee snapshot
    # The merchant was told it closed; now it is told it succeeded, after, in the refund's own sequence.
    assert [t for _, t in _events(done)] == ["refund.closed", "refund.succeeded"]
    status, _, shown = shop.client.request("GET", f"/api/v1/refunds/{done.out_refund_no}")
    assert status == 200 and shown["state"] == "succeeded"
    day = timezone.localdate(done.succeeded_at)
    statement = statement_get(merchant=shop.merchant, day=day, now=timezone.now() + dt.timedelta(days=2))
    (line,) = [x for x in statement.lines if x.type == "refund"]
    assert (line.id, line.amount, line.fee) == (done.pk, -BACK, -95)
    row = AuditLog.objects.get(action=CHANNEL_SUCCESS_RECORDED, target_id=done.pk)
    assert row.actor == agent and row.reason == "bank: it went back after all"
    assert (row.data["was"], row.data["channel_no"], row.data["refunded_amount"]) == ("closed", flagged.pk, BACK)


def test_the_support_pages_offer_it_for_a_flagged_closed_refund_and_run_it(shop, simulator_server, client, agent):
    order, flagged = _closed_then_said_refunded(shop, simulator_server, "RRC00002")
    queue = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    detail = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert f'data-record-refunded="{flagged.pk}"' in queue and f'data-record-refunded="{flagged.pk}"' in detail

    page = _press(client, flagged).content.decode()

    assert "The channel confirmed refund" in page
    assert Refund.objects.get(pk=flagged.pk).state == "succeeded"
    assert Order.objects.get(pk=order.pk).refunded_amount == BACK
    assert f'data-refund="{flagged.pk}"' not in client.get(reverse("trades:queue", args=["abnormal"])).content.decode()


def test_a_channel_that_says_the_refund_is_closed_leaves_it_closed_and_flagged_and_says_so(
        shop, simulator_server, client, agent):
    order, flagged = _closed_then_said_refunded(shop, simulator_server, "RRC00004", bank_keeps_it=False)

    page = _press(client, flagged).content.decode()

    assert "did not return the money (it says closed" in page and "stays closed and flagged" in page
    kept = Refund.objects.get(pk=flagged.pk)
    assert (kept.state, kept.abnormal) == ("closed", True)
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved) == (0, 0)
    assert [t for _, t in _events(kept)] == ["refund.closed"]
    asked = ChannelCall.objects.filter(refund_id=kept.pk, verb="query_refund").values_list("outcome", flat=True)
    assert list(asked) == ["closed"]
    row = AuditLog.objects.get(action=CHANNEL_SUCCESS_NOT_RECORDED, target_id=kept.pk)
    assert (row.data["outcome"], row.data["channel_said"], row.actor) == ("not_refunded", "closed", agent)
    queue = client.get(reverse("trades:queue", args=["abnormal"])).content.decode()
    assert f'data-record-refunded="{kept.pk}"' in queue  # still offered: the channel may say otherwise later

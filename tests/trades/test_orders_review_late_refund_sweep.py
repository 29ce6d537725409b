"""A late payment's automatic refund is enqueued when the success that makes it commits (design §5 rule 3). When
the broker is down at that moment the enqueue is only logged, and the late payment would stay ``open``, never
refunded automatically: the once-a-minute sweeper (trades.tasks_orders.sync_due_orders) enqueues the refund of
every open late payment never refunded nor flagged and older than a minute (design §5 rule 8: a broker outage
delays but loses nothing). Enqueued twice — by the commit and by a sweep, or by two sweeps — it refunds once.

Over HTTP against Bank A's simulator; the broker is "down" by publishing to a port where nothing listens
(tests/trades/test_deliveries_worker.py), only while the bank's success notice is handled."""

from __future__ import annotations

import datetime as dt

import pytest

from channels.models import CallbackOutcome, ChannelCallback
from tests.trades.bank_flow import at_the_bank, bank_pays_after_close, bank_refunds
from tests.trades.test_deliveries_worker import DEAD_BROKER_URL, publishing_to
from trades.models import LatePayment
from trades.services.late import late_refund_no
from trades.tasks_orders import refund_late_payment, sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _late_payment_while_the_broker_is_down(shop, simulator_server, out_trade_no: str) -> LatePayment:
    """An order closed here and at the bank, which then says the payer paid it after all; its notice is handled
    while the broker cannot be reached, so the automatic refund's enqueue fails (and is logged)."""
    order, notify = bank_pays_after_close(shop, simulator_server, out_trade_no)
    with publishing_to(DEAD_BROKER_URL, "aggpay-late-sweep-test-dead:"):
        notify()
        shop.sim("bank", "/_control/flush")
        # The callback is recorded after its transaction committed and its on-commit enqueue was tried.
        shop.wait_for(lambda: ChannelCallback.objects.filter(account=shop.accounts["bank"], kind="payment",
                                                             outcome=CallbackOutcome.APPLIED,
                                                             message__contains=order["id"]).exists(),
                      timeout=60, message="the late success handled")
    return LatePayment.objects.get(order_id=order["id"])


def _a_minute_ago(late: LatePayment) -> None:
    """Stand-in for the minute the sweeper leaves to the enqueue made at commit."""
    LatePayment.objects.filter(pk=late.pk).update(detected_at=late.detected_at - dt.timedelta(seconds=61))


@pytest.fixture
def auto_refund(settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True


def test_a_late_payment_whose_refund_could_not_be_enqueued_is_refunded_by_the_sweeper(
        shop, simulator_server, auto_refund):
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=0)
    late = _late_payment_while_the_broker_is_down(shop, simulator_server, "LRS00001")
    assert (late.state, late.refund_attempts) == ("open", 0)  # the enqueue was lost with the broker
    assert at_the_bank(shop, simulator_server, late_refund_no(late.order_id)) is None

    _a_minute_ago(late)
    sync_due_orders()

    late.refresh_from_db()
    assert late.refund_attempts == 1 and late.state in ("refunding", "resolved")
    assert at_the_bank(shop, simulator_server, late_refund_no(late.order_id)) is not None
    shop.sim("bank", "/_control/flush")  # the bank's SUCCESS notice
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").exists(), message="refunded")


def test_the_sweeper_leaves_a_late_payment_younger_than_a_minute_to_the_enqueue_made_at_commit(
        shop, simulator_server, auto_refund):
    late = _late_payment_while_the_broker_is_down(shop, simulator_server, "LRS00002")

    sync_due_orders()

    late.refresh_from_db()
    assert (late.state, late.refund_attempts) == ("open", 0)
    assert at_the_bank(shop, simulator_server, late_refund_no(late.order_id)) is None


def test_with_automatic_refunds_off_the_sweeper_leaves_late_payments_to_support(shop, simulator_server, settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False
    late = _late_payment_while_the_broker_is_down(shop, simulator_server, "LRS00003")
    _a_minute_ago(late)

    sync_due_orders()

    late.refresh_from_db()
    assert (late.state, late.refund_attempts) == ("open", 0)


def test_a_refund_enqueued_twice_refunds_once_even_after_the_bank_refused_the_first(
        shop, simulator_server, auto_refund):
    # The bank fails the refund: the late payment goes back to the queue for a person. A second automatic refund
    # (the sweeper's, or the one enqueued at commit arriving late) must not start another attempt on its own.
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=0)
    late = _late_payment_while_the_broker_is_down(shop, simulator_server, "LRS00004")
    _a_minute_ago(late)
    sync_due_orders()
    shop.sim("bank", "/_control/flush")  # the bank's FAIL notice
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="open", refund_attempts=1).exists(),
                  message="the first refund failed")

    refund_late_payment.delay(late.pk)  # the enqueue made at commit, delivered after all
    sync_due_orders()  # and the next sweep

    late.refresh_from_db()
    assert (late.state, late.refund_attempts) == ("open", 1)
    assert at_the_bank(shop, simulator_server, late_refund_no(late.order_id, 1)) is None


def test_a_sweep_after_the_refund_went_out_asks_nothing_new_of_the_bank(shop, simulator_server, auto_refund):
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)  # the bank takes its time: refunding here
    late = _late_payment_while_the_broker_is_down(shop, simulator_server, "LRS00005")
    _a_minute_ago(late)
    sync_due_orders()
    late.refresh_from_db()
    assert (late.state, late.refund_attempts) == ("refunding", 1)

    refund_late_payment.delay(late.pk)
    sync_due_orders()

    late.refresh_from_db()
    assert (late.state, late.refund_attempts) == ("refunding", 1)
    assert at_the_bank(shop, simulator_server, late_refund_no(late.order_id, 1)) is None

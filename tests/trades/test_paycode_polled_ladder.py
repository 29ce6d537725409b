"""A payment code whose payer is still confirming when its minute runs out is reversed, however often the merchant
asks about it (issue 5: USERPAYING → query every 5 s up to the limit → reverse if still unpaid; docs/api.md "reverses
the payment if it is still unpaid after a minute"; design §5 rule 2).

Bug (a merchant-developer trial on the demo, Bank A's payer confirming after 170 s): the code left alone was reversed
at 60–75 s, but one the till polled (``GET /orders/{no}`` every 15 s, or 5 s) stayed ``pending`` past its
``expires_at`` and became ``succeeded`` at 170 s — paid 110 s after the sale was given up. The poll whose query ran
the ladder out put the order in the manual queue, which no sweeper reads: only the ladder's own rung reversed a
code it found there, and that rung never came.

Against the simulators over signed HTTP, on a clock moved with time-machine (the simulators' thread shares it): the
demo's in-process beat runs the sweeper every 5 s, and the till asks first when its poll falls on the same second.
"""

from __future__ import annotations

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone

from tests.trades.order_steps import call_outcomes, event_count
from trades.models import LatePayment, Order
from trades.services.orders import QUERY_CLAIM_PREFIX
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

BEAT = 5  # seconds: the demo's in-process beat (AGGPAY_INPROCESS_BEAT_SECONDS) runs the sweeper this often
PAYER_CONFIRMS = 170  # seconds after the create, as in the trial
# The codes whose payer confirms after the account's ``userpaying_seconds`` (ending 5: the simulators' tables).
CODES = {"wechatpay": "134567890123456785", "bank": "6212345678901234565"}


def _payer_confirms_after(shop, kind, seconds):
    if kind == "wechatpay":
        shop.sim("wechatpay", f"/_control/accounts/{shop.accounts['wechatpay'].config['sp_mchid']}/settings",
                 userpaying_seconds=seconds)
    else:
        shop.sim("bank", f"/_control/accounts/{shop.accounts['bank'].config['org_no']}/settings",
                 userpaying_seconds=seconds)


def _create(shop, out_trade_no, auth_code):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "barcode", "subject": "tea",
        "auth_code": auth_code})
    assert status == 201 and order["state"] == "pending", order
    return order


def _till_asks(shop, order):
    """GET /orders/{no}, let through the per-order rate limit: the claim's 3 s run on Redis's own clock, which the
    travel does not move (the order's ``last_queried_at`` is on the travelled one)."""
    cache.delete(f"{QUERY_CLAIM_PREFIX}{order['id']}")
    status, _, polled = shop.client.request("GET", f"/api/v1/orders/{order['out_trade_no']}")
    assert status == 200, polled
    return polled


def _run_the_clock(shop, clock, order, *, till_every, until):
    """Move the clock ``until`` seconds past the create, BEAT seconds at a time: the till asks when ``till_every``
    divides the second (``None``: never), then the sweeper runs. Returns the second the order stopped being pending
    (``None``: it never did)."""
    settled_at = None
    for second in range(BEAT, until + 1, BEAT):
        clock.shift(BEAT)
        if till_every and second % till_every == 0:
            _till_asks(shop, order)
        sync_due_orders()
        if settled_at is None and Order.objects.get(pk=order["id"]).state != "pending":
            settled_at = second
    return settled_at


@pytest.mark.parametrize("kind", ["wechatpay", "bank"])
@pytest.mark.parametrize("till_every", [None, 15, 5], ids=["left alone", "polled every 15 s", "polled every 5 s"])
def test_a_code_still_unconfirmed_after_its_minute_is_reversed_however_often_the_till_asks(shop, kind, till_every):
    _payer_confirms_after(shop, kind, PAYER_CONFIRMS)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _create(shop, f"PCL{kind[:2]}{till_every or 0:02d}", CODES[kind])
        settled_at = _run_the_clock(shop, clock, order, till_every=till_every, until=PAYER_CONFIRMS + 10)
        final = _till_asks(shop, order)

    stored = Order.objects.get(pk=order["id"])
    assert (stored.state, final["state"]) == ("reversed", "reversed"), (stored.state, stored.sync_state)
    assert settled_at is not None and 60 <= settled_at <= 75, settled_at  # the ladder's minute, and a beat or two
    assert call_outcomes(order["id"], "reverse") == ["reversed"]
    assert event_count(order["id"], "order.reversed") == 1 and event_count(order["id"], "order.succeeded") == 0
    # The payer never confirmed: the channel's trade was reversed before, so nothing was taken to refund later.
    assert stored.paid_at is None and not LatePayment.objects.filter(order_id=order["id"]).exists()


def test_a_poll_after_the_minute_that_finds_the_code_paid_records_the_payment_and_reverses_nothing(shop):
    _payer_confirms_after(shop, "wechatpay", 58)  # the payer confirms between the ladder's last rungs
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _create(shop, "PCLPAID01", CODES["wechatpay"])
        clock.shift(61)  # no rung ran: the till's poll is the first to ask after the minute
        polled = _till_asks(shop, order)
        sync_due_orders()

    stored = Order.objects.get(pk=order["id"])
    assert (polled["state"], stored.state) == ("succeeded", "succeeded"), stored.sync_state
    assert call_outcomes(order["id"], "reverse") == [] and event_count(order["id"], "order.succeeded") == 1


def test_a_poll_after_the_minute_that_hears_no_answer_still_has_the_code_reversed(shop):
    """A timeout is unknown, never failed (design §5 rule 2): the payer may be confirming, so the code is reversed,
    as the channels ask for a result that stays unclear (channel-protocols.md A.11, bank.md §6.3)."""
    _payer_confirms_after(shop, "wechatpay", PAYER_CONFIRMS)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _create(shop, "PCLUNK01", CODES["wechatpay"])
        clock.shift(61)
        shop.sim("wechatpay", "/_control/faults", fault="business_error", code="SYSTEM_ERROR", message="系统繁忙",
                 status=500, times=1, match={"method": "GET", "path": f"out-trade-no/{order['id']}$"})
        _till_asks(shop, order)
        sync_due_orders()

    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed", (stored.state, stored.sync_state)
    assert call_outcomes(order["id"], "query")[-1] == "unknown"
    assert call_outcomes(order["id"], "reverse") == ["reversed"]


def test_a_close_after_the_minute_reverses_a_code_still_unconfirmed_and_answers_409_with_the_reversed_order(shop):
    """The till gives up and closes after the minute: the close's own query runs the ladder out, so the code is
    reversed then (the merchant hears ``order.reversed``) and the close, having nothing pending left to stop,
    answers ``409 invalid_state`` with the order as it now is (merchant-api.md "Orders"). Bug: the close answered
    200 with the order ``pending`` in the manual queue, and the payer's confirmation at 170 s made it ``succeeded``."""
    _payer_confirms_after(shop, "wechatpay", PAYER_CONFIRMS)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        order = _create(shop, "PCLCLOSE1", CODES["wechatpay"])
        clock.shift(61)
        status, _, closed = shop.client.request("POST", f"/api/v1/orders/{order['out_trade_no']}/close")
        clock.shift(PAYER_CONFIRMS)
        sync_due_orders()
        final = _till_asks(shop, order)

    assert status == 409 and closed["error"]["code"] == "invalid_state", closed
    assert closed["order"]["state"] == "reversed"
    assert final["state"] == "reversed" and event_count(order["id"], "order.succeeded") == 0
    assert call_outcomes(order["id"], "reverse") == ["reversed"]

"""The part of an order's fee snapshot a refund gives back (design §5 rule 1; merchant-api.md "Statements").

It is decided when the refund succeeds, under the order's lock, as the difference of the cumulative prorations over
what had actually gone back before it and after it (``refunded_amount``, half-up) — not when it is asked, over what
is merely reserved, since a reserved refund may still fail. So the refunds that succeed give back the order's whole
merchant fee, channel cost and rebate exactly once it is fully refunded, whatever failed in between; before it
succeeds a refund gives nothing back.

End to end on the bank simulator: 300 fen paid at the contract's 0.38% (a 1-fen fee) with a 0.20% cost (1 fen), so
one fen of rounding decides which refund gives it back.
"""

from __future__ import annotations

import pytest

from tests.trades.bank_flow import bank_refunds, paid_at_the_bank, refund, refund_in_state, settle_now
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _asked(shop, order, out_refund_no, amount) -> str:
    status, body = refund(shop, order, out_refund_no, amount)
    assert status == 201 and body["state"] == "pending", body
    return body["id"]


def _given_back(refund_ids) -> tuple[int, int, int]:
    rows = Refund.objects.filter(pk__in=refund_ids)
    return (sum(r.merchant_fee_refunded for r in rows), sum(r.channel_cost_refunded for r in rows),
            sum(r.rebate_refunded for r in rows))


def test_a_failed_refund_does_not_make_a_fully_refunded_order_give_back_twice_its_fee(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-FEE-0001", amount=300)
    assert (order.merchant_fee, order.channel_cost, order.rebate) == (1, 1, 0)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    a = _asked(shop, order, "RF-A-0001", 60)
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    b = _asked(shop, order, "RF-B-0001", 90)
    settle_now(shop, simulator_server, a)
    refund_in_state(shop, a, "failed")
    c = _asked(shop, order, "RF-C-0001", 60)
    d = _asked(shop, order, "RF-D-0001", 150)
    assert _given_back([b, c, d]) == (0, 0, 0)  # nothing goes back before the money does

    for refund_id in (b, c, d):
        settle_now(shop, simulator_server, refund_id)
        refund_in_state(shop, refund_id, "succeeded")
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_state) == (300, "full")
    assert _given_back([b, c, d]) == (paid.merchant_fee, paid.channel_cost, paid.rebate) == (1, 1, 0)
    assert _given_back([a]) == (0, 0, 0)


def test_a_fully_refunded_order_gives_back_its_fee_even_when_the_refund_that_would_have_carried_it_failed(
        shop, simulator_server):
    order = paid_at_the_bank(shop, "T-FEE-0002", amount=300)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    a = _asked(shop, order, "RF-A-0002", 150)
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    b = _asked(shop, order, "RF-B-0002", 150)
    settle_now(shop, simulator_server, a)
    refund_in_state(shop, a, "failed")
    c = _asked(shop, order, "RF-C-0002", 150)
    for refund_id in (c, b):  # in the other order than asked: the share follows what went back, not the asking
        settle_now(shop, simulator_server, refund_id)
        refund_in_state(shop, refund_id, "succeeded")

    paid = Order.objects.get(pk=order.pk)
    assert paid.refund_state == "full"
    assert _given_back([b, c]) == (1, 1, 0)
    # Half of 1 fen rounds half-up: the first to succeed gives it back, the second gives back what is left (none).
    first, second = Refund.objects.get(pk=c), Refund.objects.get(pk=b)
    assert (first.merchant_fee_refunded, second.merchant_fee_refunded) == (1, 0)
    assert (first.channel_cost_refunded, second.channel_cost_refunded) == (1, 0)


def test_a_retried_refund_gives_back_its_share_of_when_it_succeeds(shop, simulator_server):
    order = paid_at_the_bank(shop, "T-FEE-0003", amount=300)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    first = _asked(shop, order, "RF-R-0003", 150)
    settle_now(shop, simulator_server, first)
    refund_in_state(shop, first, "failed")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    other = _asked(shop, order, "RF-O-0003", 150)
    settle_now(shop, simulator_server, other)
    refund_in_state(shop, other, "succeeded")
    retried = _asked(shop, order, "RF-R-0003", 150)  # the failed refund, retried with its out_refund_no
    assert retried == first
    settle_now(shop, simulator_server, f"{first}_1")
    refund_in_state(shop, first, "succeeded")

    assert (Refund.objects.get(pk=other).merchant_fee_refunded, Refund.objects.get(pk=first).merchant_fee_refunded) \
        == (1, 0)
    assert _given_back([first, other]) == (1, 1, 0)

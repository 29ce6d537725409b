"""Fee snapshots: integer fen, half-up once per figure, refunds reverse exactly (design §5 rule 1)."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

from hypothesis import example, given
from hypothesis import strategies as st

from trades.services.fees import fees_for_payment, fees_for_refund


def test_it_computes_fee_cost_rebate_and_profit_in_fen():
    snap = fees_for_payment(amount=10_000, merchant_rate=Decimal("0.0038"), cost_rate=Decimal("0.0020"),
                            rebate_rate=Decimal("0"))
    assert (snap.merchant_fee, snap.channel_cost, snap.rebate, snap.profit) == (38, 20, 0, 18)


def test_an_isv_rebate_adds_to_profit():
    snap = fees_for_payment(amount=10_000, merchant_rate=Decimal("0.0060"), cost_rate=Decimal("0.0060"),
                            rebate_rate=Decimal("0.0020"))
    assert snap.profit == 20


@given(paid=st.integers(min_value=1, max_value=10**9),
       parts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=8),
       rate=st.decimals(min_value=Decimal("0"), max_value=Decimal("0.05"), places=4))
def test_partial_refunds_add_up_to_the_whole_snapshot_when_fully_refunded(paid, parts, rate):
    snap = fees_for_payment(amount=paid, merchant_rate=rate, cost_rate=rate / 2, rebate_rate=Decimal("0"))
    # Scale the parts to refund exactly ``paid`` in total.
    total = sum(parts)
    refunds = [paid * p // total for p in parts]
    refunds[-1] += paid - sum(refunds)
    refunds = [r for r in refunds if r > 0]
    done, fee_back, cost_back = 0, 0, 0
    for refund in refunds:
        part = fees_for_refund(snapshot=snap, paid=paid, refund=refund, already_refunded=done)
        done += refund
        fee_back += part.merchant_fee
        cost_back += part.channel_cost
    assert (fee_back, cost_back) == (snap.merchant_fee, snap.channel_cost)


six_places = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.1"), places=6)


@given(paid=st.integers(min_value=1, max_value=10**11), cuts=st.lists(st.integers(min_value=1), max_size=11),
       rates=st.tuples(six_places, six_places, six_places))
@example(paid=1, cuts=[], rates=(Decimal("0.0038"), Decimal("0.002"), Decimal("0.0005")))  # every figure rounds to 0
@example(paid=21, cuts=[3, 6, 9, 12, 15, 18], rates=(Decimal("0.0038"), Decimal("0.006"), Decimal("0.0005")))
def test_any_split_of_a_full_refund_gives_back_each_figure_exactly_and_no_part_is_negative(paid, cuts, rates):
    """All four figures, rebate and profit included, at any rate of six places (the contracts' precision). Each
    refund's part is what it gives back, never a charge (so never negative), and the parts add up to the snapshot
    exactly once the whole amount has gone back: no fen lost or made by rounding."""
    snap = fees_for_payment(amount=paid, merchant_rate=rates[0], cost_rate=rates[1], rebate_rate=rates[2])
    points = sorted({0, paid, *(c % paid for c in cuts)})
    done, back = 0, [0, 0, 0, 0]
    for refund in (b - a for a, b in pairwise(points)):
        part = fees_for_refund(snapshot=snap, paid=paid, refund=refund, already_refunded=done)
        figures = (part.merchant_fee, part.channel_cost, part.rebate)
        assert min(figures) >= 0 and part.profit == part.merchant_fee - part.channel_cost + part.rebate
        back = [total + figure for total, figure in zip(back, (*figures, part.profit), strict=True)]
        done += refund
    assert done == paid
    assert back == [snap.merchant_fee, snap.channel_cost, snap.rebate, snap.profit]

"""The order of a statement's lines (docs/api.md "Statements"): by the time shown, to the second; within one second
an order's refunds come in the order aggpay recorded their success — the order their fee shares were worked out in
(trades.services.fees.fees_for_refund, "the running total of the order's refunds") — so a merchant can follow the
running total down the statement. Channels date a refund's success to the second, so two refunds of one order often
share it.

The refunds succeed through the service that applies a channel's answer (refund_apply_result), which decides each
fee share under the order's lock."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from channels.adapters.base import RefundResult
from tests.trades.ledger import DAY, at, paid_order
from trades.models import Order, Refund
from trades.services.refunds import refund_apply_result
from trades.services.statements import statement_get

# 1 000 fen at 0.30 %: a fee of 3 fen, so the share of a refund depends on which refund went first.
PAID, RATE = 1_000, "0.003"


def _pending_refund(order: Order, refund_id: str, out_refund_no: str, amount: int) -> Refund:
    """A refund the channel has accepted and not yet answered, its amount held on the order."""
    refund = Refund.objects.create(id=refund_id, order=order, merchant=order.merchant, out_refund_no=out_refund_no,
                                   amount=amount, request_fingerprint="x" * 64, requested_by="api:test")
    Order.objects.filter(pk=order.pk).update(refund_reserved=order.refund_reserved + amount)
    order.refresh_from_db()
    return refund


def _succeeded(refund: Refund, when) -> None:
    refund_apply_result(refund_id=refund.pk, result=RefundResult(
        state="succeeded", out_refund_no=refund.pk, channel_refund_no=f"50300{refund.out_refund_no}",
        amount=refund.amount, succeeded_at=when))


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_two_refunds_dated_in_the_same_second_are_listed_in_the_order_their_fee_shares_were_worked_out(
        tea_house_app):
    order = paid_order(tea_house_app.merchant, "T3001", amount=PAID, rate=RATE, paid_at=at(10, 15, 2),
                       app=tea_house_app)
    assert order.merchant_fee == 3
    # The ids sort the other way round from the order the successes are recorded in: an order by id is caught.
    first = _pending_refund(order, "ref_zzzzzzzzzzzzzzzzzzzzzz", "R-HALF", 500)
    second = _pending_refund(order, "ref_AAAAAAAAAAAAAAAAAAAAAA", "R-REST", 167)
    same_second = at(16, 40, 11)
    _succeeded(first, same_second)  # 3 × 500/1000 = 1.5 → 2 fen back
    _succeeded(second, same_second)  # 3 × 667/1000 = 2.001 → 2, less the 2 before: 0 fen back

    lines = [line for line in statement_get(merchant=order.merchant, day=DAY).lines if line.type == "refund"]

    assert [(line.out_refund_no, line.amount, line.fee) for line in lines] == [("R-HALF", -500, -2),
                                                                               ("R-REST", -167, 0)]
    assert {line.time.isoformat() for line in lines} == {"2026-03-10T16:40:11+08:00"}
    # The documented rule, followed down the statement: the fee given back so far is fee × refunded so far ÷ amount,
    # rounded half-up, and each refund gives back that figure after it less the figure before it.
    refunded = given_back = 0
    for line in lines:
        refunded -= line.amount
        so_far = _half_up(Decimal(order.merchant_fee) * refunded / order.amount)
        assert -line.fee == so_far - given_back, line
        given_back = so_far


def test_refunds_in_one_second_are_listed_in_the_order_aggpay_recorded_them_whatever_their_ids(tea_house_app):
    order = paid_order(tea_house_app.merchant, "T3002", amount=PAID, rate=RATE, paid_at=at(9, 0, 0),
                       app=tea_house_app)
    refunds = [_pending_refund(order, f"ref_{letter * 22}", f"R-{letter}", 100) for letter in "qBxCa"]
    for refund in refunds:
        _succeeded(refund, at(9, 30, 0, 250_000))

    readings = {tuple(line.out_refund_no for line in statement_get(merchant=order.merchant, day=DAY).lines
                      if line.type == "refund") for _ in range(3)}

    assert readings == {("R-q", "R-B", "R-x", "R-C", "R-a")}

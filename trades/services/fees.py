"""The fee snapshot of a trade (design §1 "Money", §5 rule 1): merchant fee, channel cost, ISV rebate, profit.

All in integer fen, rates as Decimals, each product rounded half-up once (aggpay.money.fee_for). A refund reverses
the snapshot in proportion (``fees_for_refund``) when it succeeds, so the sum over succeeded refunds never exceeds the
original and equals it once the order is fully refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aggpay.money import fee_for, prorate


@dataclass(frozen=True)
class FeeSnapshot:
    merchant_rate: Decimal
    merchant_fee: int  # what we charge the merchant
    cost_rate: Decimal
    channel_cost: int  # what the channel charges us
    rebate_rate: Decimal
    rebate: int  # what the channel pays back to us (ISV 返佣)
    profit: int  # merchant_fee - channel_cost + rebate

    def as_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in self.__dict__.items()}


def fees_for_payment(*, amount: int, merchant_rate: Decimal, cost_rate: Decimal, rebate_rate: Decimal) -> FeeSnapshot:
    """Each part is ``amount × rate`` rounded half-up to the fen (aggpay.money.fee_for): 0.5 fen is 1, 0.38 is 0.
    docs/api.md "Statements" states the merchant fee's rule to merchants; change both together."""
    merchant_fee = fee_for(amount=amount, rate=merchant_rate)
    channel_cost = fee_for(amount=amount, rate=cost_rate)
    rebate = fee_for(amount=amount, rate=rebate_rate)
    return FeeSnapshot(merchant_rate=merchant_rate, merchant_fee=merchant_fee, cost_rate=cost_rate,
                       channel_cost=channel_cost, rebate_rate=rebate_rate, rebate=rebate,
                       profit=merchant_fee - channel_cost + rebate)


def fee_snapshot_of(order) -> FeeSnapshot:
    """The fee snapshot an order was paid with (its ``merchant_fee`` … ``profit`` columns)."""
    return FeeSnapshot(merchant_rate=order.merchant_rate, merchant_fee=order.merchant_fee, cost_rate=order.cost_rate,
                       channel_cost=order.channel_cost, rebate_rate=order.rebate_rate, rebate=order.rebate,
                       profit=order.profit)


def fees_for_refund(*, snapshot: FeeSnapshot, paid: int, refund: int, already_refunded: int) -> FeeSnapshot:
    """The part of ``snapshot`` a refund of ``refund`` fen gives back, given ``already_refunded`` before it.

    Computed as the difference of cumulative prorations, so partial refunds add up exactly to the whole snapshot
    when the order is fully refunded (no fen lost or created by rounding). ``already_refunded`` must be what has
    actually gone back (the order's ``refunded_amount``, under its lock, when the refund succeeds), never what is
    merely reserved: a reserved refund may still fail, and a share computed on top of it would not add up.

    So the shares depend on the order in which the successes are recorded, one at a time under the order's lock —
    the order of their ``refund.succeeded`` events. Merchants follow that order (docs/api.md "Statements"), and
    statements list refunds the channel dated in the same second in it (trades.services.statements).
    """
    def part(total: int) -> int:
        return prorate(part=already_refunded + refund, whole=paid, value=total) - prorate(
            part=already_refunded, whole=paid, value=total)

    merchant_fee, channel_cost, rebate = part(snapshot.merchant_fee), part(snapshot.channel_cost), part(snapshot.rebate)
    return FeeSnapshot(merchant_rate=snapshot.merchant_rate, merchant_fee=merchant_fee, cost_rate=snapshot.cost_rate,
                       channel_cost=channel_cost, rebate_rate=snapshot.rebate_rate, rebate=rebate,
                       profit=merchant_fee - channel_cost + rebate)

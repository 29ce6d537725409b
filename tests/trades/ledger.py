"""Trades written straight into the ledger as the order and refund services leave them — paid orders with their fee
snapshot, refunds with the part of it they gave back, reversals dated by their event — for the tests of what reads
the ledger (statements, the finance report, query plans) rather than of what writes it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import F

from trades.models import Event, Order, Refund
from trades.services.fees import fee_snapshot_of, fees_for_payment, fees_for_refund

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 10)


def at(hour: int, minute: int = 0, second: int = 0, microsecond: int = 0, *, day: dt.date = DAY) -> dt.datetime:
    """A wall-clock time in Shanghai."""
    return dt.datetime.combine(day, dt.time(hour, minute, second, microsecond), tzinfo=SHANGHAI)


def paid_order(merchant, out_trade_no: str, *, amount: int, paid_at: dt.datetime, rate: str = "0.0038",
               cost_rate: str = "0.0020", rebate_rate: str = "0", product: str = "wechat.native",
               requested: str | None = None, **fields) -> Order:
    """A paid order with the fee snapshot of (merchant ``rate``, ``cost_rate``, ``rebate_rate``); ``requested`` is
    the product the merchant asked for when it differs from the channel's (``barcode``)."""
    fees = fees_for_payment(amount=amount, merchant_rate=Decimal(rate), cost_rate=Decimal(cost_rate),
                            rebate_rate=Decimal(rebate_rate))
    return Order.objects.create(
        merchant=merchant, out_trade_no=out_trade_no, amount=amount, product=requested or product,
        channel_product=product, subject="tea", request_fingerprint="x" * 64,
        expires_at=paid_at + dt.timedelta(hours=2), state=fields.pop("state", "succeeded"), paid_at=paid_at,
        channel_trade_no=f"42000{out_trade_no}", merchant_rate=fees.merchant_rate, merchant_fee=fees.merchant_fee,
        cost_rate=fees.cost_rate, channel_cost=fees.channel_cost, rebate_rate=fees.rebate_rate, rebate=fees.rebate,
        profit=fees.profit, **fields)


def refunded(order: Order, out_refund_no: str, *, amount: int, succeeded_at: dt.datetime | None,
             state: str = "succeeded") -> Refund:
    """A refund of ``order`` as refund_create and refund_apply_result leave it: the fee given back, decided when the
    refund succeeds, is the order snapshot's proration over what had gone back before (fees_for_refund); a refund
    that did not succeed gives nothing back, and one that failed or closed holds nothing."""
    order.refresh_from_db()
    back = fees_for_refund(snapshot=fee_snapshot_of(order), paid=order.amount,
                           refund=amount if state == "succeeded" else 0, already_refunded=order.refunded_amount)
    refund = Refund.objects.create(
        order=order, merchant=order.merchant, out_refund_no=out_refund_no, amount=amount, request_fingerprint="x",
        requested_by="api:test", state=state, succeeded_at=succeeded_at,
        channel_refund_no=f"50300{out_refund_no}" if state == "succeeded" else "",
        merchant_fee_refunded=back.merchant_fee, channel_cost_refunded=back.channel_cost,
        rebate_refunded=back.rebate)
    done = amount if state == "succeeded" else 0
    held = 0 if state in ("failed", "closed") else amount
    Order.objects.filter(pk=order.pk).update(refund_reserved=F("refund_reserved") + held,
                                             refunded_amount=F("refunded_amount") + done)
    return refund


def reversed_at(order: Order, when: dt.datetime) -> None:
    """The paid payment-code order is reversed (撤销) at ``when``: the order.reversed event dates it."""
    Order.objects.filter(pk=order.pk).update(state="reversed")  # FSM-protected: no transition outside a service
    Event.objects.create(merchant=order.merchant, type="order.reversed", object_type="order", object_id=order.pk,
                         sequence=2, data={"id": order.pk}, created_at=when)

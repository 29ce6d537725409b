"""Payment and refund callbacks from channels (design §5 rule 4; style.md §8), dispatched by channels.callbacks.

The adapter has verified and decrypted the callback. Here it is matched to our order by the unique reference we
gave the channel (our order id as out_trade_no), cross-checked (account, sub-merchant, amount, currency) and applied
through the same service as a query answer. Duplicates change nothing and are acknowledged.
"""

from __future__ import annotations

from channels.callbacks import CallbackDuplicate, CallbackRejected
from trades.models import Order, OrderState, Refund
from trades.services.orders import CrossCheckFailed, order_apply_result
from trades.services.refunds import refund_apply_result, refund_for_channel_no


def payment_callback(*, account, event) -> str:
    result = event.payment
    if result is None or not result.out_trade_no:
        raise CallbackRejected("payment callback without out_trade_no")
    order = Order.objects.filter(pk=result.out_trade_no, channel_account=account).first()
    if order is None:
        raise CallbackRejected(f"no order {result.out_trade_no} on account {account.code}")
    before = order.state
    if before == OrderState.SUCCEEDED and (not result.channel_trade_no or result.channel_trade_no ==
                                           order.channel_trade_no):
        raise CallbackDuplicate(f"order {order.pk} is already succeeded")
    try:
        order = order_apply_result(order_id=order.pk, result=result, source="callback")
    except CrossCheckFailed as exc:
        raise CallbackRejected(str(exc)) from None
    return f"order {order.pk}: {before} → {order.state}"


def refund_callback(*, account, event) -> str:
    result = event.refund
    if result is None or not result.out_refund_no:
        raise CallbackRejected("refund callback without out_refund_no")
    refund = refund_for_channel_no(account_id=account.pk, channel_no=result.out_refund_no)
    if refund is None:
        raise CallbackRejected(f"no refund {result.out_refund_no} on account {account.code}")
    before = refund.state
    if before != "pending":
        raise CallbackDuplicate(f"refund {refund.pk} is already {before}")
    try:
        refund = refund_apply_result(refund_id=refund.pk, result=result)
    except ValueError as exc:
        raise CallbackRejected(str(exc)) from None
    return f"refund {refund.pk}: {before} → {refund.state}"


__all__ = ["Refund", "payment_callback", "refund_callback"]

"""Payment and refund callbacks from channels (design §5 rule 4; style.md §8), dispatched by channels.callbacks.

The adapter has verified and decrypted the callback. Here it is matched to our order by the unique reference we
gave the channel (our order id as out_trade_no), cross-checked (account, sub-merchant, amount, currency) and applied
through the same service as a query answer. Duplicates change nothing and are acknowledged.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from channels.adapters.base import RefundState as ChannelRefundState
from channels.adapters.base import TradeState
from channels.callbacks import CallbackDuplicate, CallbackRejected
from risk.services.channel_notices import NoticeUnreadable, channel_risk_notice_record
from trades.models import LatePayment, Order, OrderState, Refund
from trades.services.late import (
    LATE_PREFIX,
    late_payment_apply_refund_result,
    late_payment_attempt,
    late_payment_refund_no,
    late_refund_no_split,
)
from trades.services.orders import CrossCheckFailed, order_apply_result
from trades.services.refunds import (
    RefundAmountMismatch,
    channel_refund_no,
    refund_apply_result,
    refund_attempt_of,
    refund_earlier_success_noted,
    refund_flag_settled_success,
    refund_for_channel_no,
    refund_lock_with_order,
)


def payment_callback(*, account, event) -> str:
    result = event.payment
    if result is None or not result.out_trade_no:
        raise CallbackRejected("payment callback without out_trade_no")
    try:
        return _payment_notice(account=account, result=result)
    except IntegrityError as exc:
        # The trade number the channel gives is one another order of this account already holds (unique per
        # account, design §5 rule 5): the notice cannot be about this order as the channel knows it. Refused and
        # recorded like any mismatch — not a 500 that stores nothing and that the channel retries for a day.
        if "order_unique_channel_trade_no" not in str(exc):
            raise
        raise CallbackRejected(f"order {result.out_trade_no}: the channel's trade number {result.channel_trade_no} "
                               f"is already another order's") from None


def _payment_notice(*, account, result) -> str:
    # The duplicate check runs under the order's row lock: copies of one callback arriving together must see each
    # other's outcome, so exactly one is "applied" and the rest "duplicate" (design §5 rule 4). Its own atomic
    # block (a savepoint when nested), so an IntegrityError leaves the caller's transaction usable.
    with transaction.atomic():
        order = (Order.objects.select_for_update(of=("self",), no_key=True).select_related("merchant", "app", "contract")
                 .filter(pk=result.out_trade_no, channel_account=account).first())
        if order is None:
            raise CallbackRejected(f"no order {result.out_trade_no} on account {account.code}")
        before = order.state
        if result.state != TradeState.SUCCEEDED:
            # A success is cross-checked by order_apply_result (every field required); any other word — Alipay's
            # TRADE_CLOSED for an unpaid trade that timed out, a failure — closes or fails the order there with no
            # check at all. Checked here on the fields it names, as a refund notice's trade is (_trade_mismatch):
            # a notice about another total or sub-merchant is refused and recorded, never closes our order (design
            # §5 rule 4). Bug: a signed TRADE_CLOSED naming 1 fen closed a 15-yuan order, and the merchant heard it.
            mismatch = _trade_mismatch(order, result)
            if mismatch:
                raise CallbackRejected(f"order {order.pk}: {mismatch}")
        duplicate = ""
        if before == OrderState.SUCCEEDED and (not result.channel_trade_no or result.channel_trade_no ==
                                               order.channel_trade_no):
            duplicate = f"order {order.pk} is already succeeded"
        elif before in (OrderState.CLOSED, OrderState.FAILED) and LatePayment.objects.filter(order=order).exists():
            duplicate = f"order {order.pk} is {before}; its late payment is already recorded"
        elif before == OrderState.REVERSED and order.paid_at is not None:
            duplicate = f"order {order.pk} is reversed; its payment is already recorded"
        try:
            # Applied even when it looks like a copy: a copy changes nothing there, but a success is cross-checked
            # first, so one that names another amount or sub-merchant is refused and recorded whatever the order's
            # state (design §5 rule 4), not acknowledged as a duplicate.
            order = order_apply_result(order_id=order.pk, result=result, source="callback", locked=order)
        except CrossCheckFailed as exc:
            # Name the order: the staff trade page links refused callbacks to it by this message.
            raise CallbackRejected(f"order {order.pk}: {exc}") from None
        if duplicate:
            raise CallbackDuplicate(duplicate)
    return f"order {order.pk}: {before} → {order.state}"


def refund_callback(*, account, event) -> str:
    result = event.refund
    if result is None or not result.out_refund_no:
        raise CallbackRejected("refund callback without out_refund_no")
    if result.out_refund_no.startswith(LATE_PREFIX):
        return _late_refund_notice(account=account, result=result, trade=event.payment)
    refund = refund_for_channel_no(account_id=account.pk, channel_no=result.out_refund_no)
    if refund is None:
        raise CallbackRejected(f"no refund {result.out_refund_no} on account {account.code}")
    with transaction.atomic():  # as for payments: the duplicate check under the refund's row lock
        # The order's lock first, as every path holding both takes them (refund_lock_with_order): the notice must
        # not deadlock with a retry or a new refund of the same order.
        _, refund = refund_lock_with_order(refund_id=refund.pk)
        before = refund.state
        # Before the duplicate check: a mismatch is refused and recorded whatever the refund's state, not
        # acknowledged as a copy because the refund has already settled (design §5 rule 4).
        mismatch = _trade_mismatch(refund.order, event.payment)
        if not mismatch and result.amount is not None and result.amount != refund.amount:
            mismatch = str(RefundAmountMismatch(reported=result.amount, ours=refund.amount))
        if mismatch:
            raise CallbackRejected(f"refund {refund.pk} of order {refund.order_id}: {mismatch}")
        try:
            attempt = refund_attempt_of(refund, result.out_refund_no)
            if attempt != refund.channel_attempt:
                return _earlier_attempt_notice(refund, attempt=attempt, result=result)
            if before != "pending":
                if before in ("failed", "closed") and result.state == ChannelRefundState.SUCCEEDED:
                    return _settled_refund_succeeded(refund, attempt=attempt, result=result)
                raise CallbackDuplicate(f"refund {refund.pk} is already {before}")
            refund = refund_apply_result(refund_id=refund.pk, result=result)
        except ValueError as exc:
            raise CallbackRejected(f"refund {refund.pk} of order {refund.order_id}: {exc}") from None
    return f"refund {refund.pk}: {before} → {refund.state}"


def _trade_mismatch(order: Order, trade) -> str:
    """What in the channel's account of the trade a refund notice is about (``event.payment``: the out_trade_no,
    sub-merchant and total it names) differs from the order the refund number belongs to, or "" (design §5 rule 4:
    callbacks are cross-checked against the order, refunds included). The refund number finds the refund; a notice
    that puts it on another trade, another sub-merchant's or one of another total is not about our refund as we
    know it, so no money is booked on it. Fields a channel leaves out are not checked here: each adapter names the
    trade on every refund notice, and the refund's own amount is checked beside this (refund_callback)."""
    if trade is None:
        return ""
    if trade.out_trade_no and trade.out_trade_no != order.pk:
        return f"the notice is about out_trade_no {trade.out_trade_no}, not {order.pk}"
    if order.sub_mchid and trade.sub_mchid and trade.sub_mchid != order.sub_mchid:
        return f"sub-merchant {trade.sub_mchid} is not {order.sub_mchid}"
    if trade.amount is not None and trade.amount != order.amount:
        return f"the trade's total {trade.amount} differs from the order's {order.amount}"
    if trade.currency and trade.currency != order.currency:
        return f"currency {trade.currency} differs from {order.currency}"
    return ""


def _earlier_attempt_notice(refund: Refund, *, attempt: int, result) -> str:
    """A notice about an attempt the refund has moved past (the channel re-delivering attempt 0's FAIL while the
    retry is pending, say): acknowledged so the channel stops, and kept on the trade timeline by its note (which
    names the refund). Only a success changes something — the refund is flagged for a person (refund_apply_result);
    any other state, or a success already flagged, changes nothing."""
    current = channel_refund_no(refund)
    about = (f"refund {refund.pk}: the channel's {result.state} is about attempt {attempt} ({result.out_refund_no}); "
             f"the current attempt is {refund.channel_attempt} ({current}), {refund.state}")
    if result.state != ChannelRefundState.SUCCEEDED:
        raise CallbackDuplicate(f"{about}: nothing changed")
    if refund_earlier_success_noted(refund_id=refund.pk, attempt=attempt):
        raise CallbackDuplicate(f"{about}: already flagged abnormal")
    refund_apply_result(refund_id=refund.pk, result=result)
    return f"{about}: money went back for attempt {attempt}, flagged abnormal for a person (possible double refund)"


def _settled_refund_succeeded(refund: Refund, *, attempt: int, result) -> str:
    """The channel says the refund's current attempt, which it had failed or closed, returned the money after all:
    never acknowledged as a copy and dropped (a possible double refund) — flagged abnormal for a person by
    refunds.refund_flag_settled_success, as a query's answer saying so is. Called under the refund's lock; the same
    notice again is a copy."""
    about = (f"refund {refund.pk}: the channel says attempt {attempt} ({result.out_refund_no}), {refund.state} here, "
             f"succeeded")
    if not refund_flag_settled_success(refund=refund, attempt=attempt, result=result):
        raise CallbackDuplicate(f"{about}: already flagged abnormal")
    return f"{about}: money went back, flagged abnormal — needs a person (possible double refund)"


def _late_refund_notice(*, account, result, trade) -> str:
    """The channel's word on the refund of a late payment (trades.services.late, out_refund_no ``late_<order id>``,
    or a retry's own number): applied to the late payment — a success resolves it; a failure, close or abnormal
    reopens it for a person (design §5 rule 3: a late payment is never lost); it is ours, so never a security event.
    Words that change nothing (the same notice again, a stale word about an earlier attempt) are acknowledged as
    duplicates; an earlier attempt's success flags it for a person (as _earlier_attempt_notice does for a refund).
    A notice that puts the number on another trade, or names another amount than the late payment's (its refund
    returns all of it), is refused, as for any refund (``_trade_mismatch``, refund_callback).
    The note names the order, so the callback shows on its trade timeline."""
    split = late_refund_no_split(result.out_refund_no)
    late = split and (LatePayment.objects.filter(order_id=split[0], order__channel_account=account)
                      .select_related("order").only("pk", "amount", "order__id", "order__sub_mchid",
                                                    "order__amount", "order__currency").first())
    if not late:
        raise CallbackRejected(f"no late payment for {result.out_refund_no} on account {account.code}")
    order_id, attempt = split
    mismatch = _trade_mismatch(late.order, trade)
    if not mismatch and result.amount is not None and result.amount != late.amount:
        # The late payment's refund returns its whole amount (late_payment_refund): a word about another amount is
        # not about our refund as we asked it, so nothing is booked on it (design §5 rule 4, as refund_callback).
        mismatch = f"the refund's amount {result.amount} differs from the late payment's {late.amount}"
    if mismatch:
        raise CallbackRejected(f"late payment of {order_id}: {mismatch}")
    try:
        late, changed = late_payment_apply_refund_result(late_payment_id=late.pk, result=result,
                                                         actor=f"channel:{account.code}", source="callback")
    except ValueError as exc:
        raise CallbackRejected(f"late payment of {order_id}: {exc}") from None
    if attempt != late_payment_attempt(late):
        about = (f"late payment of {order_id}: the channel's {result.state} is about refund attempt {attempt} "
                 f"({result.out_refund_no}); the current attempt is {late_payment_attempt(late)} "
                 f"({late_payment_refund_no(late)}), {late.state}")
        if not changed:
            raise CallbackDuplicate(f"{about}: nothing changed")
        return f"{about}: money went back for attempt {attempt}, flagged for a person (possible double refund)"
    if not changed:
        raise CallbackDuplicate(f"late payment of {order_id}: refund {result.state} changes nothing ({late.state})")
    return f"late payment of {order_id}: refund {result.state} → {late.state}"


def violation_callback(*, account, event) -> str:
    """A channel's merchant violation notice (channel-protocols.md A.15: ``VIOLATION.PUNISH`` / ``INTERCEPT`` /
    ``APPEAL``): recorded for risk's queue (risk.services.channel_notices), matched to our contract by its sub-merchant
    when one has it. The same record sent again is a duplicate: acknowledged with the channel's success answer and
    nothing changes (design §5 rule 4). A notice we cannot record — no record id, a type A.15 does not list — is
    refused and kept on risk's queue of refused callbacks rather than acknowledged and lost."""
    try:
        recorded = channel_risk_notice_record(account=account, event_type=event.data.get("event_type", ""),
                                              event_id=event.event_id, data=event.data)
    except NoticeUnreadable as exc:
        raise CallbackRejected(str(exc)) from None
    if not recorded.created:
        raise CallbackDuplicate(recorded.note)
    return recorded.note


__all__ = ["Refund", "payment_callback", "refund_callback", "violation_callback"]

"""Refunds — merchant-api.md "Refunds", design §5 rule 6: the sum of non-failed refunds never exceeds the paid
amount, under any concurrency. The order row is locked while a refund reserves its amount (``refund_reserved``,
also guarded by a CHECK constraint); the channel is called after that transaction commits (rule 7)."""

from __future__ import annotations

import hashlib
import json
import logging
import time

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import AuditNote
from aggpay.errors import ChannelRefused, IdempotencyConflict, InvalidState, NotFound, RefundAmountExceeded
from channels.adapters.base import RefundRequest, RefundResult
from channels.adapters.base import RefundState as ChannelRefundState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.http import redact
from channels.callbacks import callback_url
from trades.models import ChannelCall, Order, OrderState, Refund, RefundState, SyncState
from trades.services.events import event_emit
from trades.services.fees import FeeSnapshot, fees_for_refund
from trades.services.ladder import next_query_at
from trades.services.orders import _trade_ref
from trades.services.representation import refund_as_api

logger = logging.getLogger(__name__)


def refund_fingerprint(*, out_refund_no: str, amount: int, reason: str, notify_url: str) -> str:
    canonical = json.dumps({"out_refund_no": out_refund_no, "amount": amount, "reason": reason or "",
                            "notify_url": notify_url or ""}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def channel_refund_no(refund: Refund) -> str:
    """Our refund number at the channel. A retry after a definite failure uses a new one (``_<n>``), since a
    channel keeps a failed number failed; an unknown outcome is retried with the same number (idempotent)."""
    return refund.pk if refund.channel_attempt == 0 else f"{refund.pk}_{refund.channel_attempt}"


def refund_create(*, order: Order, out_refund_no: str, amount: int, reason: str = "", notify_url: str = "",
                  actor_label: str, audit: AuditNote | None = None) -> tuple[Refund, bool]:
    """Create (or replay, or retry a failed) refund of ``order``. Returns (refund, replayed). ``audit`` (a staff
    refund): written in the transaction that creates or retries the refund, before the channel is asked."""
    print_ = refund_fingerprint(out_refund_no=out_refund_no, amount=amount, reason=reason, notify_url=notify_url)
    try:
        with transaction.atomic():
            locked = Order.objects.select_for_update(no_key=True).get(pk=order.pk)
            existing = Refund.objects.filter(merchant_id=locked.merchant_id, out_refund_no=out_refund_no).first()
            if existing is not None:
                if existing.request_fingerprint != print_ or existing.order_id != locked.pk:
                    raise IdempotencyConflict(f"out_refund_no {out_refund_no} was used with different parameters",
                                              param="out_refund_no")
                if existing.state != "failed":
                    return existing, True
                refund = existing  # merchant-api.md: a failed refund may be retried with the same out_refund_no
                _reserve(locked, amount)
                refund.retry()
                refund.channel_attempt += 1
                refund.failure_code = refund.failure_message = ""
                refund.save()
                if audit is not None:
                    audit.write(refund, out_refund_no=out_refund_no, retried=True)
            else:
                if locked.state != OrderState.SUCCEEDED:
                    raise InvalidState(f"the order is {locked.state}; only paid orders can be refunded")
                _reserve(locked, amount)
                snapshot = FeeSnapshot(merchant_rate=locked.merchant_rate, merchant_fee=locked.merchant_fee,
                                       cost_rate=locked.cost_rate, channel_cost=locked.channel_cost,
                                       rebate_rate=locked.rebate_rate, rebate=locked.rebate, profit=locked.profit)
                back = fees_for_refund(snapshot=snapshot, paid=locked.amount, refund=amount,
                                       already_refunded=locked.refund_reserved - amount)
                refund = Refund.objects.create(
                    order=locked, merchant_id=locked.merchant_id, out_refund_no=out_refund_no, amount=amount,
                    reason=reason or "", notify_url=notify_url or "", request_fingerprint=print_,
                    requested_by=actor_label, merchant_fee_refunded=back.merchant_fee,
                    channel_cost_refunded=back.channel_cost, rebate_refunded=back.rebate,
                )
                if audit is not None:
                    audit.write(refund, out_refund_no=out_refund_no)
    except IntegrityError:
        existing = Refund.objects.get(merchant_id=order.merchant_id, out_refund_no=out_refund_no)
        if existing.request_fingerprint != print_:
            raise IdempotencyConflict(f"out_refund_no {out_refund_no} was used with different parameters",
                                      param="out_refund_no")
        return existing, True
    refund = refund_send(refund_id=refund.pk)
    if refund.state == "failed":
        raise ChannelRefused(refund.failure_message or "the channel refused the refund",
                             channel_code=refund.failure_code, channel_message=refund.failure_message,
                             extra={"refund": refund_as_api(refund)})
    return refund, False


def _reserve(order: Order, amount: int) -> None:
    if order.refund_reserved + amount > order.amount:
        raise RefundAmountExceeded(
            f"refunds would total {order.refund_reserved + amount} fen; the order paid {order.amount} "
            f"(refundable now: {order.amount - order.refund_reserved})", param="amount")
    order.refund_reserved += amount
    order.save(update_fields=["refund_reserved", "updated_at"])


def _release(order: Order, amount: int) -> None:
    order.refund_reserved -= amount
    order.save(update_fields=["refund_reserved", "updated_at"])


def refund_send(*, refund_id: str) -> Refund:
    """Ask the channel to refund (no lock held) and apply its answer."""
    refund = Refund.objects.select_related("order__channel_account", "order__contract").get(pk=refund_id)
    order = refund.order
    request = RefundRequest(trade=_trade_ref(order), out_refund_no=channel_refund_no(refund), amount=refund.amount,
                            total_amount=order.amount, reason=refund.reason,
                            notify_url=callback_url(order.channel_account))
    return _call_and_apply(refund, verb="refund", call=lambda adapter: adapter.refund(request))


def refund_sync(*, refund_id: str) -> Refund:
    refund = Refund.objects.select_related("order__channel_account", "order__contract").get(pk=refund_id)
    if refund.state != "pending":
        return refund
    ref = _trade_ref(refund.order)
    return _call_and_apply(refund, verb="query_refund",
                           call=lambda adapter: adapter.query_refund(trade=ref, out_refund_no=channel_refund_no(refund)))


def _call_and_apply(refund: Refund, *, verb: str, call) -> Refund:
    started = time.perf_counter()
    try:
        result = call(refund.order.channel_account.adapter())
    except ChannelUnknown as exc:
        with transaction.atomic():
            _record(refund, verb, "unknown", started, error=exc)
            return _schedule(refund.pk, unknown=True)
    except ChannelError as exc:
        with transaction.atomic():
            _record(refund, verb, "error", started, error=exc)
        if verb == "refund":
            return refund_apply_result(refund_id=refund.pk, result=RefundResult(
                state=ChannelRefundState.FAILED, failure_code=exc.channel_code or exc.code,
                failure_message=exc.channel_message or exc.message))
        return _schedule(refund.pk, unknown=True)
    with transaction.atomic():
        _record(refund, verb, result.state, started, result=result)
    return refund_apply_result(refund_id=refund.pk, result=result)


def _record(refund, verb, outcome, started, *, result=None, error=None) -> None:
    ChannelCall.objects.create(
        order_id=refund.order_id, refund_id=refund.pk, verb=verb, outcome=outcome,
        channel_code=(error.channel_code or error.code) if error else (result.failure_code or ""),
        message=(error.message if error else result.failure_message or "")[:512],
        answer=redact(json.dumps(result.raw if result else {}, ensure_ascii=False, default=str), 4000),
        elapsed_ms=int((time.perf_counter() - started) * 1000),
    )


def _schedule(refund_id: str, *, unknown: bool) -> Refund:
    with transaction.atomic():
        refund = Refund.objects.select_for_update(no_key=True).get(pk=refund_id)
        if refund.state == "pending":
            at = next_query_at(created_at=refund.created_at, now=timezone.now(), barcode=False)
            refund.sync_state = SyncState.MANUAL if at is None else (SyncState.UNKNOWN if unknown else SyncState.OK)
            refund.next_query_at = at
            refund.query_attempts += 1
            refund.save()
        return refund


def refund_apply_result(*, refund_id: str, result: RefundResult) -> Refund:
    """Apply the channel's answer about a refund (refund call, query or callback). Idempotent."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update(of=("self",), no_key=True).select_related("order").get(pk=refund_id)
        order = Order.objects.select_for_update(of=("self",), no_key=True).select_related("merchant", "app").get(pk=refund.order_id)
        if result.amount is not None and result.amount != refund.amount:
            raise ValueError(f"channel reports refund amount {result.amount}, ours is {refund.amount}")
        if refund.state != "pending":
            return refund
        state = result.state
        if state == ChannelRefundState.SUCCEEDED:
            refund.succeed()
            refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
            refund.succeeded_at = result.succeeded_at or timezone.now()
            refund.sync_state, refund.next_query_at, refund.abnormal = SyncState.OK, None, False
            refund.save()
            order.refunded_amount += refund.amount
            order.refund_state = RefundState.FULL if order.refunded_amount == order.amount else RefundState.PARTIAL
            order.save(update_fields=["refunded_amount", "refund_state", "updated_at"])
            _emit(refund, order, "refund.succeeded")
        elif state in (ChannelRefundState.FAILED, ChannelRefundState.CLOSED):
            refund.fail() if state == ChannelRefundState.FAILED else refund.close()
            refund.failure_code = (result.failure_code or state)[:64]
            refund.failure_message = (result.failure_message or "")[:256]
            refund.sync_state, refund.next_query_at = SyncState.OK, None
            refund.save()
            _release(order, refund.amount)
            _emit(refund, order, "refund.failed" if state == ChannelRefundState.FAILED else "refund.closed")
        elif state == ChannelRefundState.ABNORMAL:
            # The wallet could not return the money (card closed…): a person handles it with the channel.
            if not refund.abnormal:
                refund.abnormal = True
                refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
                refund.next_query_at = None
                refund.save()
        else:  # processing / not found yet: keep asking on the ladder
            refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
            at = next_query_at(created_at=refund.created_at, now=timezone.now(), barcode=False)
            refund.sync_state = SyncState.OK if at else SyncState.MANUAL
            refund.next_query_at = at
            refund.save()
        return refund


def _emit(refund: Refund, order: Order, event_type: str) -> None:
    event_emit(merchant=order.merchant, type=event_type, obj_type="refund", obj_id=refund.pk,
               data=refund_as_api(refund), app=order.app, notify_url=refund.notify_url or order.notify_url or None)


def refund_get(*, merchant, out_refund_no: str) -> Refund:
    refund = Refund.objects.select_related("order").filter(merchant=merchant, out_refund_no=out_refund_no).first()
    if refund is None:
        raise NotFound(f"no refund {out_refund_no}", param="out_refund_no")
    return refund


def refunds_due_for_query(*, limit: int = 500) -> list[str]:
    return list(Refund.objects.filter(state="pending", abnormal=False, next_query_at__lte=timezone.now())
                .order_by("next_query_at").values_list("pk", flat=True)[:limit])


def refund_for_channel_no(*, account_id: int, channel_no: str) -> Refund | None:
    base = channel_no.split("_", 2)
    refund_id = "_".join(base[:2]) if len(base) >= 2 else channel_no
    return Refund.objects.filter(pk=refund_id, order__channel_account_id=account_id).first()


__all__ = ["can_proceed", "refund_create", "refund_get", "refund_sync", "refunds_due_for_query"]

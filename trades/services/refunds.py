"""Refunds — merchant-api.md "Refunds", design §5 rule 6: the sum of non-failed refunds never exceeds the paid
amount, under any concurrency. The order row is locked while a refund reserves its amount (``refund_reserved``,
also guarded by a CHECK constraint); the channel is called after that transaction commits (rule 7)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import time
from typing import NoReturn

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, Subquery
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import AuditNote, audit_log
from aggpay.errors import ChannelRefused, IdempotencyConflict, InvalidState, NotFound, RefundAmountExceeded
from aggpay.models import AuditLog
from channels.adapters.base import RefundRequest, RefundResult
from channels.adapters.base import RefundState as ChannelRefundState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.http import recording_exchanges
from channels.callbacks import callback_url
from trades.models import ChannelCall, EarlierRefundNumber, Order, OrderState, Refund, RefundState, SyncState
from trades.services.channel_calls import call_fields
from trades.services.events import event_emit
from trades.services.fees import fee_snapshot_of, fees_for_refund
from trades.services.ladder import FIRST, next_query_at
from trades.services.orders import QUERY_MIN_INTERVAL, _trade_ref
from trades.services.representation import refund_as_api, state_words

logger = logging.getLogger(__name__)


def refund_fingerprint(*, out_refund_no: str, amount: int, reason: str, notify_url: str,
                       default_notify_url: str = "") -> str:
    """sha256 of what a refund asks for, for idempotency (design §5 rule 5) — its effective parameters: a retry that
    spells out a default it left out is the same request, and only different parameters are a 409 (merchant-api.md
    "Errors"). ``reason`` is free text: none is empty. ``notify_url``: a refund's notifications go to its order's
    ``notify_url`` unless it names its own (docs/api.md "Notifications and events"), so given equal to the order's
    URL (``default_notify_url``) it counts as omitted. Not equal to the app's URL: an order without a URL of its own
    notifies the app's as it is when each event is made, which a URL spelled out would not follow."""
    if notify_url and notify_url == default_notify_url:
        notify_url = ""
    canonical = json.dumps({"out_refund_no": out_refund_no, "amount": amount, "reason": reason or "",
                            "notify_url": notify_url or ""}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _refund_prints(*, out_refund_no: str, amount: int, reason: str, notify_url: str, order: Order) -> set[str]:
    """The prints under which a retry is the request that made a refund: one per way of spelling it — the order's
    URL omitted or given, else the URL given. The old scheme hashed an explicit notify_url as given even when it was
    the order's, and refunds made before carry that print: with every spelling counted, they replay as new ones do,
    and nothing has to be removed later. (The order's URL never changes, so neither do these.)"""
    spellings = {"", order.notify_url} if notify_url in ("", None, order.notify_url) else {notify_url}
    return {refund_fingerprint(out_refund_no=out_refund_no, amount=amount, reason=reason, notify_url=spelling)
            for spelling in spellings}


# The audit action written when the channel says an earlier attempt of a refund succeeded (see refund_apply_result).
EARLIER_ATTEMPT_SUCCEEDED = "trades.refund.earlier_attempt_succeeded"
# The audit action written when the channel's answer about a refund names another amount (see _hold_for_amount).
AMOUNT_MISMATCH = "trades.refund.amount_mismatch"
# Flags a person clears, not the channel: a later answer about the current attempt leaves them set.
HELD_FOR_REVIEW = (EARLIER_ATTEMPT_SUCCEEDED, AMOUNT_MISMATCH)
# Written when the channel first says a refund's attempt is ABNORMAL (the wallet could not take the money back): its
# reason, and the mark that a later ABNORMAL about the same attempt is not news (refund_apply_result).
CHANNEL_ABNORMAL = "trades.refund.channel_abnormal"
# Written when a person marks an abnormal refund handled (trades.services.staff.refund_abnormal_resolve); for a
# pending one, with ``requeried`` when they chose to keep asking the channel: its query ladder counts from then
# (``_ladder_start``).
ABNORMAL_RESOLVED = "trades.refund.abnormal_resolved"
# Written when a person closes a pending refund the channel said it could not return (refund_close_by_hand).
CLOSED_BY_HAND = "trades.refund.closed_by_hand"
# Written when a failed refund is retried with its out_refund_no (refund_create): the trade timeline shows who retried
# it and when, and the query ladder of the new attempt counts from it (``_ladder_start``).
RETRIED = "trades.refund.retried"
# + refund id: the claim on a refund's query allowance (``_claim_query``), as orders have theirs (QUERY_CLAIM_PREFIX).
QUERY_CLAIM_PREFIX = "trades:refund-query:"


class RefundAmountMismatch(ValueError):
    """The channel's answer about a refund names an amount other than ours (refund_apply_result)."""

    def __init__(self, *, reported: int, ours: int):
        super().__init__(f"channel reports refund amount {reported}, ours is {ours}")
        self.reported, self.ours = reported, ours


def channel_refund_no(refund: Refund) -> str:
    """Our refund number at the channel. A retry after a definite failure uses a new one (``_<n>``), since a
    channel keeps a failed number failed; an unknown outcome is retried with the same number (idempotent)."""
    return _refund_no_at(refund.pk, refund.channel_attempt)


def _refund_no_at(refund_id: str, attempt: int) -> str:
    return refund_id if attempt == 0 else f"{refund_id}_{attempt}"


def _split_channel_no(channel_no: str) -> tuple[str, int] | None:
    """(refund id, attempt) of a refund number we gave a channel (``ref_…`` or ``ref_…_<n>``, n ≥ 1), else None."""
    head, _, tail = channel_no.rpartition("_")
    if "_" in head and tail.isascii() and tail.isdigit() and _refund_no_at(head, int(tail)) == channel_no:
        return head, int(tail)
    if channel_no.count("_") == 1:
        return channel_no, 0
    return None


def refund_attempt_of(refund: Refund, channel_no: str) -> int:
    """Which attempt of ``refund`` a channel answer is about, from the refund number it names. Every attempt has its
    own number, so an answer about an earlier one (a re-delivered callback, a slow answer) is told apart from one
    about the current attempt. A number that is not one of this refund's is refused (ValueError)."""
    split = _split_channel_no(channel_no or "")
    if split is None or split[0] != refund.pk or split[1] > refund.channel_attempt:
        raise ValueError(f"the channel's answer names refund number {channel_no or '(none)'}; refund {refund.pk} "
                         f"is at attempt {refund.channel_attempt} ({channel_refund_no(refund)})")
    return split[1]


def refund_earlier_success_noted(*, refund_id: str, attempt: int | None = None) -> bool:
    """Whether the channel has said an earlier attempt of this refund (``attempt``, or any) succeeded."""
    rows = AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED, target_type="trades.refund", target_id=refund_id)
    return rows.filter(data__attempt=attempt).exists() if attempt is not None else rows.exists()


def refund_create(*, order: Order, out_refund_no: str, amount: int, reason: str = "", notify_url: str = "",
                  actor_label: str, audit: AuditNote | None = None,
                  retry_failed: bool = True) -> tuple[Refund, bool]:
    """Create (or replay, or retry a failed) refund of ``order``. Returns (refund, replayed). ``audit`` (a staff
    refund): written in the transaction that creates or retries the refund, before the channel is asked.
    ``retry_failed=False`` (a staff refund form, whose number is spent once submitted): a failed refund with this
    number is replayed as it is, not retried.

    The part of the fee snapshot the refund gives back is not decided here but when it succeeds
    (``refund_apply_result``): until then it may still fail, and only what actually went back counts."""
    print_ = refund_fingerprint(out_refund_no=out_refund_no, amount=amount, reason=reason, notify_url=notify_url,
                                default_notify_url=order.notify_url)
    prints = _refund_prints(out_refund_no=out_refund_no, amount=amount, reason=reason, notify_url=notify_url,
                            order=order)
    try:
        with transaction.atomic():
            locked = Order.objects.select_for_update(no_key=True).get(pk=order.pk)
            existing = Refund.objects.filter(merchant_id=locked.merchant_id, out_refund_no=out_refund_no).first()
            if existing is not None:
                _check_same_request(existing, order_id=locked.pk, prints=prints, out_refund_no=out_refund_no)
                if existing.state != "failed" or not retry_failed:
                    return existing, True
                if existing.abnormal:
                    # An earlier attempt succeeded at the channel after all, or the channel named another amount
                    # (refund_apply_result): another attempt could return the money twice. A person settles it with
                    # the channel first.
                    raise InvalidState(f"refund {out_refund_no} is held for review: the channel reported an earlier "
                                       f"attempt as succeeded, or another amount", param="out_refund_no")
                _check_refundable(locked)  # a retry moves money as a new refund does
                refund = existing  # merchant-api.md: a failed refund may be retried with the same out_refund_no
                _reserve(locked, amount)
                refund.retry()
                refund.channel_attempt += 1
                refund.failure_code = refund.failure_message = ""
                # The channel's number of the failed attempt is not this attempt's: shown on the pending retry, it
                # would name a refund the channel reports failed as the current one (merchant-api.md "Refunds":
                # ``channel_refund_no`` is the refund's number at the channel). The new attempt's answer fills it in;
                # the old one stays on the timeline, in this row.
                failed_channel_refund_no, refund.channel_refund_no = refund.channel_refund_no, ""
                # ... and in EarlierRefundNumber, which support searches by (trades.workbench.search_orders).
                EarlierRefundNumber.keep(order_id=refund.order_id, refund_id=refund.pk,
                                         attempt=refund.channel_attempt - 1, channel_refund_no=failed_channel_refund_no)
                _expect_answer(refund)
                refund.save()
                audit_log(actor=actor_label, action=RETRIED, target=refund,
                          data={"attempt": refund.channel_attempt, "channel_no": channel_refund_no(refund),
                                "failed_channel_refund_no": failed_channel_refund_no})
                if audit is not None:
                    audit.write(refund, out_refund_no=out_refund_no, retried=True)
            else:
                _check_refundable(locked)
                _reserve(locked, amount)
                refund = Refund(
                    order=locked, merchant_id=locked.merchant_id, out_refund_no=out_refund_no, amount=amount,
                    reason=reason or "", notify_url=notify_url or "", request_fingerprint=print_,
                    requested_by=actor_label,
                )
                _expect_answer(refund)
                refund.save(force_insert=True)
                if audit is not None:
                    audit.write(refund, out_refund_no=out_refund_no)
    except IntegrityError:
        # Another request inserted this out_refund_no between our look-up and our insert. Requests for one order
        # queue on its row lock, so that one was for another order of the merchant, or the error is not ours.
        existing = Refund.objects.filter(merchant_id=order.merchant_id, out_refund_no=out_refund_no).first()
        if existing is None:
            raise
        _check_same_request(existing, order_id=order.pk, prints=prints, out_refund_no=out_refund_no)
        return existing, True
    refund = refund_send(refund_id=refund.pk)
    if refund.state == "failed":
        raise ChannelRefused(refund.failure_message or "the channel refused the refund",
                             channel_code=refund.failure_code, channel_message=refund.failure_message,
                             extra={"refund": refund_as_api(refund)})
    return refund, False


def _check_same_request(existing: Refund, *, order_id: str, prints: set[str], out_refund_no: str) -> None:
    """Design §5 rule 5: an out_refund_no names one refund of one order. The fingerprint does not cover the order
    (the order is in the URL), so a refund of another order with the same number is a conflict, not a replay."""
    if existing.order_id != order_id:
        raise IdempotencyConflict(f"out_refund_no {out_refund_no} was already used for another order",
                                  param="out_refund_no")
    if existing.request_fingerprint not in prints:
        raise IdempotencyConflict(f"out_refund_no {out_refund_no} was used with different parameters",
                                  param="out_refund_no")


def _check_refundable(order: Order) -> None:
    """For a new refund and for the retry of a failed one alike (both reserve and move money)."""
    if order.reverse_requested_at is not None:
        # The reverse (撤销) returns the whole payment; its hold is the whole amount (order_reverse).
        raise InvalidState("a reverse of this order is under way; it cannot be refunded")
    if order.state != OrderState.SUCCEEDED:
        raise InvalidState(f"the order {state_words(order.state)}; only paid orders can be refunded")


def _expect_answer(refund: Refund) -> None:
    """Schedule, in the transaction that records the intent (design §5 rule 7), the query that settles the refund
    if the channel's answer never comes back to be applied: the worker dies between this commit and the answer,
    or the adapter raises something that is not a channel error. The answer, when it is applied, replaces this
    (``refund_apply_result``, ``_schedule``); if it never is, the sweeper asks the channel, and re-sends the
    refund under the same number if the channel never heard of it (``refund_sync``)."""
    refund.sync_state = SyncState.UNKNOWN
    refund.next_query_at = timezone.now() + FIRST


def _ladder_start(refund: Refund) -> dt.datetime:
    """When the refund's current attempt was asked, which its query ladder (design §5 rule 2) counts from. A retry
    is a new refund at the channel, asked maybe days after the first attempt (merchant-api.md: a failed refund may
    be retried with the same out_refund_no): counted from the refund's creation, its ladder would already be over
    and an unanswered or processing retry would go to the manual queue at once, never asked about. A re-send under
    the same number (``refund_sync``) does not restart it: a channel that keeps losing the refund must still end in
    the manual queue.

    A person's "Mark handled" choosing to keep asking the channel about a pending refund it could not return
    (trades.services.staff.refund_abnormal_resolve, its ABNORMAL_RESOLVED row ``requeried``) restarts it too: that
    is a deliberate new round of asking, maybe days after the refund, which must get its whole ladder before the
    refund comes back to a person (refund_apply_result, the ABNORMAL branch)."""
    started = (AuditLog.objects.filter(target_type="trades.refund", target_id=refund.pk)
               .filter(Q(action=RETRIED, data__attempt=refund.channel_attempt)
                       | Q(action=ABNORMAL_RESOLVED, data__requeried=True,
                           data__channel_attempt=refund.channel_attempt))
               .order_by("-created_at").values_list("created_at", flat=True).first())
    return max(started, refund.created_at) if started else refund.created_at


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
    return _call_and_apply(refund, verb="refund", asked=request.out_refund_no,
                           call=lambda adapter: adapter.refund(request))


def refund_sync(*, refund_id: str) -> Refund:
    """Ask the channel about a pending refund and apply its answer.

    When the refund's first answer is overdue (its query is due: the intent committed but the channel's answer to
    the refund call was never applied) and the channel says it has no such refund, the call never reached it: the
    refund is sent again under the same number. That is safe even if the channel did get it after all — the same
    refund number is idempotent at every channel (channel-protocols.md A.10 "same out_refund_no is idempotent";
    B.5 ``out_request_no``, "retries must reuse it"; docs/channels/bank.md §7.1 "the same out_refund_no with the
    same trade and amount answers the existing refund")."""
    refund = Refund.objects.select_related("order__channel_account", "order__contract").get(pk=refund_id)
    if refund.state != "pending":
        return refund
    if not _claim_query(refund.pk):
        return refund  # another caller is asking the channel about this refund right now, or just did
    # Only an overdue refund is re-sent: one whose refund call may still be on its way (a merchant asking right
    # after creating it) is not found yet, and is asked about again on the ladder.
    overdue = refund.next_query_at is not None and refund.next_query_at <= timezone.now()
    ref, asked = _trade_ref(refund.order), channel_refund_no(refund)
    answers: list[str] = []

    def ask(adapter) -> RefundResult:
        answer = adapter.query_refund(trade=ref, out_refund_no=asked)
        answers.append(answer.state)
        return answer

    refund = _call_and_apply(refund, verb="query_refund", asked=asked, call=ask)
    if overdue and answers == [ChannelRefundState.NOT_FOUND] and _may_send_again(refund.pk, asked=asked):
        logger.warning("refund %s: the channel has no refund %s; sending it again under the same number",
                       refund.pk, asked)
        return refund_send(refund_id=refund.pk)
    return refund


def _claim_query(refund_id: str) -> bool:
    """Claim the refund's query allowance before asking the channel, in one atomic step (SET NX), as orders do
    (trades.services.orders._claim_query): at most one query per QUERY_MIN_INTERVAL per refund. The merchant's
    ``GET /api/v1/refunds/{no}`` asks the channel while the refund is pending (merchant-api.md "Refunds"); polls
    arriving together — a merchant's retries, several of its servers — would each ask it, and a channel throttles
    or bans a merchant that floods its query interface. The sweeper shares the allowance: a refund asked less than
    that ago has had its answer applied (or is being asked) and stays due until it has."""
    return cache.add(f"{QUERY_CLAIM_PREFIX}{refund_id}", 1, timeout=math.ceil(QUERY_MIN_INTERVAL.total_seconds()))


def _may_send_again(refund_id: str, *, asked: str) -> bool:
    """Whether a refund the channel said it has no ``asked`` for may be sent again: still pending, still at that
    attempt, and not held for a person (one flagged abnormal may have returned the money under another number)."""
    refund = Refund.objects.get(pk=refund_id)
    return refund.state == "pending" and not refund.abnormal and channel_refund_no(refund) == asked


def _call_and_apply(refund: Refund, *, verb: str, asked: str, call) -> Refund:
    """``asked``: the refund number the call is about. The refund may have moved to a later attempt by the time the
    answer is applied (no lock is held across the call), so the answer carries the number it is about."""
    started = time.perf_counter()
    try:
        with recording_exchanges() as sent:
            result = call(refund.order.channel_account.adapter())
    except ChannelUnknown as exc:
        with transaction.atomic():
            _record(refund, verb, "unknown", started, error=exc, sent=sent)
            return _schedule(refund.pk, unknown=True)
    except ChannelError as exc:
        with transaction.atomic():
            _record(refund, verb, "error", started, error=exc, sent=sent)
        if verb == "refund":
            return refund_apply_result(refund_id=refund.pk, result=RefundResult(
                state=ChannelRefundState.FAILED, out_refund_no=asked, failure_code=exc.channel_code or exc.code,
                failure_message=exc.channel_message or exc.message))
        return _schedule(refund.pk, unknown=True)
    with transaction.atomic():
        _record(refund, verb, result.state, started, result=result, sent=sent)
    if not result.out_refund_no:
        result = dataclasses.replace(result, out_refund_no=asked)  # the adapter's object is left as it gave it
    try:
        return refund_apply_result(refund_id=refund.pk, result=result)
    except RefundAmountMismatch as exc:
        return _hold_for_amount(refund.pk, result=result, mismatch=exc, verb=verb)


def _record(refund, verb, outcome, started, *, result=None, error=None, sent=None) -> None:
    ChannelCall.objects.create(order_id=refund.order_id, refund_id=refund.pk, **call_fields(
        verb=verb, outcome=outcome, started=started, result=result, error=error, sent=sent))


def _schedule(refund_id: str, *, unknown: bool) -> Refund:
    with transaction.atomic():
        refund = Refund.objects.select_for_update(no_key=True).get(pk=refund_id)
        if refund.state == "pending":
            at = next_query_at(created_at=_ladder_start(refund), now=timezone.now(), barcode=False)
            refund.sync_state = SyncState.MANUAL if at is None else (SyncState.UNKNOWN if unknown else SyncState.OK)
            refund.next_query_at = at
            refund.query_attempts += 1
            refund.save()
        return refund


def refund_lock_with_order(*, refund_id: str) -> tuple[Order, Refund]:
    """Lock a refund and its order, the order first. Every path that holds both takes them in this order — a
    create or retry locks the order and then writes the refund (``refund_create``) — so a channel's answer about a
    refund crossing a retry or a new refund of the same order waits its turn instead of deadlocking (PostgreSQL
    aborts one side of a lock cycle). The order is found through a subquery: one statement, no unlocked read."""
    order = (Order.objects.select_for_update(of=("self",), no_key=True).select_related("merchant", "app")
             .get(pk=Subquery(Refund.objects.filter(pk=refund_id).values("order_id")[:1])))
    refund = (Refund.objects.select_for_update(of=("self",), no_key=True)
              .select_related("order__channel_account").get(pk=refund_id))
    return order, refund


def refund_apply_result(*, refund_id: str, result: RefundResult) -> Refund:
    """Apply the channel's answer about a refund (refund call, query or callback). Idempotent.

    ``result.out_refund_no`` names the attempt the answer is about (``channel_refund_no``). Only an answer about the
    current attempt changes the refund; see ``_apply_earlier_attempt`` for one about an earlier attempt. A number
    that is not one of this refund's raises ValueError; an amount that differs raises RefundAmountMismatch (a
    ValueError) and changes nothing — a callback is refused for it (trades.services.callbacks), an answer to our
    own call holds the refund for a person (``_hold_for_amount``).

    A success gives back the refund's part of the order's fee snapshot, decided here under the order's lock from
    what had gone back before it (``fees_for_refund`` over ``refunded_amount``): the parts of the refunds that
    succeed add up to the whole snapshot once the order is fully refunded, whatever failed in between."""
    with transaction.atomic():
        order, refund = refund_lock_with_order(refund_id=refund_id)
        if result.amount is not None and result.amount != refund.amount:
            raise RefundAmountMismatch(reported=result.amount, ours=refund.amount)
        attempt = refund_attempt_of(refund, result.out_refund_no)
        if attempt != refund.channel_attempt:
            return _apply_earlier_attempt(refund, attempt=attempt, result=result)
        if refund.state != "pending":
            if refund.state in ("failed", "closed") and result.state == ChannelRefundState.SUCCEEDED:
                # A query (or our refund call's slow answer) crossed the FAIL / CLOSED that settled the refund, and
                # the channel now says the money went back: flagged for a person, as such a notice is. Bug: dropped
                # here as "no longer pending" — the merchant, told it failed, could refund it again.
                refund_flag_settled_success(refund=refund, attempt=attempt, result=result)
            return refund
        state = result.state
        # A flag for an earlier attempt's success, or for an answer with another amount, stays whatever this attempt
        # does: a person must see it.
        held = refund.abnormal and _held_for_review(refund.pk)
        if state == ChannelRefundState.SUCCEEDED:
            refund.succeed()
            _apply_success(order, refund, result=result, abnormal=held)
        elif state in (ChannelRefundState.FAILED, ChannelRefundState.CLOSED):
            refund.fail() if state == ChannelRefundState.FAILED else refund.close()
            # The failed attempt's number, were its failure the first word about it: a retry keeps it for search.
            refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
            refund.failure_code = (result.failure_code or state)[:64]
            refund.failure_message = (result.failure_message or "")[:256]
            refund.sync_state, refund.next_query_at, refund.abnormal = SyncState.OK, None, held
            refund.save()
            _release(order, refund.amount)
            _emit(refund, order, "refund.failed" if state == ChannelRefundState.FAILED else "refund.closed")
        elif state == ChannelRefundState.ABNORMAL:
            # The wallet could not return the money (card closed…): a person handles it with the channel. The
            # channel has answered, so the refund is off the ladder and out of the unknown queue. Its words are kept
            # on the refund (failure_code / failure_message, as a failure's are): the abnormal queue and the trade
            # page show why. Only the channel's first ABNORMAL about this attempt flags it (audited): a person's
            # "Mark handled" has the channel asked again (trades.services.staff.refund_abnormal_resolve), and the
            # same word again is not news — re-flagged on it, the refund came straight back to the queue and could
            # never be cleared. Any other answer (success, failure) still settles it, in the branches above.
            noted = _channel_abnormal_noted(refund)
            if not noted:
                _audit_channel_abnormal(refund, result=result)
                refund.abnormal = True
            refund.failure_code = (result.failure_code or state)[:64]
            refund.failure_message = (result.failure_message or (refund.failure_message if noted else ""))[:256]
            refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
            refund.sync_state, refund.next_query_at = SyncState.OK, None
            if noted and not refund.abnormal:
                # A person marked it handled and chose to keep asking (the flag is only cleared so): its amount is
                # still held and nothing has settled it, so it stays followed — on the ladder counted from their
                # choice (_ladder_start), and back in the abnormal queue, flagged, once that runs out with the
                # channel still saying ABNORMAL. Bug: it was left here off the ladder and out of every queue, pending
                # for ever with the merchant's money held (refundable 0) and nobody following it.
                refund.next_query_at = next_query_at(created_at=_ladder_start(refund), now=timezone.now(),
                                                     barcode=False)
                if refund.next_query_at is None:
                    _audit_channel_abnormal(refund, result=result, again=True)
                    refund.abnormal = True
            refund.save()
        else:  # processing / not found yet: keep asking on the ladder
            refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
            at = next_query_at(created_at=_ladder_start(refund), now=timezone.now(), barcode=False)
            refund.sync_state = SyncState.OK if at else SyncState.MANUAL
            refund.next_query_at = at
            refund.save()
        return refund


def _apply_success(order: Order, refund: Refund, *, result: RefundResult, abnormal: bool) -> None:
    """Record the money gone back for ``refund``, just moved to ``succeeded`` by the caller's transition, both locked
    (refund_lock_with_order) with the amount reserved: its part of the fee snapshot, the order's refunded amount, and
    the merchant's ``refund.succeeded``. The one place a success is applied — the channel's answer
    (refund_apply_result) and a person's "record as refunded" on the channel's word (refund_record_channel_success),
    from ``failed`` or ``closed``."""
    refund.channel_refund_no = result.channel_refund_no or refund.channel_refund_no
    refund.succeeded_at = result.succeeded_at or timezone.now()
    refund.sync_state, refund.next_query_at, refund.abnormal = SyncState.OK, None, abnormal
    back = fees_for_refund(snapshot=fee_snapshot_of(order), paid=order.amount, refund=refund.amount,
                           already_refunded=order.refunded_amount)
    refund.merchant_fee_refunded, refund.channel_cost_refunded, refund.rebate_refunded = (
        back.merchant_fee, back.channel_cost, back.rebate)
    refund.save()
    order.refunded_amount += refund.amount
    order.refund_state = RefundState.FULL if order.refunded_amount == order.amount else RefundState.PARTIAL
    order.save(update_fields=["refunded_amount", "refund_state", "updated_at"])
    _emit(refund, order, "refund.succeeded")


def refund_flag_settled_success(*, refund: Refund, attempt: int, result: RefundResult) -> bool:
    """The channel says the refund's current attempt, which it had failed or closed, returned the money after all
    (bank.md §7.3: a failed refund is "refundable again", so the channel's word is not final for the money; a notice
    can overtake the answer it contradicts, and a query in flight — no lock is held across it, design §5 rule 7 —
    can cross the notice that failed the refund). Called under the refund's lock (refund_lock_with_order), from a
    callback (trades.services.callbacks) and from refund_apply_result (a query's or a call's answer). The success
    is never dropped: the payer has the money while the merchant was told the refund failed, its amount was released
    and may be refunded again — a possible double refund. As for an earlier attempt's success
    (``_apply_earlier_attempt``), the refund keeps its state and is flagged abnormal for a person (the abnormal
    queue), with an audit row on the trade timeline (the same action, so the refund's retry is held until a person
    marks it handled: refund_create, _held_for_review). Returns False, changing nothing, when this attempt's success
    was flagged already (a copy of the word, or the notice after the query)."""
    if refund_earlier_success_noted(refund_id=refund.pk, attempt=attempt):
        return False
    _audit_channel_success(refund, attempt=attempt, result=result, reason=(
        f"The channel says attempt {attempt} ({result.out_refund_no}) returned the money after all, but the refund is "
        f"recorded {refund.state} and its amount released: the merchant may refund it again (a possible double "
        f"refund). Check with the channel and settle it with the merchant."))
    refund.abnormal = True
    # The channel's number of the refund that went back: support searches by it (trades.workbench.search_orders).
    refund.channel_refund_no = refund.channel_refund_no or result.channel_refund_no
    refund.save(update_fields=["abnormal", "channel_refund_no", "updated_at"])
    logger.warning("refund %s: the channel says attempt %s succeeded, recorded %s here; flagged abnormal", refund.pk,
                   attempt, refund.state)
    return True


def _audit_channel_success(refund: Refund, *, attempt: int, result: RefundResult, reason: str) -> None:
    """The audit row of a success the channel reports for an attempt the refund's state does not reflect (an earlier
    attempt, or the current one after it failed): the action that holds the refund's retry for a person
    (_held_for_review), with both attempts' numbers for support to check with the channel."""
    audit_log(actor=f"channel:{refund.order.channel_account.code}", action=EARLIER_ATTEMPT_SUCCEEDED, target=refund,
              reason=reason,
              data={"attempt": attempt, "channel_no": result.out_refund_no, "current_attempt": refund.channel_attempt,
                    "current_channel_no": channel_refund_no(refund), "state": refund.state, "amount": refund.amount,
                    "channel_refund_no": result.channel_refund_no,
                    "succeeded_at": result.succeeded_at.isoformat() if result.succeeded_at else ""})


def _channel_abnormal_noted(refund: Refund) -> bool:
    """Whether the channel has already called the refund's current attempt ABNORMAL (its CHANNEL_ABNORMAL row): the
    refund is flagged for it, or a person has since marked it handled."""
    return AuditLog.objects.filter(action=CHANNEL_ABNORMAL, target_type="trades.refund", target_id=refund.pk,
                                   data__attempt=refund.channel_attempt).exists()


def _audit_channel_abnormal(refund: Refund, *, result: RefundResult, again: bool = False) -> None:
    """The audit row of the channel's first ABNORMAL about an attempt, with its reason, on the trade timeline; or,
    ``again``, of the same word still given when the ladder of asking a person chose ran out (the refund is flagged
    for a person once more)."""
    said = result.failure_message or result.failure_code or "no reason given"
    if again:
        reason = (f"The channel still could not return the money of refund {result.out_refund_no} ({said}) when the "
                  f"ladder of asking it again ran out: its amount stays held. Back to the abnormal refunds for a "
                  f"person: close the refund if the money did not go back through the channel, or keep asking.")
    else:
        reason = (f"The channel could not return the money of refund {result.out_refund_no} ({said}): its amount "
                  f"stays held. Settle it with the channel, then mark it handled.")
    audit_log(actor=f"channel:{refund.order.channel_account.code}", action=CHANNEL_ABNORMAL, target=refund,
              reason=reason,
              data={"attempt": refund.channel_attempt, "channel_no": result.out_refund_no,
                    "channel_refund_no": result.channel_refund_no, "failure_code": result.failure_code,
                    "failure_message": result.failure_message, "amount": refund.amount,
                    **({"again": True} if again else {})})


# --- a pending refund the channel could not return, closed by a person ----------------------------------------------
def refund_channel_said_abnormal(refunds, *, rows=None) -> set[str]:
    """The ids of those of ``refunds`` whose current attempt the channel has called ABNORMAL (their CHANNEL_ABNORMAL
    rows): what "close the refund" (refund_close_by_hand) needs, for the pages that offer it. ``rows``: audit rows
    the caller already read (the trade timeline's), searched instead of the one query made without them."""
    attempts = {refund.pk: refund.channel_attempt for refund in refunds}
    if not attempts:
        return set()
    if rows is None:
        said = AuditLog.objects.filter(action=CHANNEL_ABNORMAL, target_type="trades.refund",
                                       target_id__in=list(attempts)).values_list("target_id", "data")
    else:
        said = [(row.target_id, row.data) for row in rows
                if row.action == CHANNEL_ABNORMAL and row.target_type == "trades.refund"]
    return {pk for pk, data in said if isinstance(data, dict) and data.get("attempt") == attempts.get(pk)}


def refund_close_by_hand(*, refund_id: str, actor, note: str) -> Refund:
    """Close a pending refund the channel said it could not return (ABNORMAL about its current attempt: the payer's
    account could not take the money back), once a person has settled with the channel that the money did not go
    back through it — support's "Mark handled" with that outcome (trades.services.staff.refund_abnormal_resolve, which
    checks the permission and the note). Without it a handled abnormal refund stayed pending for ever, its amount
    held (the merchant's refundable 0) and nobody following it.

    Under the order's and the refund's locks (refund_lock_with_order), re-checked: still pending, still an attempt
    the channel called ABNORMAL (a refund it has said nothing final about may still be returning the money: only its
    own answer settles that), and not held because it reported an earlier attempt's success or another amount
    (HELD_FOR_REVIEW: the money may have gone back). The refund moves ``pending → closed`` (``close_by_hand``) and
    ends as a refund the channel closed does (refund_apply_result): off the ladder, its amount released so the order
    is refundable again, the merchant told ``refund.closed`` — and audited with the person's note, in the same
    transaction. Should the channel later say the money went back after all, that success is still recorded:
    refund_flag_settled_success flags the closed refund for "record as refunded". Raises InvalidState saying why
    nothing changed."""
    with transaction.atomic():
        if not Refund.objects.filter(pk=refund_id).exists():
            raise NotFound(f"no refund {refund_id}", param="refund_id")
        order, refund = refund_lock_with_order(refund_id=refund_id)
        if refund.state != "pending":
            raise InvalidState(f"refund {refund.pk} {state_words(refund.state)}: only a pending refund can be closed "
                               f"by hand", param="refund_id")
        if not _channel_abnormal_noted(refund):
            raise InvalidState(f"the channel has not said it could not return refund {channel_refund_no(refund)}: "
                               f"it may still be returning the money, and only its answer settles that — keep "
                               f"asking it", param="outcome")
        if _held_for_review(refund.pk):
            raise InvalidState(f"refund {refund.pk} is held for review: the channel reported an earlier attempt as "
                               f"succeeded, or another amount — the money may have gone back; settle it with the "
                               f"channel and the merchant, and keep asking", param="outcome")
        was_flagged = refund.abnormal
        refund.close_by_hand()
        refund.sync_state, refund.next_query_at, refund.abnormal = SyncState.OK, None, False
        refund.save()
        _release(order, refund.amount)
        _emit(refund, order, "refund.closed")
        audit_log(actor=actor, action=CLOSED_BY_HAND, target=refund, reason=note, data={
            "order": order.pk, "amount": refund.amount, "from": "pending", "to": refund.state,
            "channel_no": channel_refund_no(refund), "channel_refund_no": refund.channel_refund_no,
            "failure_code": refund.failure_code, "failure_message": refund.failure_message,
            "flagged": was_flagged, "refundable": order.refundable_amount})
    logger.warning("refund %s: closed by hand (the channel could not return it), %s fen released, by %s", refund.pk,
                   refund.amount, actor)
    return refund


def _held_for_review(refund_id: str) -> bool:
    """Whether the refund was flagged for a person (HELD_FOR_REVIEW) since a person last marked it handled."""
    rows = AuditLog.objects.filter(target_type="trades.refund", target_id=refund_id)
    handled = rows.filter(action=ABNORMAL_RESOLVED).order_by("-pk").values_list("pk", flat=True).first()
    flagged = rows.filter(action__in=HELD_FOR_REVIEW)
    return (flagged.filter(pk__gt=handled) if handled else flagged).exists()


def _hold_for_amount(refund_id: str, *, result: RefundResult, mismatch: RefundAmountMismatch, verb: str) -> Refund:
    """The channel's answer to our refund call or query names another amount than the refund's. Something is wrong
    at one end (a bug, a mix-up of numbers, a tampered answer): no money moves on it. The refund keeps its state and
    its reservation, leaves the query ladder (asking again would only repeat the answer every minute) and goes to
    the abnormal queue, with an audit row on the trade timeline saying what the channel said."""
    with transaction.atomic():
        refund = (Refund.objects.select_for_update(of=("self",), no_key=True)
                  .select_related("order__channel_account").get(pk=refund_id))
        message = (f"the channel reported refund amount {mismatch.reported} fen for {result.out_refund_no} "
                   f"({result.state}); ours is {mismatch.ours} fen: held for a person")
        noted = AuditLog.objects.filter(action=AMOUNT_MISMATCH, target_type="trades.refund", target_id=refund.pk,
                                        data__channel_no=result.out_refund_no, data__reported=mismatch.reported,
                                        data__state=result.state).exists()
        if not (noted and refund.abnormal):  # once per answer while flagged; again if it comes back after handling
            audit_log(actor=f"channel:{refund.order.channel_account.code}", action=AMOUNT_MISMATCH, target=refund,
                      reason=(f"The channel's answer to our {verb} says {message}. Nothing was changed: check the "
                              f"refund with the channel and settle it by hand."),
                      data={"verb": verb, "channel_no": result.out_refund_no, "state": result.state,
                            "reported": mismatch.reported, "amount": mismatch.ours,
                            "channel_refund_no": result.channel_refund_no, "refund_state": refund.state})
            logger.warning("refund %s: %s; flagged abnormal", refund.pk, message)
        refund.abnormal = True
        if refund.state == "pending":
            refund.failure_code, refund.failure_message = "amount_mismatch", message[:256]
            refund.sync_state, refund.next_query_at = SyncState.OK, None
        refund.save()
        return refund


def _apply_earlier_attempt(refund: Refund, *, attempt: int, result: RefundResult) -> Refund:
    """An answer about an earlier attempt than the refund's current one: a re-delivered callback, or a slow answer.

    Its failed / closed / processing / abnormal changes nothing: that attempt was settled before the retry, and the
    current attempt's own answer decides the refund (the caller records the answer: callback row, channel call).
    Its success is never dropped: the money went back for that attempt, and the current one may return it again (or
    has been recorded failed, so its amount was released and the merchant may refund again). The refund is flagged
    abnormal for a person, with an audit row on the trade timeline saying what happened; its state is left as is.
    """
    if result.state != ChannelRefundState.SUCCEEDED or refund_earlier_success_noted(refund_id=refund.pk,
                                                                                     attempt=attempt):
        logger.info("refund %s: %s answer about attempt %s ignored (current attempt %s)", refund.pk, result.state,
                    attempt, refund.channel_attempt)
        return refund
    _audit_channel_success(refund, attempt=attempt, result=result, reason=(
        f"The channel says attempt {attempt} ({result.out_refund_no}) returned the money, but the refund was retried "
        f"as attempt {refund.channel_attempt} ({channel_refund_no(refund)}), now {refund.state}: a possible double "
        f"refund. Check both numbers with the channel and settle it with the merchant."))
    # The number the channel's bill shows for that refund: support searches by it (trades.workbench.search_orders).
    EarlierRefundNumber.keep(order_id=refund.order_id, refund_id=refund.pk, attempt=attempt,
                             channel_refund_no=result.channel_refund_no)
    refund.abnormal = True
    refund.save(update_fields=["abnormal", "updated_at"])
    logger.warning("refund %s: attempt %s succeeded at the channel while attempt %s is %s; flagged abnormal",
                   refund.pk, attempt, refund.channel_attempt, refund.state)
    return refund


# --- a flagged failed or closed refund the channel says it returned: recorded on the channel's answer ---------------
# Support's "Ask the channel and record as refunded" (trades.services.staff.refund_abnormal_record_refunded) on a
# refund recorded failed or closed whose money the channel later said went back (refund_flag_settled_success,
# _apply_earlier_attempt): without it that money never reached the order, its fees, the merchant's events or the
# statement. A person's word alone moves no money (design §5 rules 2 and 4): the channel is asked again, and only its
# own answer of success records the refund. Closed is settled as failed is: bank.md §7.3 calls both "refundable
# again" (the amount was released, refund_apply_result), and either may be contradicted by a later answer.
CHANNEL_SUCCESS_RECORDED = "trades.refund.channel_success_recorded"
# The same press, when the channel's answer (or the order) refused it: the channel's words and the person's note.
CHANNEL_SUCCESS_NOT_RECORDED = "trades.refund.channel_success_not_recorded"
# The states "record as refunded" starts from: the channel's final word that the money stayed with the merchant.
RECORDABLE_STATES = ("failed", "closed")


class RefundSuccessNotRecorded(InvalidState):
    """"Record as refunded" changed nothing (the refund stays failed or closed, and flagged). ``outcome``: ``settled``
    (no longer a flagged failed or closed refund — a second press), ``double`` (two attempts returned the money),
    ``unknown`` (the channel did not answer, or is still processing), ``not_refunded`` (it says the money did not go
    back), ``mismatch`` (its answer names another refund or amount), ``no_room`` (other refunds now hold what the
    order paid)."""

    def __init__(self, message: str, *, outcome: str):
        super().__init__(message, param="refund_id")
        self.outcome = outcome


def refund_can_record_channel_success(refund: Refund) -> bool:
    """Whether "record as refunded" applies: a failed or closed refund flagged for a person."""
    return refund.state in RECORDABLE_STATES and refund.abnormal


def refund_record_channel_success(*, refund_id: str, actor, note: str) -> Refund:
    """Ask the channel about the attempt of a flagged failed or closed refund it said returned the money, and on its
    answer of success record the refund succeeded as its own answer would have (``_apply_success``: the order's
    refunded amount, the fee snapshot's part, ``refund.succeeded`` after the ``refund.failed`` or ``refund.closed``
    the merchant had — the event sequence orders them), the flag cleared, audited with the person's ``note``. No lock
    is held while the channel answers (rule 7); then, under the order's and the refund's locks, it is checked again
    that the refund is still a flagged failed or closed one and still fits in what the order paid: its amount was
    released when it failed or closed, and another refund may have taken that room since. Anything else changes
    nothing and raises RefundSuccessNotRecorded; what the channel said, or why it was refused, is audited (except
    ``settled`` / ``double``, where nothing was asked) and its call is on the trade timeline."""
    refund = (Refund.objects.select_related("order__channel_account", "order__contract").filter(pk=refund_id)
              .first())
    if refund is None:
        raise NotFound(f"no refund {refund_id}", param="refund_id")
    _check_recordable(refund)
    attempt = _attempt_said_succeeded(refund)
    asked = _refund_no_at(refund.pk, attempt)
    started = time.perf_counter()
    try:
        adapter = refund.order.channel_account.adapter()
        with recording_exchanges() as sent:
            result = adapter.query_refund(trade=_trade_ref(refund.order), out_refund_no=asked)
    except ChannelError as exc:  # a timeout is unknown, never "not refunded"; an error tells nothing either
        unknown = isinstance(exc, ChannelUnknown)
        with transaction.atomic():
            _record(refund, "query_refund", "unknown" if unknown else "error", started, error=exc, sent=sent)
        what = "did not answer about" if unknown else "answered with an error about"
        _not_recorded(refund, actor=actor, note=note, outcome="unknown", asked=asked, said=exc.message, message=(
            f"The channel {what} refund {asked} ({exc.message}): nothing was changed. Ask again later; the refund "
            f"stays {refund.state} and flagged."))
    with transaction.atomic():
        _record(refund, "query_refund", result.state, started, result=result, sent=sent)
    _check_answer(refund, actor=actor, note=note, asked=asked, result=result)
    with transaction.atomic():
        order, refund = refund_lock_with_order(refund_id=refund.pk)
        _check_recordable(refund)
        conflict = _no_room(order, refund)
        if conflict is None:
            # Released when it failed or closed (refund_apply_result); it holds it again.
            _reserve(order, refund.amount)
            was = refund.state
            if was == "closed":
                refund.succeed_after_close()
            else:
                refund.succeed_after_failure()
            _apply_success(order, refund, result=result, abnormal=False)
            audit_log(actor=actor, action=CHANNEL_SUCCESS_RECORDED, target=refund, reason=note, data={
                "order": order.pk, "amount": refund.amount, "was": was, "attempt": attempt, "channel_no": asked,
                "channel_refund_no": refund.channel_refund_no, "succeeded_at": refund.succeeded_at.isoformat(),
                "merchant_fee_refunded": refund.merchant_fee_refunded, "refunded_amount": order.refunded_amount})
            logger.warning("refund %s: recorded succeeded (was %s) on the channel's answer about %s (by %s)",
                           refund.pk, was, asked, actor)
            return refund
    _not_recorded(refund, actor=actor, note=note, outcome="no_room", asked=asked, said=result.state, message=conflict)


def _check_recordable(refund: Refund) -> None:
    if not refund_can_record_channel_success(refund):
        flag = "flagged" if refund.abnormal else "not flagged"
        raise RefundSuccessNotRecorded(
            f"refund {refund.pk} {state_words(refund.state)} and is {flag}: only a failed or closed refund flagged for a person "
            f"can be recorded as refunded (already recorded or handled?)", outcome="settled")


def _attempt_said_succeeded(refund: Refund) -> int:
    """The attempt the channel said returned the money, flagged since a person last marked the refund handled (the
    flag's audit rows, _audit_channel_success); the current attempt when the flag is for something else (an answer
    naming another amount): the channel's answer is what decides, whichever attempt it is asked about."""
    rows = AuditLog.objects.filter(target_type="trades.refund", target_id=refund.pk)
    handled = rows.filter(action=ABNORMAL_RESOLVED).order_by("-pk").values_list("pk", flat=True).first()
    said = rows.filter(action=EARLIER_ATTEMPT_SUCCEEDED, **({"pk__gt": handled} if handled else {}))
    attempts = sorted({row["attempt"] for row in said.values_list("data", flat=True)
                       if isinstance(row, dict) and isinstance(row.get("attempt"), int)})
    if len(attempts) > 1:
        numbers = " and ".join(_refund_no_at(refund.pk, a) for a in attempts)
        raise RefundSuccessNotRecorded(
            f"the channel said {numbers} each returned the money: a double refund, which cannot be recorded as one "
            f"refund. Settle it with the channel and the merchant, then mark it handled.", outcome="double")
    return attempts[0] if attempts else refund.channel_attempt


def _check_answer(refund: Refund, *, actor, note: str, asked: str, result: RefundResult) -> None:
    """Only the channel's own success, about the attempt asked and for our amount, records the refund."""
    words = f"{result.state}{f' ({result.failure_message})' if result.failure_message else ''}"
    if result.state == ChannelRefundState.SUCCEEDED:
        if result.out_refund_no and result.out_refund_no != asked:
            _not_recorded(refund, actor=actor, note=note, outcome="mismatch", asked=asked, said=result.state,
                          message=f"The channel answered about refund {result.out_refund_no}, not {asked}: nothing "
                                  f"was changed; the refund stays flagged for a person.")
        if result.amount is not None and result.amount != refund.amount:
            _not_recorded(refund, actor=actor, note=note, outcome="mismatch", asked=asked, said=result.state,
                          message=f"The channel says refund {asked} returned {result.amount} fen; ours is "
                                  f"{refund.amount} fen: nothing was changed; settle it with the channel by hand.")
        return
    if result.state in (ChannelRefundState.PROCESSING, ChannelRefundState.NOT_FOUND):
        _not_recorded(refund, actor=actor, note=note, outcome="unknown", asked=asked, said=result.state,
                      message=f"The channel gave no final answer about refund {asked} (it says {words}): nothing was "
                              f"changed. Ask again later; the refund stays {refund.state} and flagged.")
    _not_recorded(refund, actor=actor, note=note, outcome="not_refunded", asked=asked, said=result.state,
                  message=f"The channel says refund {asked} did not return the money (it says {words}): nothing was "
                          f"changed; the refund stays {refund.state} and flagged for a person.")


def _no_room(order: Order, refund: Refund) -> str | None:
    """Why the refund no longer fits in the order (under both locks), or None. Its amount was released when it
    failed or closed (design §5 rule 6: refunds never exceed the paid amount), so what other refunds hold now
    decides."""
    if order.state != OrderState.SUCCEEDED or order.reverse_requested_at is not None:
        why = "a reverse of it is under way" if order.reverse_requested_at is not None else f"it {state_words(order.state)}"
        return (f"Order {order.pk} cannot take refund {refund.pk} back: {why}. Nothing was changed; the refund stays "
                f"flagged — the money may have gone back twice: settle it with the merchant.")
    if order.refund_reserved + refund.amount <= order.amount:
        return None
    others = order.refunds.exclude(pk=refund.pk).exclude(state__in=("failed", "closed")).order_by("created_at")
    holding = ", ".join(f"{other.out_refund_no} ({other.amount} fen, {other.state})" for other in others)
    return (f"Refund {refund.pk} ({refund.amount} fen) no longer fits in order {order.pk}: other refunds hold "
            f"{order.refund_reserved} of the {order.amount} fen paid ({holding or 'a reverse'}), so only "
            f"{order.amount - order.refund_reserved} fen is left. Nothing was changed: the refund stays flagged — "
            f"should those succeed too, the payer has more back than was paid: settle it with the merchant.")


def _not_recorded(refund: Refund, *, actor, note: str, outcome: str, asked: str, said: str, message: str) -> NoReturn:
    with transaction.atomic():
        audit_log(actor=actor, action=CHANNEL_SUCCESS_NOT_RECORDED, target=refund, reason=note,
                  data={"outcome": outcome, "channel_no": asked, "channel_said": said, "message": message})
    raise RefundSuccessNotRecorded(message, outcome=outcome)


def _emit(refund: Refund, order: Order, event_type: str) -> None:
    event_emit(merchant=order.merchant, type=event_type, obj_type="refund", obj_id=refund.pk,
               data=refund_as_api(refund), app=order.app, notify_url=refund.notify_url or order.notify_url or None)


def refund_get(*, merchant, out_refund_no: str) -> Refund:
    refund = Refund.objects.select_related("order").filter(merchant=merchant, out_refund_no=out_refund_no).first()
    if refund is None:
        raise NotFound(f"no refund {out_refund_no}", param="out_refund_no")
    return refund


def refunds_due_for_query(*, limit: int = 500) -> list[str]:
    # An abnormal refund is left off the ladder when the channel says so (next_query_at cleared); one flagged for an
    # earlier attempt's success keeps being asked about its current attempt, so a person sees how that ended too.
    return list(Refund.objects.filter(state="pending", next_query_at__lte=timezone.now())
                .order_by("next_query_at").values_list("pk", flat=True)[:limit])


def refund_for_channel_no(*, account_id: int, channel_no: str) -> Refund | None:
    """The refund a channel refund number (of any attempt) belongs to; which attempt: ``refund_attempt_of``."""
    split = _split_channel_no(channel_no)
    if split is None:
        return None
    return Refund.objects.filter(pk=split[0], order__channel_account_id=account_id).first()


__all__ = ["can_proceed", "refund_create", "refund_get", "refund_sync", "refunds_due_for_query"]

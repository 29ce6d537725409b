"""Late payments (design §5 rule 3): the payer paid after we closed the order. The money is returned through the
channel's refund under a reserved out_refund_no (``late_<order id>``; a retry after a failure under a new one, see
``late_refund_no``), so it is idempotent at the channel like any other refund, and a late payment is never lost:

* ``open``: nobody has returned the money yet — a person's (the late-payment queue), or the automatic refund's;
* ``refunding``: the channel was (or is about to be) asked; it stays here until the channel says how it ended. A
  refund the channel accepted but has not finished (``processing``), an unanswered call, or a process that died
  between recording the intent and asking the channel are all followed by the sweeper (``late_payments_refunding``
  → ``late_payment_refund_sync``, from trades.tasks_orders.sync_due_orders), on a ladder counted from its last
  channel call;
* ``resolved``: when the channel says the money went back (``succeeded``), or when a person settled it outside
  aggpay and says how (``late_payment_resolve_by_hand``: refunded by the channel's own back office, or kept by the
  merchant who delivered the goods) — only from ``open``, so never while the channel may still be refunding it.

A definite "no" from the channel (the refund failed, was closed, or the wallet could not take the money back —
``abnormal``) reopens it for a person, with the channel's words on it.

Dated like any money movement (the statement and the fee report: trades.services.statements, .finance): ``paid_at``
is the channel's payment time from the late success; ``refunded_at`` when the money went back — the channel's
success time of the refund (or of an earlier attempt it reports succeeded), or when a person says the channel's own
back office refunded it. It stays empty while the money is with the merchant: a refund not done yet, or one a person
settled as kept by the merchant.

``state`` is protected: it moves only through LatePayment's transitions (trades.models.orders), called here under
the row's lock — ``refund_start`` (open → refunding), ``refund_succeeded`` (refunding or open → resolved),
``refund_refused`` (refunding → open), ``refund_never_received`` and ``refund_held`` (refunding → open, flagged
only: the attempt never reached the channel; the channel's answer names another amount),
``settle_by_hand`` (open → resolved) and ``settle_flagged_by_hand`` (resolved, flagged → resolved).

Attempts (as for a merchant's refund, trades.services.refunds): a channel keeps an out_refund_no it failed failed
(channel-protocols.md A.10; docs/channels/bank.md §7.1), so each refund asked for after a "no" is a new attempt under
a new number (``refund_attempts`` counts them). Only an answer about the current attempt moves the late payment; one
about an earlier attempt (a re-delivered notice, a slow answer) changes nothing — unless it says that attempt
succeeded: the money went back then, and the retry may return it again, so the late payment is flagged ``abnormal``
for a person (an audit row on the trade timeline; no further attempt is sent while it is flagged), whatever its state.
One flagged while ``refunding`` whose current attempt the channel says it never received is therefore not sent
again — and not asked about for ever either: it goes back to ``open``, still flagged, for a person to settle by hand
(``_unsent_to_a_person``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import operator
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import AuditNote, audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.models import AuditLog
from channels.adapters.base import RefundRequest, RefundResult
from channels.adapters.base import RefundState as ChannelRefundState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.http import Exchange, recording_exchanges
from channels.callbacks import callback_url
from trades.models import ChannelCall, EarlierRefundNumber, LatePayment
from trades.services.channel_calls import call_fields
from trades.services.ladder import EARLY_SPAN, EARLY_STEP, FIRST, LATE_SPAN, LATE_STEP
from trades.services.orders import _trade_ref

logger = logging.getLogger(__name__)

LATE_PREFIX = "late_"  # every out_refund_no of a late payment's refund starts so (late_refund_no)
ORDER_ID_PREFIX = "ord_"  # our order ids (trades.models.orders.new_order_id)
CALL_PREFIX = "late_"  # the ChannelCall verbs of a late payment's refund: late_refund, late_query_refund
OPEN, REFUNDING, RESOLVED = "open", "refunding", "resolved"
AUDIT_ACTION = "trades.late_payment.refund"
# The audit action written when the channel says an earlier refund attempt succeeded (see _apply_earlier_attempt).
EARLIER_ATTEMPT_SUCCEEDED = "trades.late_payment.earlier_attempt_succeeded"
# How a person settled a late payment outside aggpay ("Settled by hand"), as the resolution and the audit row say it.
BY_HAND_OUTCOMES = {
    "refunded_outside": "refunded outside aggpay",  # e.g. the channel's own back office returned the money
    "kept_by_merchant": "kept by the merchant",  # the merchant kept the sale and delivered the goods
}
# What the channel's word on the refund makes of the late payment.
_NEXT_STATE = {
    ChannelRefundState.SUCCEEDED: RESOLVED,
    ChannelRefundState.PROCESSING: REFUNDING,
    ChannelRefundState.FAILED: OPEN,
    ChannelRefundState.CLOSED: OPEN,
    ChannelRefundState.ABNORMAL: OPEN,
}


def late_refund_no(order_id: str, attempt: int = 0) -> str:
    """The out_refund_no of refund attempt ``attempt`` (0: the first) of the late payment on ``order_id``. The first
    keeps ``late_<order id>``, the number used before attempts were counted. Later ones must fit the channels' 32
    characters too (docs/channels/bank.md §2: 6–32 of [0-9A-Za-z_-]), which ``late_<order id>_<n>`` (33+) does not:
    they drop the order id's ``ord_`` — ``late_<22 characters of the order id>_<n>``, at most 32 up to n = 9999."""
    if attempt == 0:
        return f"{LATE_PREFIX}{order_id}"
    return f"{LATE_PREFIX}{order_id.removeprefix(ORDER_ID_PREFIX)}_{attempt}"


def late_refund_no_split(number: str) -> tuple[str, int] | None:
    """(order id, attempt) of a number ``late_refund_no`` gave, else None. The first attempt's is told apart by the
    ``ord_`` after ``late_``: the rest of an order id is base62, so a later attempt's number never has it there."""
    if not number or not number.startswith(LATE_PREFIX):
        return None
    rest = number[len(LATE_PREFIX):]
    core, _, tail = rest.rpartition("_")
    if not rest.startswith(ORDER_ID_PREFIX) and core and tail.isascii() and tail.isdigit():
        order_id, attempt = ORDER_ID_PREFIX + core, int(tail)
        if attempt >= 1 and late_refund_no(order_id, attempt) == number:
            return order_id, attempt
    return (rest, 0) if rest else None


def late_payment_attempt(late: LatePayment) -> int:
    """The late payment's current refund attempt: the last one asked for (0 while none has been)."""
    return max(late.refund_attempts - 1, 0)


def late_payment_refund_no(late: LatePayment) -> str:
    """The out_refund_no of the late payment's current refund attempt."""
    return late_refund_no(late.order_id, late_payment_attempt(late))


def late_attempt_of(late: LatePayment, number: str) -> int:
    """Which refund attempt of ``late`` a channel answer is about, from the number it names. A number that is not one
    of this late payment's, or of an attempt not asked for yet, is refused (ValueError)."""
    split = late_refund_no_split(number or "")
    if split is None or split[0] != late.order_id or split[1] > late_payment_attempt(late):
        raise ValueError(f"the channel's answer names refund number {number or '(none)'}; the late payment on "
                         f"{late.order_id} is at attempt {late_payment_attempt(late)} ({late_payment_refund_no(late)})")
    return split[1]


def late_earlier_success_noted(*, order_id: str, attempt: int | None = None) -> bool:
    """Whether the channel has said an earlier refund attempt (``attempt``, or any) of this late payment succeeded."""
    rows = AuditLog.objects.filter(action=EARLIER_ATTEMPT_SUCCEEDED, target_type="trades.order", target_id=order_id)
    return rows.filter(data__attempt=attempt).exists() if attempt is not None else rows.exists()


def late_payment_refund(*, late_payment_id: int, actor=None, audit: AuditNote | None = None) -> LatePayment:
    """Return a late payment's money at the channel, in full. ``open``: the intent (``refunding``, a new attempt
    under its own number) is recorded first, then the channel is asked (design §5 rule 7). ``refunding`` (a call
    that went unanswered, or a process that died before asking): the channel is asked what became of the current
    attempt first (``late_payment_refund_sync``), and asked to refund only if it has none. ``resolved``: nothing to
    do. Refused (InvalidState) for one flagged ``abnormal``: an earlier attempt returned the money, another could
    return it twice. ``audit`` (a staff action): written in the transaction that records the intent."""
    with transaction.atomic():
        late = _locked(late_payment_id)
        before = late.state
        if before == OPEN:
            if late.abnormal:
                raise InvalidState(f"the late payment on {late.order_id} is held for a person: the channel reported "
                                   f"an earlier refund attempt as succeeded; settle it by hand")
            # Open again after a definite "no" (or never refunded): the channel keeps a failed number failed, so
            # this is a new attempt under a new number (late_refund_no). The channel's number of the attempt before
            # is replaced by the new attempt's answer: kept where support searches (trades.workbench.search_orders).
            EarlierRefundNumber.keep(order_id=late.order_id, refund_id=None, attempt=late_payment_attempt(late),
                                     channel_refund_no=late.channel_refund_no)
            late.refund_start()
            late.save(update_fields=["state", "refund_attempts"])
        if audit is not None:
            audit.write(late.order, late_payment=late.pk, state=before, out_refund_no=late_payment_refund_no(late))
    if before == RESOLVED:
        return late
    if before == REFUNDING:
        return late_payment_refund_sync(late_payment_id=late.pk, actor=actor)
    return _send(late, actor=actor)


def late_payment_refund_sync(*, late_payment_id: int, actor=None) -> LatePayment:
    """Ask the channel what became of a ``refunding`` late payment's current refund attempt and apply the answer. A
    refund the channel has never heard of (the process died between recording the intent and asking) is sent now,
    with the same number: were the first call still in flight, the channel answers both with the one refund — unless
    the late payment is flagged ``abnormal``: then it goes to a person instead (``_unsent_to_a_person``)."""
    late = LatePayment.objects.select_related("order__channel_account", "order__contract").get(pk=late_payment_id)
    if late.state != REFUNDING:
        return late
    order, number = late.order, late_payment_refund_no(late)
    started = time.perf_counter()
    try:
        with recording_exchanges() as sent:
            result = order.channel_account.adapter().query_refund(trade=_ref(late), out_refund_no=number)
    except ChannelError as exc:
        # Unknown, or a refusal to answer the query: nothing is known about the money; asked again next sweep.
        with transaction.atomic():
            _record(late, "query_refund", "unknown" if isinstance(exc, ChannelUnknown) else "error", started,
                    error=exc, sent=sent)
        logger.warning("late payment %s: the refund query got no answer (%s); asked again later", late.pk, exc)
        return late
    with transaction.atomic():
        _record(late, "query_refund", result.state, started, result=result, sent=sent)
    if result.state == ChannelRefundState.NOT_FOUND:
        again = _may_send_again(late.pk, asked=number)
        return _send(again, actor=actor) if again is not None else _unsent_to_a_person(late.pk, asked=number,
                                                                                      actor=actor)
    return late_payment_apply_refund_result(late_payment_id=late.pk, result=_naming(result, number), actor=actor,
                                            source="query")[0]


def late_payment_apply_refund_result(*, late_payment_id: int, result: RefundResult, actor=None,
                                     source: str = "") -> tuple[LatePayment, bool]:
    """Apply the channel's word on a late payment's refund (``source``: its answer to the refund or the query, or a
    callback). Returns (late payment, changed). ``result.out_refund_no`` names the attempt it is about: a number that
    is not one of the late payment's raises ValueError; one about an earlier attempt than the current one changes
    nothing unless it is a success (``_apply_earlier_attempt``).

    About the current attempt: only ``succeeded`` resolves it; ``processing`` keeps it ``refunding`` (the sweeper
    asks again); ``failed`` / ``closed`` / ``abnormal`` reopen it for a person with the channel's reason. Once it is
    open again the attempt has ended, so only its success still counts (the channel changed its mind, or its notice
    overtook its answer to us). A resolved late payment stays resolved: money that went back does not come back.
    Any answer about the current attempt that names the channel's own refund number keeps it (``channel_refund_no``,
    what support searches by), even one that changes nothing else."""
    target = _NEXT_STATE.get(result.state)
    with transaction.atomic():
        late = _locked(late_payment_id)
        attempt = late_attempt_of(late, result.out_refund_no)
        if attempt != late_payment_attempt(late):
            return _apply_earlier_attempt(late, attempt=attempt, result=result)
        if result.amount is not None and result.amount != late.amount and late.state != RESOLVED:
            return _hold_for_amount(late, attempt=attempt, result=result, actor=actor, source=source)
        # The channel's own number of the current attempt, whatever the answer does to the state: support searches
        # by it (trades.workbench.search_orders). Kept by the saves below; saved alone where nothing else changes.
        numbered = bool(result.channel_refund_no) and result.channel_refund_no != late.channel_refund_no
        if numbered:
            late.channel_refund_no = result.channel_refund_no
        if target is None or late.state == RESOLVED:
            return _numbered(late, numbered), False
        # This attempt already said "no": a late processing / failed changes nothing (but the number it names).
        if late.state == OPEN and target != RESOLVED:
            return _numbered(late, numbered), False
        words = " ".join(w for w in (result.failure_code, result.failure_message) if w)
        note = (f"refund {result.state} at the channel"
                f"{f' ({result.channel_refund_no})' if result.channel_refund_no else ''}"
                f"{f' — {words}' if words else ''}{' — needs a person' if target == OPEN else ''}")
        if late.state == target and note in late.resolution:
            return _numbered(late, numbered), False  # the same word again (a re-delivered callback, a second query)
        before = late.state
        if target == RESOLVED:
            late.refund_succeeded()
            _money_back(late, result.succeeded_at)
        elif target == OPEN:
            late.refund_refused()
        # (processing while refunding: it stays refunding, the sweeper asks again; only the note is added)
        late.resolution = _append(late.resolution, note)
        late.save(update_fields=["state", "resolution", "channel_refund_no", "refunded_at"])
        audit_log(actor=actor, action=AUDIT_ACTION, target=late.order,
                  reason=f"needs a person: {note}" if target == OPEN else "",
                  data={"outcome": note, "from": before, "to": target, "channel_state": result.state,
                        "out_refund_no": result.out_refund_no, "attempt": attempt, "amount": late.amount,
                        "source": source})
        if target == OPEN:
            logger.warning("late payment %s: the channel's refund is %s; back to the queue", late.pk, result.state)
        return late, True


def late_payment_resolve_by_hand(*, late_payment_id: int, outcome: str, note: str, audit: AuditNote) -> LatePayment:
    """A person settled an ``open`` late payment outside aggpay (``outcome``: a BY_HAND_OUTCOMES key): it is
    resolved with their note in its resolution, and ``audit`` written in the same transaction. No money moves here.
    Refused while ``refunding`` — the channel may still be returning the money, and settling it by hand would race
    that refund — and once ``resolved``, unless it is flagged ``abnormal`` (an earlier attempt succeeded after a
    retry that succeeded too: the person settles the double refund). Settling clears the flag. The state is
    re-checked under the row's lock."""
    if outcome not in BY_HAND_OUTCOMES:
        raise InvalidRequest("say how the late payment was settled: "
                             + " or ".join(f'"{label}"' for label in BY_HAND_OUTCOMES.values()), param="outcome")
    note = (note or "").strip()
    if not note:
        raise InvalidRequest("a note is required to settle a late payment by hand", param="note")
    with transaction.atomic():
        late = (LatePayment.objects.select_for_update(of=("self",), no_key=True).select_related("order")
                .filter(pk=late_payment_id).first())
        if late is None:
            raise NotFound(f"no late payment {late_payment_id}", param="late_payment_id")
        if late.state == REFUNDING:
            raise InvalidState(f"the late payment on {late.order_id} is being refunded at the channel; wait for its "
                               f"answer (or ask the channel again) before settling it by hand")
        settle = late_payment_settle_transition(late)
        if settle is None:
            raise InvalidState(f"the late payment on {late.order_id} is already {late.state}")
        before, flagged = late.state, late.abnormal
        settle()  # resolved, the flag cleared
        if outcome == "refunded_outside":
            _money_back(late, None)  # the channel's back office returned it; we learn of it now
        late.resolution = _append(late.resolution, f"settled by hand: {BY_HAND_OUTCOMES[outcome]} — {note}")
        late.save(update_fields=["state", "abnormal", "resolution", "refunded_at"])
        audit.write(late.order, late_payment=late.pk, outcome=outcome, amount=late.amount,
                    channel_trade_no=late.channel_trade_no, **{"from": before, "to": RESOLVED},
                    **({"abnormal": True} if flagged else {}))
    return late


def late_payment_settle_transition(late: LatePayment) -> Callable[[], None] | None:
    """The "Settled by hand" transition that applies to ``late`` now, or None: ``settle_by_hand`` for an ``open``
    one (flagged or not), ``settle_flagged_by_hand`` for a ``resolved`` one flagged ``abnormal`` — decided by the
    model's transitions, their sources and conditions (``can_proceed``), never by a copy of them. The one rule
    late_payment_resolve_by_hand, the trade page's form and the late-payment queue (late_payments_settleable) ask."""
    return next((settle for settle in (late.settle_by_hand, late.settle_flagged_by_hand) if can_proceed(settle)),
                None)


def late_payment_can_refund_again(late: LatePayment) -> bool:
    """Whether "Refund to payer" may start a new refund attempt of ``late`` now: the model's ``refund_start``
    (open, not flagged), asked rather than copied."""
    return can_proceed(late.refund_start)


def late_payment_can_settle_by_hand(late: LatePayment) -> bool:
    """Whether a person may settle ``late`` by hand now (late_payment_settle_transition)."""
    return late_payment_settle_transition(late) is not None


def late_payments_settleable() -> Q:
    """late_payment_can_settle_by_hand as a filter, for the late-payment queue (trades.workbench.open_late_payments):
    the rule is asked of every state × flag a late payment can be in — the settling transitions' sources and
    conditions read nothing else (LatePayment._flagged) — and the cases it allows are OR-ed, so the queue lists
    exactly the late payments the trade page and the service would settle."""
    states = [value for value, _ in LatePayment._meta.get_field("state").choices]
    return functools.reduce(operator.or_, (Q(state=state, abnormal=flagged) for state in states
                                           for flagged in (False, True)
                                           if late_payment_can_settle_by_hand(LatePayment(state=state,
                                                                                          abnormal=flagged))),
                            Q(pk__in=[]))


# The sweeper's rescue of a lost automatic refund (late_payments_never_refunded): the enqueue made at commit gets this
# long to start the refund first.
LATE_REFUND_GRACE = dt.timedelta(minutes=1)
# + late payment id: the claim an automatic refund holds while it runs (late_payment_refund_automatically).
LATE_REFUND_CLAIM_PREFIX = "trades:late-auto-refund:"
LATE_REFUND_CLAIM_SECONDS = 600  # longer than any refund call; a worker that died lets go of it after this


def late_payments_never_refunded(*, limit: int = 200) -> list[int]:
    """Late payments whose automatic refund was never started, for the sweeper to enqueue (trades.tasks_orders
    .sync_due_orders): ``open``, never refunded (``refund_attempts`` 0: nobody asked the channel), not flagged, and
    detected more than LATE_REFUND_GRACE ago — when AGGPAY_LATE_PAYMENT_AUTO_REFUND is on (off: they wait for
    support, design §5 rule 3). The refund is enqueued when the success commits (``_late_payment``); a broker that
    is down then only logs it, and the payer's money stayed with us with nothing to send it back (bug). Design §5
    rule 8: a broker outage delays, loses nothing. Those under way (``refunding``) are followed by
    late_payments_refunding; one a person or the channel already moved on (an attempt made, a flag) is theirs."""
    if not getattr(settings, "AGGPAY_LATE_PAYMENT_AUTO_REFUND", True):
        return []
    return list(LatePayment.objects.filter(state="open", refund_attempts=0, abnormal=False,
                                           detected_at__lte=timezone.now() - LATE_REFUND_GRACE)
                .order_by("detected_at", "pk").values_list("pk", flat=True)[:limit])


def late_payment_refund_automatically(*, late_payment_id: int) -> LatePayment:
    """The automatic refund of a late payment (the task enqueued at commit by ``_late_payment``, and by the sweeper
    for one whose enqueue was lost): refund it only if nobody ever has (``open``, ``refund_attempts`` 0, not
    flagged), so any number of enqueues refund once. A second run while the first's refund is under way would
    only ask the channel about the same number (late_payment_refund on ``refunding``: idempotent there); but one
    after the channel refused the first attempt (back to ``open`` for a person) would start another attempt under a
    new number on its own — and should the first succeed after all, return the money twice. Runs are serialised by
    a claim (SET NX, as the rate-limited queries: _claim_query), so the check and late_payment_refund's own locked
    ``refund_start`` cannot be overtaken by a whole other run in between; a run that finds it claimed does
    nothing — the one holding it refunds, or, if it died, the next sweep after the claim lapses."""
    claim = f"{LATE_REFUND_CLAIM_PREFIX}{late_payment_id}"
    if not cache.add(claim, 1, timeout=LATE_REFUND_CLAIM_SECONDS):
        return LatePayment.objects.get(pk=late_payment_id)
    try:
        late = LatePayment.objects.get(pk=late_payment_id)
        if late.state != "open" or late.refund_attempts or late.abnormal:
            return late  # refunded or under way already, or a person's now (the late-payment queue)
        return late_payment_refund(late_payment_id=late_payment_id)
    finally:
        cache.delete(claim)


def late_payments_refunding(*, limit: int = 200) -> list[int]:
    """Late payments whose refund's outcome is not known yet and that are due to be asked about, oldest first: the
    last channel call about the refund is older than ``_step`` (every minute in the first hour, every 10 minutes
    to a day, then hourly — never given up: the money is not back until the channel says so)."""
    now = timezone.now()
    last_call = (ChannelCall.objects.filter(order_id=OuterRef("order_id"), verb__startswith=CALL_PREFIX)
                 .order_by("-created_at").values("created_at")[:1])
    rows = (LatePayment.objects.filter(state=REFUNDING).annotate(last_call=Subquery(last_call))
            .order_by("detected_at", "pk").values_list("pk", "detected_at", "last_call"))
    return [pk for pk, detected, last in rows if last is None or now - last >= _step(now - detected)][:limit]


def _step(age: dt.timedelta) -> dt.timedelta:
    if age < EARLY_SPAN:
        return FIRST
    return EARLY_STEP if age < LATE_SPAN else LATE_STEP


# --- helpers --------------------------------------------------------------------------------------------------
def _locked(late_payment_id: int) -> LatePayment:
    return (LatePayment.objects.select_for_update(of=("self",), no_key=True)
            .select_related("order__channel_account", "order__contract").get(pk=late_payment_id))


def _ref(late: LatePayment):
    # The closed order may not know the channel's trade number; the late payment does (it came with the success).
    return dataclasses.replace(_trade_ref(late.order),
                               channel_trade_no=late.channel_trade_no or late.order.channel_trade_no)


def _may_send_again(late_payment_id: int, *, asked: str) -> LatePayment | None:
    """The late payment, if a refund the channel said it has no ``asked`` for may be sent now: still ``refunding``,
    still at that attempt (no lock was held while the channel answered), and not flagged — one flagged may have
    had its money returned by an earlier attempt (trades.services.refunds._may_send_again)."""
    late = LatePayment.objects.select_related("order__channel_account", "order__contract").get(pk=late_payment_id)
    if late.state == REFUNDING and not late.abnormal and late_payment_refund_no(late) == asked:
        return late
    logger.warning("late payment %s: the channel has no refund %s, and it is not sent again (%s, attempt %s%s)",
                   late.pk, asked, late.state, late_payment_attempt(late), ", flagged" if late.abnormal else "")
    return None


def _unsent_to_a_person(late_payment_id: int, *, asked: str, actor) -> LatePayment:
    """The channel has no refund ``asked``, and _may_send_again did not send it. For a late payment flagged
    ``abnormal`` (an earlier attempt returned the money after all) and still ``refunding`` at that attempt, the attempt
    never reached the channel (lost in front of it, or the process died before asking): nothing is on its way, and
    sending it now could return the money twice. Left ``refunding``, the sweeper would ask about it for ever and
    "Settled by hand" would refuse it (late_payment_resolve_by_hand: the channel may still be refunding). So it goes
    back to ``open``, still flagged — the late-payment queue, where support checks both numbers with the channel and
    settles it by hand with a note; no refund can be sent from there while it is flagged (late_payment_refund).
    Audited like the channel's other answers (AUDIT_ACTION), on the trade timeline. Re-checked under the lock; any
    other late payment is returned as it is."""
    with transaction.atomic():
        late = _locked(late_payment_id)
        if late.state != REFUNDING or not late.abnormal or late_payment_refund_no(late) != asked:
            return late
        attempt = late_payment_attempt(late)
        note = (f"the channel has no refund {asked}: attempt {attempt} never reached it, and it is not sent again "
                f"while an earlier attempt is reported to have returned the money — needs a person")
        late.refund_never_received()
        late.resolution = _append(late.resolution, note)
        late.save(update_fields=["state", "resolution"])
        audit_log(actor=actor, action=AUDIT_ACTION, target=late.order, reason=f"needs a person: {note}",
                  data={"outcome": note, "from": REFUNDING, "to": OPEN, "channel_state": ChannelRefundState.NOT_FOUND,
                        "out_refund_no": asked, "attempt": attempt, "amount": late.amount, "source": "query"})
    logger.warning("late payment %s: flagged, and the channel has no refund %s; back to the queue for a person",
                   late.pk, asked)
    return late


def _hold_for_amount(late: LatePayment, *, attempt: int, result: RefundResult, actor,
                     source: str) -> tuple[LatePayment, bool]:
    """The channel's answer about the current refund attempt names another amount than the late payment's, whose
    refund returns all of it (called under the row's lock). Something is wrong at one end (a bug, a mix-up of
    numbers, a tampered answer), so no money is booked on it (design §5 rule 4) — in particular it never resolves
    the late payment: a success of 1 fen did, leaving the payer short with nobody following the money. As for a
    merchant's refund (trades.services.refunds._hold_for_amount) it goes to a person: flagged ``abnormal`` (no
    further attempt is sent), off the sweeper's list (``refunding`` → ``open``, ``refund_held``), into the
    late-payment queue where support checks with the channel and settles it by hand; audited on the trade timeline.
    The same answer again (the sweeper asks once more) changes nothing. A callback saying so is refused before it
    gets here (trades.services.callbacks)."""
    note = (f"the channel's {result.state} of refund attempt {attempt} ({result.out_refund_no}) names amount "
            f"{result.amount}, not the late payment's {late.amount} — nothing booked on it, needs a person")
    if late.abnormal and note in late.resolution:
        return late, False
    before = late.state
    late.abnormal = True
    if before == REFUNDING:
        late.refund_held()
    late.resolution = _append(late.resolution, note)
    late.save(update_fields=["state", "abnormal", "resolution"])
    audit_log(actor=actor, action=AUDIT_ACTION, target=late.order, reason=f"needs a person: {note}",
              data={"outcome": note, "from": before, "to": late.state, "channel_state": result.state,
                    "out_refund_no": result.out_refund_no, "attempt": attempt, "amount": late.amount,
                    "reported_amount": result.amount, "source": source})
    logger.warning("late payment %s: the channel's answer names amount %s, not %s; held for a person", late.pk,
                   result.amount, late.amount)
    return late, True


def _numbered(late: LatePayment, numbered: bool) -> LatePayment:
    """Save the channel's refund number late_payment_apply_refund_result has just learned (``numbered``), alone."""
    if numbered:
        late.save(update_fields=["channel_refund_no"])
    return late


def _naming(result: RefundResult, asked: str) -> RefundResult:
    """An answer to our own call is about the number we asked about when it names none (some answers do not)."""
    return result if result.out_refund_no else dataclasses.replace(result, out_refund_no=asked)


def _apply_earlier_attempt(late: LatePayment, *, attempt: int, result: RefundResult) -> tuple[LatePayment, bool]:
    """An answer about an earlier refund attempt than the current one (called under the late payment's lock): a
    re-delivered notice, or a slow answer. As for a merchant's refund (trades.services.refunds._apply_earlier_attempt)
    its failed / closed / processing / abnormal changes nothing — that attempt ended before the retry, and the current
    attempt's own answer decides. Its success is never dropped: the money went back for that attempt, and the current
    one may return it again (or was recorded failed while the money had gone back). The late payment is flagged
    ``abnormal`` for a person (the late-payment queue), with an audit row on the trade timeline; its state is left as
    is, and no further attempt is sent while it is flagged (late_payment_refund)."""
    current, number = late_payment_attempt(late), late_payment_refund_no(late)
    if result.state != ChannelRefundState.SUCCEEDED or late_earlier_success_noted(order_id=late.order_id,
                                                                                   attempt=attempt):
        logger.info("late payment %s: %s answer about refund attempt %s ignored (current attempt %s)", late.pk,
                    result.state, attempt, current)
        return late, False
    note = (f"refund attempt {attempt} ({result.out_refund_no}) succeeded at the channel after it was retried as "
            f"attempt {current} ({number}), now {late.state} — a possible double refund, needs a person")
    audit_log(actor=f"channel:{late.order.channel_account.code}", action=EARLIER_ATTEMPT_SUCCEEDED, target=late.order,
              reason=(f"The channel says refund attempt {attempt} ({result.out_refund_no}) of the late payment "
                      f"returned the money, but it was retried as attempt {current} ({number}), now {late.state}: a "
                      f"possible double refund. Check both numbers with the channel and settle it by hand."),
              data={"late_payment": late.pk, "attempt": attempt, "channel_no": result.out_refund_no,
                    "current_attempt": current, "current_channel_no": number, "state": late.state,
                    "amount": late.amount, "channel_refund_no": result.channel_refund_no,
                    "succeeded_at": result.succeeded_at.isoformat() if result.succeeded_at else ""})
    EarlierRefundNumber.keep(order_id=late.order_id, refund_id=None, attempt=attempt,
                             channel_refund_no=result.channel_refund_no)  # the number on the channel's bill
    late.abnormal = True
    _money_back(late, result.succeeded_at)  # that attempt's money went back, whatever the current one does
    late.resolution = _append(late.resolution, note)
    late.save(update_fields=["abnormal", "resolution", "refunded_at"])
    logger.warning("late payment %s: refund attempt %s succeeded at the channel while attempt %s is %s; flagged",
                   late.pk, attempt, current, late.state)
    return late, True


def _send(late: LatePayment, *, actor) -> LatePayment:
    """Ask the channel to refund under the current attempt's number (no lock held) and apply its answer, which is
    about that number even if the late payment has moved on meanwhile."""
    order = late.order
    request = RefundRequest(trade=_ref(late), out_refund_no=late_payment_refund_no(late), amount=late.amount,
                            total_amount=late.amount, reason="paid after the order was closed",
                            notify_url=callback_url(order.channel_account))
    started = time.perf_counter()
    try:
        with recording_exchanges() as sent:
            result = order.channel_account.adapter().refund(request)
    except ChannelUnknown as exc:
        with transaction.atomic():
            _record(late, "refund", "unknown", started, error=exc, sent=sent)
            late = _locked(late.pk)
            if late.state == REFUNDING:
                note = f"refund: no answer from the channel ({exc.message}); asked again by the sweeper"
                late.resolution = _append(late.resolution, note)
                late.save(update_fields=["resolution"])
                audit_log(actor=actor, action=AUDIT_ACTION, target=order,
                          data={"outcome": note, "from": REFUNDING, "to": REFUNDING, "channel_state": "unknown",
                                "out_refund_no": request.out_refund_no, "attempt": late_payment_attempt(late),
                                "amount": late.amount})
        return late
    except ChannelError as exc:
        with transaction.atomic():
            _record(late, "refund", "error", started, error=exc, sent=sent)
        # A definite refusal: no money moved. Reopened for a person with the channel's words.
        result = RefundResult(state=ChannelRefundState.FAILED, out_refund_no=request.out_refund_no,
                              failure_code=exc.channel_code or exc.code,
                              failure_message=exc.channel_message or exc.message)
        return late_payment_apply_refund_result(late_payment_id=late.pk, result=result, actor=actor,
                                                source="refund")[0]
    with transaction.atomic():
        _record(late, "refund", result.state, started, result=result, sent=sent)
    result = _naming(result, request.out_refund_no)
    if result.state == ChannelRefundState.NOT_FOUND:  # not an answer a refund gives: treat as not known yet
        result = dataclasses.replace(result, state=ChannelRefundState.PROCESSING)
    return late_payment_apply_refund_result(late_payment_id=late.pk, result=result, actor=actor, source="refund")[0]


def _record(late: LatePayment, verb: str, outcome: str, started: float, *, result: RefundResult | None = None,
            error: ChannelError | None = None, sent: list[Exchange] | None = None) -> None:
    """The trade timeline's channel part (ChannelCall, on the closed order)."""
    ChannelCall.objects.create(order_id=late.order_id, **call_fields(
        verb=f"{CALL_PREFIX}{verb}", outcome=outcome, started=started, result=result, error=error, sent=sent))


def _money_back(late: LatePayment, at: dt.datetime | None) -> None:
    """Date the money's return (``refunded_at``, the statement's refund line: trades.services.statements): the
    channel's success time of the refund when it gives one, else now, when we learn of it (as a merchant's refund's
    ``succeeded_at``, trades.services.refunds). The first return only: the money goes back once on our books — a
    second success (a possible double refund, flagged ``abnormal``) is for a person to settle with the channel."""
    if late.refunded_at is None:
        late.refunded_at = at or timezone.now()


def _append(resolution: str, note: str) -> str:
    # Local time (TIME_ZONE, Asia/Shanghai), as every other time on the staff pages: the note sits next to the
    # late payment's "Detected" time there, and a UTC stamp read eight hours early.
    return (resolution + "\n" if resolution else "") + f"{timezone.localtime():%Y-%m-%d %H:%M} {note}"

"""What support and operations do to a trade from the staff pages (issue 5 "Staff pages"): refund, sync now, close,
refund a late payment or settle it by hand, mark an abnormal refund handled or record it refunded on the channel's
word, ask the channel again about a reverse, and clear the manual queue ("Mark handled", or "Ask again from now" for
an order still pending). Thin wrappers over the merchant-facing services, adding what staff actions need on top: a
permission check inside the service (design §5 rule 11, behind the views' checks), a required reason, and an audit
row (rule 9).

The wrapped services commit their own short transactions around the channel call (rule 7: no lock is held while the
channel answers), so the audit row is written in a transaction right after the change it describes; on a channel
refusal it is still written, recording the attempt and the channel's words.
"""

from __future__ import annotations

import secrets

from django.core import signing
from django.db import transaction
from django.utils import timezone

from aggpay.audit import AuditNote, audit_log
from aggpay.errors import IdempotencyConflict, InvalidRequest, InvalidState, NotFound
from aggpay.money import format_yuan
from aggpay.permissions import require_perm
from trades.models import LatePayment, Order, OrderState, Refund, SyncState
from trades.services.late import late_payment_refund, late_payment_resolve_by_hand
from trades.services.orders import order_barcode_step, order_close, order_sync
from trades.services.refunds import refund_close_by_hand, refund_create, refund_record_channel_success
from trades.services.representation import state_words

REFUND_PERM = "trades.refund_order"
# Closing an order is a support action on a trade the payer abandoned; there is no separate model permission for
# it, so it rides on the refund permission (both change what the merchant is owed).
CLOSE_PERM = REFUND_PERM
# "Sync now" calls the channel past the per-order rate limit and may change the order (paid, closed): an order
# action like closing one, not a look (design §5 rule 11). Support holds it; roles that may only look (finance,
# operations: aggpay.roles) do not.
SYNC_PERM = REFUND_PERM


# What "Close order" says when order_close handed the close to the expiry sweeper: the channel did not answer (the
# query or the close), so nothing is known and nothing changed here (trades.services.orders._close_later, whose
# audit row says "left to the expiry sweeper: the channel did not answer"). Not "the order is pending" alone, which
# read as if the close had been refused or ignored.
CLOSE_LEFT_TO_SWEEPER = ("The order was not closed: the channel did not answer. Nothing changed here — the order is "
                         "still pending; the expiry sweeper keeps asking the channel and closes it (or records the "
                         "payment, if the payer paid), and the merchant hears which.")


def _order(order_id: str) -> Order:
    order = Order.objects.select_related("merchant").filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"no order {order_id}", param="order_id")
    return order


def _reason(reason: str | None, what: str) -> str:
    return _text(reason, f"a reason is required to {what}", param="reason")


def _text(value: str | None, required: str, *, param: str) -> str:
    """A person's note or reason, stripped: ``required`` (the message) when empty. A NUL byte is refused naming the
    field (design §5 rule 12) before anything is done: PostgreSQL refuses it in a text column, so the audit row — the
    last write, after a close had already reached the channel — failed with a 500."""
    value = (value or "").strip()
    if not value:
        raise InvalidRequest(required, param=param)
    if "\x00" in value:
        raise InvalidRequest(f"the {param} contains a NUL character: type it again", param=param)
    return value


def staff_out_refund_no() -> str:
    """The merchant's out_refund_no namespace is shared with the API; ``staff-`` plus a timestamp and random
    suffix cannot collide with a merchant's own numbers in practice and tells the merchant where it came from."""
    # The local time (TIME_ZONE), as every time the merchant reads: a UTC stamp read 8 hours early.
    return f"staff-{timezone.localtime():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


# Signs the staff refund form's number (staff_refund_form_no): only a form this server rendered, for this order, is
# accepted, so a number cannot be made up to land on a merchant's own refund (the namespace is shared).
REFUND_FORM_SALT = "trades.staff.refund-form"


def staff_refund_form_no(*, order_id: str) -> str:
    """The number a staff refund form carries, minted when the form is rendered: the out_refund_no of the one refund
    that form may make, signed with the order it was rendered for. A double click or a browser resubmit sends the
    same number, so the second submit replays the first refund instead of making another (design §5 rule 5); a new
    refund needs a freshly rendered form."""
    return signing.dumps({"order": order_id, "out_refund_no": staff_out_refund_no()}, salt=REFUND_FORM_SALT)


def _form_refund_no(order_id: str, form_no: str) -> str:
    try:
        data = signing.loads(form_no or "", salt=REFUND_FORM_SALT)
    except signing.BadSignature:
        data = None
    if not isinstance(data, dict) or data.get("order") != order_id or not data.get("out_refund_no"):
        raise InvalidRequest("this refund form was not issued for this order (or was changed): check the refund "
                             "and submit the form again", param="form_no")
    return data["out_refund_no"]


def staff_refund_of_form(*, order_id: str, form_no: str) -> Refund | None:
    """The refund a submitted staff refund form already made, if any (InvalidRequest for a form not issued for
    this order). Looked at before the form's fields are checked against the order as it is now: once the first
    submit has refunded everything, the second must show that refund, not "nothing left to refund"."""
    order = _order(order_id)
    return Refund.objects.filter(merchant_id=order.merchant_id, order=order,
                                 out_refund_no=_form_refund_no(order.pk, form_no)).first()


def order_refund_by_staff(*, order_id: str, actor, amount, reason: str) -> Refund:
    """Refund ``amount`` fen of a paid order on behalf of the merchant (e.g. a complaint), under a new number. The
    staff pages use ``order_refund_by_staff_form``, whose form carries its number. Raises Forbidden, InvalidRequest
    (param ``amount`` or ``reason``), InvalidState, RefundAmountExceeded or ChannelRefused."""
    refund, _ = _refund_by_staff(order_id=order_id, actor=actor, amount=amount, reason=reason,
                                 out_refund_no=staff_out_refund_no())
    return refund


def order_refund_by_staff_form(*, order_id: str, actor, amount, reason: str, form_no: str) -> tuple[Refund, bool]:
    """The staff refund form submitted: refund under the form's own number (``staff_refund_form_no``). Returns
    (refund, replayed): a second submit of the same form — a double click, a browser resubmit, two tabs — makes
    nothing and returns the form's refund as it is, whatever its state (a failed one is not retried under a spent
    form) and even if the amount or reason were edited in between. Raises as ``order_refund_by_staff``, and
    InvalidRequest (param ``form_no``) for a form not issued for this order."""
    require_perm(actor, REFUND_PERM)
    out_refund_no = _form_refund_no(order_id, form_no)
    existing = staff_refund_of_form(order_id=order_id, form_no=form_no)
    if existing is not None:
        return existing, True
    try:
        return _refund_by_staff(order_id=order_id, actor=actor, amount=amount, reason=reason,
                                out_refund_no=out_refund_no)
    except IdempotencyConflict:
        # The same form submitted twice at once with different fields: the other submit made the refund.
        existing = staff_refund_of_form(order_id=order_id, form_no=form_no)
        if existing is None:
            raise
        return existing, True


def _refund_by_staff(*, order_id: str, actor, amount, reason: str, out_refund_no: str) -> tuple[Refund, bool]:
    require_perm(actor, REFUND_PERM)
    reason = _reason(reason, "refund from the staff pages")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidRequest("the refund amount must be at least 0.01 yuan", param="amount")
    order = _order(order_id)
    if order.state != OrderState.SUCCEEDED:
        raise InvalidState(f"the order {state_words(order.state)}; only paid orders can be refunded")
    if amount > order.refundable_amount:
        raise InvalidRequest(f"at most {format_yuan(order.refundable_amount)} yuan can still be refunded "
                             f"(asked {format_yuan(amount)})", param="amount")
    label = actor.get_username() if hasattr(actor, "get_username") else str(actor or "system")
    # The audit row is written with the refund, in its transaction (before the channel is asked): it exists if and
    # only if the refund does, whatever the channel answers. The outcome is on the refund's timeline.
    note = AuditNote(actor=actor, action="trades.refund.staff_created", reason=reason,
                     data={"order": order.pk, "amount": amount})
    # retry_failed=False: a staff number is spent by its submit; a failed refund is tried again from a new form.
    return refund_create(order=order, out_refund_no=out_refund_no, amount=amount, reason=reason, notify_url="",
                         actor_label=label, audit=note, retry_failed=False)


def order_sync_by_staff(*, order_id: str, actor) -> Order:
    """"Sync now": ask the channel at once, past the per-order rate limit (a person asked). Needs SYNC_PERM, checked
    before the channel is asked; audited with what the channel's answer made of the order."""
    require_perm(actor, SYNC_PERM)
    before = _order(order_id)
    if before.state != OrderState.PENDING:
        raise InvalidState(f"the order {state_words(before.state)}; only pending orders are synced")
    order = order_sync(order_id=order_id, force=True)
    with transaction.atomic():
        audit_log(actor=actor, action="trades.order.staff_synced", target=order,
                  data={"from": before.state, "to": order.state, "sync_state": order.sync_state})
    return order


def order_close_by_staff(*, order_id: str, actor, reason: str) -> Order:
    """Close a pending order; order_close asks the channel first (design §5 rule 3). Returns the order closed, or
    still pending when the channel did not answer and the expiry sweeper carries the close on (say
    CLOSE_LEFT_TO_SWEEPER to the person)."""
    require_perm(actor, CLOSE_PERM)
    reason = _reason(reason, "close an order")
    before = _order(order_id)
    order = order_close(order_id=before.pk, actor_label=actor.get_username() if hasattr(actor, "get_username")
                        else str(actor or "system"),
                        audit=AuditNote(actor=actor, action="trades.order.staff_closed", reason=reason,
                                        data={"from": before.state}))
    return order


def late_payment_refund_by_staff(*, late_payment_id: int, actor, reason: str) -> LatePayment:
    """Work the late-payment queue: return the money now. An ``open`` one is refunded; a ``refunding`` one (stuck:
    the channel did not answer, or was never asked because the process died) has the channel asked what became of
    its refund, and the refund sent if the channel has none (late_payment_refund). The staff row is written with
    the intent and the person's required ``reason`` (a staff refund's, issue 5: "refund from staff with permission
    and a reason (audited)"); late_payment_refund audits the channel's answer."""
    require_perm(actor, REFUND_PERM)
    reason = _reason(reason, "refund a late payment to the payer")
    late = LatePayment.objects.filter(pk=late_payment_id).first()
    if late is None:
        raise NotFound(f"no late payment {late_payment_id}", param="late_payment_id")
    if late.state not in ("open", "refunding"):
        raise InvalidState(f"the late payment {state_words(late.state)}")
    return late_payment_refund(late_payment_id=late.pk, actor=actor,
                               audit=AuditNote(actor=actor, action="trades.late_payment.staff_refund",
                                               reason=reason, data={"amount": late.amount}))


def late_payment_settle_by_staff(*, late_payment_id: int, actor, outcome: str, note: str) -> LatePayment:
    """"Settled by hand": support settled an open late payment outside aggpay — the channel refunded it by hand (e.g.
    after its refunds kept failing), or the merchant kept the sale and delivered the goods — or one flagged because
    an earlier refund attempt succeeded after a retry (a possible double refund). Resolved with the note, the flag
    cleared, audited in the same transaction (late_payment_resolve_by_hand); refused while the channel is refunding
    it."""
    require_perm(actor, REFUND_PERM)
    note = _text(note, "a note is required to settle a late payment by hand", param="note")
    return late_payment_resolve_by_hand(
        late_payment_id=late_payment_id, outcome=outcome, note=note,
        audit=AuditNote(actor=actor, action="trades.late_payment.settled_by_hand", reason=note))


# What becomes of a pending refund the channel could not return when a person marks it handled: it must reach a final
# outcome or stay followed — never be left pending, its amount held, with nothing asking about it.
ABNORMAL_OUTCOMES = {
    "close": "Close the refund: the money did not go back through the channel",  # released; refund.closed
    "requery": "Keep asking the channel",  # on the ladder; back to the abnormal queue when it runs out
}


def refund_abnormal_resolve(*, refund_id: str, actor, note: str, outcome: str = "") -> Refund:
    """"Mark handled": a person has settled an abnormal refund with the channel (the wallet could not take the money
    back, or an earlier attempt succeeded after a retry) — clear the flag, with a required note, audited in the same
    transaction.

    A refund still pending needs an ``outcome`` (ABNORMAL_OUTCOMES), since its amount is still held:

    * ``close`` — the money did not go back through the channel: the refund is closed
      (trades.services.refunds.refund_close_by_hand: ``pending → closed``, its amount released, ``refund.closed`` to
      the merchant, audited with the note). Only for an attempt the channel called ABNORMAL;
    * ``requery`` — keep asking: it goes back on the query ladder (asked at the next sweep, the ladder counted from
      now), so the channel's own answer settles it; should the channel still call it abnormal, it stays handled and
      on the ladder, and comes back to the abnormal queue flagged when the ladder runs out
      (trades.services.refunds.refund_apply_result). Bug: it stayed handled off the ladder, pending for ever.

    A failed, closed or succeeded one has its flag cleared and nothing else: no money moves here (its outcome is
    ignored). Raises Forbidden, InvalidRequest (``note``, ``outcome``), NotFound or InvalidState."""
    require_perm(actor, REFUND_PERM)
    note = _text(note, "a note is required to mark an abnormal refund handled", param="note")
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(f"no refund {refund_id}", param="refund_id")
    if refund.state == "pending":
        if outcome not in ABNORMAL_OUTCOMES:
            raise InvalidRequest("the refund is still pending and its amount held: say what becomes of it — "
                                 + " or ".join(f'"{words}"' for words in ABNORMAL_OUTCOMES.values()),
                                 param="outcome")
        if outcome == "close":
            return refund_close_by_hand(refund_id=refund.pk, actor=actor, note=note)
    with transaction.atomic():
        refund = Refund.objects.select_for_update(no_key=True).filter(pk=refund_id).first()
        if refund is None:
            raise NotFound(f"no refund {refund_id}", param="refund_id")
        if not refund.abnormal:
            raise InvalidState(f"refund {refund.pk} is not flagged abnormal (already handled?)")
        fields = ["abnormal", "updated_at"]
        refund.abnormal = False
        if refund.state == "pending":
            refund.next_query_at = timezone.now()
            fields.append("next_query_at")
        refund.save(update_fields=fields)
        audit_log(actor=actor, action="trades.refund.abnormal_resolved", target=refund, reason=note,
                  data={"order": refund.order_id, "state": refund.state, "amount": refund.amount,
                        "channel_refund_no": refund.channel_refund_no, "channel_attempt": refund.channel_attempt,
                        "requeried": refund.state == "pending",
                        **({"outcome": "requery"} if refund.state == "pending" else {})})
    return refund


def refund_abnormal_record_refunded(*, refund_id: str, actor, note: str) -> Refund:
    """"Ask the channel and record as refunded": a failed or closed refund flagged because the channel later said the
    money went back (refund_flag_settled_success). The channel is asked again and only its own answer of success
    records the refund succeeded — the order's refunded amount, the fee given back, ``refund.succeeded`` to the
    merchant, the statement — and clears the flag (trades.services.refunds.refund_record_channel_success). Unlike
    "Mark handled", money is recorded here, so a person's note alone never does it. Raises Forbidden, InvalidRequest
    (``note``), NotFound, or RefundSuccessNotRecorded (an InvalidState) saying why nothing changed."""
    require_perm(actor, REFUND_PERM)
    note = _text(note, "a note is required to record a refund as refunded", param="note")
    return refund_record_channel_success(refund_id=refund_id, actor=actor, note=note)


def order_reverse_retry(*, order_id: str, actor, reason: str) -> Order:
    """"Ask the channel again" about a reverse whose ladder ran out (the manual queue: ``reverse_requested_at`` set,
    the whole amount held in ``refund_reserved``). One more reverse call through the ladder's own path
    (order_barcode_step → the reverse retry): reversed or closed at the channel ends the hold; a definite refusal
    releases it and leaves the order for a person; no answer leaves it held in the manual queue. The audit row is
    written before the channel is asked, under the order's lock (as for staff refunds): it exists if and only if the
    attempt does; the channel's answer is on the trade timeline."""
    require_perm(actor, REFUND_PERM)
    reason = _reason(reason, "ask the channel again")
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",), no_key=True).filter(pk=order_id).first()
        if order is None:
            raise NotFound(f"no order {order_id}", param="order_id")
        if order.reverse_requested_at is None:
            raise InvalidState(f"no reverse of order {order.pk} is waiting for the channel (the order "
                               f"{state_words(order.state)})")
        audit_log(actor=actor, action="trades.order.staff_reverse_retried", target=order, reason=reason,
                  data={"state": order.state, "sync_state": order.sync_state, "held": order.refund_reserved,
                        "reverse_requested_at": order.reverse_requested_at.isoformat()})
    return order_barcode_step(order_id=order.pk)


# --- the manual queue: cleared by a person ---------------------------------------------------------------------------
# What the channel told the person about a pending order before "Ask again from now". "paid" is refused: a payment is
# recorded only from the channel's own, verified answer (design §5 rules 2 and 4) — "Sync now" asks for it.
CHANNEL_SAID = {
    "not_paid": "not paid (still waiting, closed, or no such trade)",
    "unclear": "no clear answer",
    "paid": "paid",
}


def _manual_order(order_id: str) -> Order:
    """The order under its lock, checked to be in the manual queue and not holding a reverse."""
    order = Order.objects.select_for_update(of=("self",), no_key=True).filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"no order {order_id}", param="order_id")
    if order.reverse_requested_at is not None:
        raise InvalidState(f"a reverse of order {order.pk} is still waiting for the channel and its amount is held: "
                           f"use \"Ask the channel again\" (the reverse retry); it cannot be cleared by hand")
    if order.sync_state != SyncState.MANUAL:
        raise InvalidState(f"order {order.pk} is not in the manual queue (sync {order.sync_state})")
    return order


def order_manual_resolve(*, order_id: str, actor, note: str) -> Order:
    """"Mark handled": a person who has settled with the channel the outcome of an order no longer pending (e.g.
    paid, after the channel refused a reverse retry) clears it from the manual queue with a required note: sync ``ok``, nothing queued.
    Only the sync fields change — never the state, amounts or holds. Refused for a pending order (whether it was
    paid is settled only by the channel's answer: "Sync now", or "Ask again from now") and while a reverse hold is
    in place ("Ask the channel again"). Audited in the same transaction with the state and sync state before."""
    require_perm(actor, REFUND_PERM)
    note = _text(note, "a note is required to mark an order handled", param="note")
    with transaction.atomic():
        order = _manual_order(order_id)
        if order.state == OrderState.PENDING:
            raise InvalidState(f"order {order.pk} is pending: whether it was paid is settled only by the channel's "
                               f"answer — press \"Sync now\", or \"Ask again from now\" to put it back on the query "
                               f"ladder")
        before = {"state": order.state, "sync_state": order.sync_state,
                  "next_query_at": order.next_query_at.isoformat() if order.next_query_at else None}
        order.sync_state, order.next_query_at = SyncState.OK, None
        order.save(update_fields=["sync_state", "next_query_at", "updated_at"])
        audit_log(actor=actor, action="trades.order.staff_marked_handled", target=order, reason=note, data=before)
    return order


def order_manual_requery(*, order_id: str, actor, note: str, channel_said: str) -> Order:
    """"Ask again from now": the only hand action on a pending order in the manual queue. The person says what the
    channel told them (CHANNEL_SAID; "paid" is refused — use "Sync now") and the order goes back on the query
    ladder: asked at the next sweep (``next_query_at`` now, sync ``unknown``, its query count reset). The channel's
    answer then settles it; one that still does not come sends it back here. Never changes the state, amounts or
    holds. Audited in the same transaction with what was said, the state and sync state before."""
    require_perm(actor, REFUND_PERM)
    note = _text(note, "a note is required to ask the channel again", param="note")
    if channel_said not in CHANNEL_SAID:
        raise InvalidRequest("say what the channel told you about the order", param="channel_said")
    if channel_said == "paid":
        raise InvalidRequest("a payment is recorded only from the channel's own answer, never by hand: press "
                             "\"Sync now\" to ask the channel for it", param="channel_said")
    with transaction.atomic():
        order = _manual_order(order_id)
        if order.state != OrderState.PENDING:
            raise InvalidState(f"order {order.pk} is not pending (it {state_words(order.state)}): nothing to ask "
                               f"the channel; \"Mark handled\" clears it from the queue")
        before = {"state": order.state, "sync_state": order.sync_state, "query_attempts": order.query_attempts,
                  "channel_said": channel_said}
        order.sync_state, order.next_query_at, order.query_attempts = SyncState.UNKNOWN, timezone.now(), 0
        order.save(update_fields=["sync_state", "next_query_at", "query_attempts", "updated_at"])
        audit_log(actor=actor, action="trades.order.staff_requeried", target=order, reason=note, data=before)
    return order

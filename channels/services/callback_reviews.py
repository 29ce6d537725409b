"""Risk's review of refused channel callbacks (issue 5 "Callbacks": a callback that fails verification or the
cross-check "is refused and recorded as a security event visible to risk").

A refused callback (``ChannelCallback`` with outcome ``rejected``) stays in risk's queue until a risk officer marks
it reviewed with a note. The mark is set once: a callback another officer reviewed meanwhile is left as they left
it (their note stands) and reported as skipped. Each mark writes an audit row (design §5 rule 9).

A channel's answer to our own call (a query's, a payment code's create) refused by the same cross-check is the same
security event, recorded only as an audit row (``security.<verb>.mismatch``, channels.refused): risk marks it reviewed
the same way, and the review is an audit row of its own, ``security.<verb>.reviewed``, whose target is the mismatch
row — audit rows are append-only, so nothing is set on the mismatch (channels.refused says why this is no table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, NotFound
from aggpay.models import AuditLog
from aggpay.permissions import require_perm
from channels.models import CallbackOutcome, ChannelCallback
from channels.refused import ANSWER_REVIEWED, ANSWER_TARGET, ANSWER_VERBS, CHANNEL_ACTOR

REVIEW_PERM = "channels.review_channelcallback"
NOTE_MAX_LENGTH = 1000
# One submission of the queue's bulk form marks at most a page or two; more is a mistake or a script.
MAX_BATCH = 200


@dataclass
class ReviewResult:
    reviewed: list[ChannelCallback] = field(default_factory=list)
    already_reviewed: list[ChannelCallback] = field(default_factory=list)  # by someone else, before this call


def callback_review_mark(*, callback_ids, actor, note: str) -> ReviewResult:
    """Mark the refused callbacks ``callback_ids`` reviewed by ``actor`` with ``note``, in one transaction; those
    already reviewed keep their first review and come back in ``already_reviewed``.

    Raises InvalidRequest without a note or ids, NotFound when an id is not a refused callback (nothing is marked
    then), Forbidden when ``actor`` lacks ``channels.review_channelcallback``."""
    require_perm(actor, REVIEW_PERM)
    note = _note(note, what="callback")
    ids = _ids(callback_ids, what="callback", param="callback_ids")
    result = ReviewResult()
    with transaction.atomic():
        # Locked in id order, so two officers marking overlapping selections cannot deadlock; re-checked under the
        # lock, so the first mark stands.
        callbacks = list(ChannelCallback.objects.select_for_update(of=("self",)).select_related("account")
                         .filter(pk__in=ids, outcome=CallbackOutcome.REJECTED).order_by("pk"))
        missing = sorted(set(ids) - {c.pk for c in callbacks})
        if missing:
            raise NotFound(f"no refused callback {', '.join(map(str, missing))}", param="callback_ids")
        now = timezone.now()
        for callback in callbacks:
            if callback.reviewed_at is not None:
                result.already_reviewed.append(callback)
                continue
            callback.reviewed_at, callback.review_note = now, note
            callback.reviewed_by = None if actor is None or isinstance(actor, str) else actor
            callback.save(update_fields=["reviewed_at", "reviewed_by", "review_note"])
            audit_log(actor=actor, action="security.callback.reviewed", target=callback, reason=note,
                      data={"account": callback.account.code, "message": callback.message[:300]})
            result.reviewed.append(callback)
    return result


def _note(note, *, what: str) -> str:
    note = (note or "").strip()
    if not note:
        raise InvalidRequest(f"say what you found (a note is required to mark a {what} reviewed)", param="note")
    if len(note) > NOTE_MAX_LENGTH:
        raise InvalidRequest(f"the note is longer than {NOTE_MAX_LENGTH} characters", param="note")
    return note


def _ids(values, *, what: str, param: str) -> list[int]:
    try:
        ids = sorted({int(pk) for pk in values or ()})
    except (TypeError, ValueError):
        raise InvalidRequest(f"{what} ids must be numbers", param=param) from None
    if not ids:
        raise InvalidRequest(f"choose at least one {what}", param=param)
    if len(ids) > MAX_BATCH:
        raise InvalidRequest(f"at most {MAX_BATCH} {what}s at once", param=param)
    return ids


@dataclass
class AnswerReviewResult:
    reviewed: list[AuditLog] = field(default_factory=list)  # the mismatch rows marked by this call
    already_reviewed: list[AuditLog] = field(default_factory=list)  # by someone else, before this call
    reviews: dict[int, AuditLog] = field(default_factory=dict)  # mismatch row pk → its review row (new or earlier)


def answer_review_mark(*, answer_ids, actor, note: str) -> AnswerReviewResult:
    """Mark the refused channel answers ``answer_ids`` (their ``security.<verb>.mismatch`` audit rows) reviewed by
    ``actor`` with ``note``, in one transaction: one ``security.<verb>.reviewed`` audit row each, whose target is
    the mismatch row. Those already reviewed keep their first review and come back in ``already_reviewed``.

    Raises InvalidRequest without a note or ids, NotFound when an id is not a refused answer (nothing is marked
    then), Forbidden when ``actor`` lacks ``channels.review_channelcallback``."""
    require_perm(actor, REVIEW_PERM)
    note = _note(note, what="refused answer")
    ids = _ids(answer_ids, what="refused answer", param="answer_ids")
    result = AnswerReviewResult()
    with transaction.atomic():
        # The mismatch rows are locked in id order (never changed: the lock only puts two officers marking
        # overlapping selections one after the other, without deadlock), then their reviews are looked for under
        # the lock, so the first review stands and no mismatch gets two.
        rows = list(AuditLog.objects.select_for_update().filter(pk__in=ids, action__in=ANSWER_VERBS).order_by("pk"))
        missing = sorted(set(ids) - {r.pk for r in rows})
        if missing:
            raise NotFound(f"no refused answer {', '.join(map(str, missing))}", param="answer_ids")
        for review in (AuditLog.objects.filter(action__in=ANSWER_REVIEWED.values(), target_type=ANSWER_TARGET,
                                               target_id__in=[str(pk) for pk in ids])
                       .select_related("actor").order_by("-pk")):
            result.reviews[int(review.target_id)] = review  # newest first, so the first review is what stays
        for row in rows:
            if row.pk in result.reviews:
                result.already_reviewed.append(row)
                continue
            data = row.data or {}
            result.reviews[row.pk] = audit_log(
                actor=actor, action=ANSWER_REVIEWED[ANSWER_VERBS[row.action]], target=row, reason=note,
                data={"order": row.target_id, "account": row.actor_label.removeprefix(CHANNEL_ACTOR),
                      "mismatch": str(data.get("reason") or "")[:300]})
            result.reviewed.append(row)
    return result

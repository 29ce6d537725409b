"""Risk's review of refused channel callbacks (issue 5 "Callbacks": a callback that fails verification or the
cross-check "is refused and recorded as a security event visible to risk").

A refused callback (``ChannelCallback`` with outcome ``rejected``) stays in risk's queue until a risk officer marks
it reviewed with a note. The mark is set once: a callback another officer reviewed meanwhile is left as they left
it (their note stands) and reported as skipped. Each mark writes an audit row (design §5 rule 9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, NotFound
from aggpay.permissions import require_perm
from channels.models import CallbackOutcome, ChannelCallback

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
    note = (note or "").strip()
    if not note:
        raise InvalidRequest("say what you found (a note is required to mark a callback reviewed)", param="note")
    if len(note) > NOTE_MAX_LENGTH:
        raise InvalidRequest(f"the note is longer than {NOTE_MAX_LENGTH} characters", param="note")
    try:
        ids = sorted({int(pk) for pk in callback_ids or ()})
    except (TypeError, ValueError):
        raise InvalidRequest("callback ids must be numbers", param="callback_ids") from None
    if not ids:
        raise InvalidRequest("choose at least one callback", param="callback_ids")
    if len(ids) > MAX_BATCH:
        raise InvalidRequest(f"at most {MAX_BATCH} callbacks at once", param="callback_ids")
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

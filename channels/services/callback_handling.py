"""Operations mark callbacks not processed handled (未处理的渠道回调 · 已处理): the notices an account received and
dropped (outcome ``error`` or ``ignored``, channels.unprocessed) stay in the queue's open list until an operator has
looked at them and says what they found.

The mark is set once, all or nothing: a selection naming a callback someone already handled, or one that is not in
the queue (applied, duplicate, refused — risk's, channels.services.callback_reviews — or no such callback), is
refused whole, naming them, and nothing is marked. Each mark writes an audit row (design §5 rule 9) without the
callback's message, which may quote a stored secret (channels.unprocessed masks it on the page).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.permissions import require_perm
from channels.models import ChannelCallback
from channels.unprocessed import OUTCOME_VALUES

HANDLE_PERM = "channels.handle_channelcallback"  # ChannelCallback.Meta.permissions; operations' (aggpay.roles)
NOTE_MAX_LENGTH = 1000
# One submission of the queue's bulk form marks a page or two; more is a mistake or a script.
MAX_BATCH = 200


def callback_record_mark_handled(*, record_ids, actor, note: str) -> list[ChannelCallback]:
    """Mark the callbacks not processed ``record_ids`` handled by ``actor`` with ``note``, in one transaction, and
    return them (in id order).

    Raises Forbidden when ``actor`` lacks ``channels.handle_channelcallback``; InvalidRequest without a note (spaces
    are none) or ids; NotFound naming the ids that are not callbacks not processed; InvalidState naming those
    already handled (by whom, when). Nothing is marked when it raises."""
    require_perm(actor, HANDLE_PERM)
    note = _note(note)
    ids = _ids(record_ids)
    with transaction.atomic():
        # Locked in id order, so two operators marking overlapping selections cannot deadlock; checked under the
        # lock, so the second of them sees the first's mark and is refused instead of writing over it.
        records = list(ChannelCallback.objects.select_for_update(of=("self",))
                       .select_related("account", "handled_by").filter(pk__in=ids).order_by("pk"))
        found = {record.pk: record for record in records}
        outside = [f"#{pk} (no such callback)" if pk not in found else f"#{pk} ({found[pk].outcome})"
                   for pk in ids if pk not in found or found[pk].outcome not in OUTCOME_VALUES]
        if outside:
            raise NotFound(f"not callbacks not processed (error or ignored): {', '.join(outside)}",
                           param="record_ids")
        handled = [r for r in records if r.handled_at is not None]
        if handled:
            who = ", ".join(f"#{r.pk} by {_username(r.handled_by)} at {timezone.localtime(r.handled_at):%Y-%m-%d %H:%M}"
                            for r in handled)
            raise InvalidState(f"already handled, nothing was marked: {who}", param="record_ids")
        now = timezone.now()
        user = None if actor is None or isinstance(actor, str) else actor
        for record in records:
            record.handled_at, record.handled_by, record.handled_note = now, user, note
            record.save(update_fields=["handled_at", "handled_by", "handled_note"])
            audit_log(actor=actor, action="channels.callback.handled", target=record, reason=note,
                      data={"account": record.account.code, "outcome": record.outcome, "kind": record.kind,
                            "event_id": record.event_id[:128]})
    return records


def _username(user) -> str:
    return user.get_username() if user is not None else "system"


def _note(note) -> str:
    note = (note or "").strip()
    if not note:
        raise InvalidRequest("say what you found: a note is required to mark callbacks handled", param="note")
    if len(note) > NOTE_MAX_LENGTH:
        raise InvalidRequest(f"the note is longer than {NOTE_MAX_LENGTH} characters", param="note")
    return note


def _ids(values) -> list[int]:
    if isinstance(values, (str, int)):
        values = [values]
    try:
        ids = sorted({int(pk) for pk in values or ()})
    except (TypeError, ValueError):
        raise InvalidRequest("callback ids must be numbers", param="record_ids") from None
    if not ids:
        raise InvalidRequest("choose at least one callback to mark handled", param="record_ids")
    if len(ids) > MAX_BATCH:
        raise InvalidRequest(f"at most {MAX_BATCH} callbacks at once", param="record_ids")
    return ids

"""Channel risk notices: recording what a channel's risk system tells us, and a risk officer handling it (design §1
"Risk", §2: risk owns channel risk events, §8: risk officers act on them).

``channel_risk_notice_record`` is called by the callback handler for violation notices (trades.services.callbacks
``violation_callback``, channel-protocols.md A.15) once the adapter has verified and decrypted one. The channel's
``record_id`` is its dedupe key (with the callback's id for an appeal update, ``notice_dedupe_key``): the unique
constraint (account, kind, dedupe key) makes a notice sent again a duplicate that changes nothing (design §5 rule 4),
however many copies arrive at once.

``channel_risk_notice_handle`` closes a new notice with a note and one action: none (noted), limit the matched
contract (routing stops choosing it), lift that limit, or freeze the merchant — each through its own service, which
checks its own permission and writes its own audit row, all in the one transaction with the notice's. A contract we
hold suspended may be limited or lifted too: it stays suspended, and its resume brings back what was decided
(merchants.services.contract_risk).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_fsm import can_proceed

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.permissions import require_perm
from merchants.models import Contract
from merchants.services.contract_risk import contract_lift_limit, contract_limit
from merchants.services.merchants import merchant_freeze
from risk.models import (
    VIOLATION_KINDS,
    ChannelRiskAction,
    ChannelRiskNotice,
    ChannelRiskNoticeKind,
)
from risk.notice_queue import mask_text

HANDLE_PERM = "risk.handle_channelrisknotice"
VIEW_PERM = "risk.view_channelrisknotice"
NOTE_MAX_LENGTH = 1000


class NoticeUnreadable(ValueError):
    """A verified notice we cannot record (no record id, an event type A.15 does not list): the caller refuses it."""


@dataclass(frozen=True)
class Recorded:
    notice: ChannelRiskNotice
    created: bool  # False: a notice of the same account, record and kind was already recorded
    note: str  # what to write on the callback's row


def _text(data: dict, key: str, *, limit: int | None = None) -> str:
    """A field of the decrypted notice as text. The channel sends strings; anything else (a number, a list) is kept as
    its text rather than refused — the notice matters more than its shape. Cut to the column (names and codes only:
    the free-text fields are TextFields)."""
    value = data.get(key)
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    return text[:limit] if limit else text


def _punish_time(value: str) -> dt.datetime | None:
    """A.15's ``punish_time`` is RFC 3339 with an offset (``2026-01-01T10:00:00+08:00``); one without an offset is
    Beijing time, as every WeChat time is."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        return None
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return moment


def channel_risk_notice_record(*, account, event_type: str, event_id: str, data: dict,
                               received_at: dt.datetime | None = None) -> Recorded:
    """Record one violation notice of ``account`` (a verified callback's decrypted resource ``data``). Returns the
    notice and whether it is new; a notice already recorded is returned as it is (nothing changes).

    Raises NoticeUnreadable without a record id, with an event type A.15 does not list or a record id longer than
    we keep (cutting the dedupe key could merge two records)."""
    kind = VIOLATION_KINDS.get(event_type)
    if kind is None:
        raise NoticeUnreadable(f"violation notice of an unknown type {event_type!r} (A.15 lists "
                               f"{', '.join(VIOLATION_KINDS)})")
    record_id = _text(data, "record_id")
    if not record_id:
        raise NoticeUnreadable("violation notice without record_id (A.15: its dedupe key)")
    if len(record_id) > ChannelRiskNotice._meta.get_field("record_id").max_length:
        raise NoticeUnreadable(f"violation notice record_id of {len(record_id)} characters: longer than any we keep")
    sub_mchid = _text(data, "sub_mchid", limit=64)
    dedupe_key = notice_dedupe_key(kind=kind, record_id=record_id, event_id=event_id)
    existing = _existing(account, kind, dedupe_key)
    if existing is not None:
        return Recorded(existing, False, f"{kind} notice {record_id} already recorded (#{existing.pk})")
    contract = (Contract.objects.select_related("merchant").filter(channel_account=account, sub_mchid=sub_mchid)
                .first() if sub_mchid else None)
    raw_time = _text(data, "punish_time")
    punish_time = _punish_time(raw_time)
    fields = {
        "contract": contract, "merchant": contract.merchant if contract else None, "sub_mchid": sub_mchid,
        "company_name": _text(data, "company_name", limit=256), "punish_plan": _text(data, "punish_plan"),
        "punish_time": punish_time, "punish_description": _text(data, "punish_description"),
        "risk_type": _text(data, "risk_type", limit=64), "risk_description": _text(data, "risk_description"),
        "event_id": event_id[:128], "received_at": received_at or timezone.now(),
    }
    try:
        # A savepoint: copies of one notice arriving together race to the unique constraint, and exactly one wins;
        # the others find its row (design §5 rule 5 "idempotency lives in the schema").
        with transaction.atomic():
            notice = ChannelRiskNotice.objects.create(channel_account=account, record_id=record_id, kind=kind,
                                                      dedupe_key=dedupe_key, **fields)
            audit_log(actor=f"channel:{account.code}", action="risk.channel_notice.received", target=notice,
                      data={"kind": kind, "record_id": record_id, "sub_mchid": sub_mchid, "event_id": event_id,
                            "merchant": contract.merchant.merchant_no if contract else None,
                            # Free text: masked as on the pages, since the audit log is one (design §5 rule 10).
                            "punish_plan": mask_text(fields["punish_plan"])[:200]})
    except IntegrityError as exc:
        if "channel_risk_notice_once" not in str(exc):
            raise
        existing = _existing(account, kind, dedupe_key)
        return Recorded(existing, False, f"{kind} notice {record_id} already recorded (#{existing.pk})")
    note = f"{kind} notice {record_id} recorded (#{notice.pk})"
    if contract:
        note += f" for {contract.merchant.merchant_no}"
    else:
        note += f", unmatched: no contract of {account.code} has sub-merchant {sub_mchid or '(none given)'}"
    if raw_time and punish_time is None:
        note += f"; punish_time {raw_time[:40]!r} unreadable, kept empty"
    return Recorded(notice, True, note)


def notice_dedupe_key(*, kind: str, record_id: str, event_id: str) -> str:
    """What a copy of the same notice shares (ChannelRiskNotice.dedupe_key): A.15's record id, and for an appeal
    update also the callback's id — an appeal's every change of state is sent about the punished record, so the
    record id alone would drop all but the first, while WeChat's retry of one update keeps its callback id (A.4)."""
    if kind == ChannelRiskNoticeKind.APPEAL and event_id:
        return f"{record_id}/{event_id[:128]}"
    return record_id


def _existing(account, kind: str, dedupe_key: str) -> ChannelRiskNotice | None:
    return ChannelRiskNotice.objects.filter(channel_account=account, kind=kind, dedupe_key=dedupe_key).first()


# --- handling ---------------------------------------------------------------------------------------------------
def channel_risk_notice_handle(*, notice_id: int, actor, note: str,
                               action: str = ChannelRiskAction.NONE) -> ChannelRiskNotice:
    """Close a new notice with ``note`` (required) and ``action`` (a ChannelRiskAction value): limit or lift the
    limit of the contract the notice was matched to, or freeze its merchant. The action and the notice's handling
    commit together or not at all.

    Raises Forbidden (``risk.handle_channelrisknotice``, and the action's own permission), InvalidRequest (no note,
    an unknown action, an action the notice has no contract or merchant for), NotFound, InvalidState (handled
    already, or the contract/merchant is not in a state the action applies to)."""
    require_perm(actor, HANDLE_PERM)
    note = (note or "").strip() if isinstance(note, str) else ""
    if not note:
        raise InvalidRequest("say what you did and why: a note is required to handle a notice", param="note")
    if len(note) > NOTE_MAX_LENGTH:
        raise InvalidRequest(f"the note is longer than {NOTE_MAX_LENGTH} characters", param="note")
    if action not in ChannelRiskAction.values:
        raise InvalidRequest(f"action must be one of {', '.join(ChannelRiskAction.values)}", param="action")
    with transaction.atomic():
        # The notice first, then (inside the action's service) its contract or merchant: every path that handles a
        # notice locks in this order, so two officers on one notice queue up and the second finds it handled.
        notice = (ChannelRiskNotice.objects.select_for_update(of=("self",)).select_related("channel_account")
                  .filter(pk=notice_id).first())
        if notice is None:
            raise NotFound(f"no channel risk notice {notice_id}", param="notice_id")
        if not can_proceed(notice.handle):
            who = notice.handled_by.get_username() if notice.handled_by else "system"
            raise InvalidState(f"notice #{notice.pk} was handled already, by {who} on "
                               f"{timezone.localtime(notice.handled_at):%Y-%m-%d %H:%M}")
        _act(notice, actor=actor, note=note, action=action)
        notice.handle()
        notice.handled_at, notice.handled_action, notice.handled_note = timezone.now(), action, note
        notice.handled_by = None if actor is None or isinstance(actor, str) else actor
        notice.save()
        audit_log(actor=actor, action="risk.channel_notice.handled", target=notice, reason=note,
                  data={"action": action, "record_id": notice.record_id, "account": notice.channel_account.code,
                        "contract": notice.contract_id, "merchant": notice.merchant_id})
    return notice


def _act(notice: ChannelRiskNotice, *, actor, note: str, action: str) -> None:
    about = {"channel_notice": notice.pk, "record_id": notice.record_id}
    reason = f"channel risk notice {notice.record_id}: {note}"
    if action in (ChannelRiskAction.LIMIT, ChannelRiskAction.LIFT):
        if notice.contract_id is None:
            raise InvalidRequest(f"notice #{notice.pk} matches none of our contracts: there is no contract to "
                                 f"{'limit' if action == ChannelRiskAction.LIMIT else 'lift the limit of'}",
                                 param="action")
        if action == ChannelRiskAction.LIMIT:
            contract_limit(contract_id=notice.contract_id, actor=actor, reason=reason, data=about)
        else:
            # Only the limit set for this notice's record: one set for another punishment stands (contract_risk).
            contract_lift_limit(contract_id=notice.contract_id, actor=actor, reason=reason, data=about,
                                record_id=notice.record_id)
    elif action == ChannelRiskAction.FREEZE:
        if notice.merchant_id is None:
            raise InvalidRequest(f"notice #{notice.pk} matches none of our merchants: there is no merchant to freeze",
                                 param="action")
        merchant_freeze(merchant_id=notice.merchant_id, actor=actor, reason=reason)


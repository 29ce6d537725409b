"""Interface evaluations (接口评估) of channel accounts: checklist, score, verdict, integration, go-live.

Issue 3 "Interface evaluation": ``evaluating → approved | rejected``, ``approved → integrating → live``. Transitions
lock the row and re-check with ``can_proceed`` (style.md §6) so two reviewers clicking at once give one verdict.
An account may be enabled only while its newest evaluation is live (``accounts.enable_refusal``).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.errors import InvalidRequest, InvalidState, NotFound
from channels.models import (
    CHECKLIST_KEYS,
    MAX_SCORE,
    ChannelAccount,
    EvaluationState,
    InterfaceEvaluation,
)
from channels.services.history import UNSET, diff, record_change

MAX_FINDING_LENGTH = 4000


def _user(actor):
    return actor if (actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None)) else None


def _locked(evaluation_id: int) -> InterfaceEvaluation:
    try:
        # The evaluation only (its account is read, not locked), FOR NO KEY UPDATE: an order on the account must
        # not wait for a reviewer's click.
        return (InterfaceEvaluation.objects.select_for_update(of=("self",), no_key=True).select_related("account")
                .get(pk=evaluation_id))
    except InterfaceEvaluation.DoesNotExist:
        raise NotFound(f"no interface evaluation {evaluation_id}", param="evaluation_id")


def interface_evaluation_start(*, account_id: int, actor, reason: str = "") -> InterfaceEvaluation:
    """Open an evaluation of the account; refused while another one is open (not rejected)."""
    with transaction.atomic():
        try:
            # One opening at a time per account; FOR NO KEY UPDATE lets the orders on the account through.
            account = ChannelAccount.objects.select_for_update(no_key=True).get(pk=account_id)
        except ChannelAccount.DoesNotExist:
            raise NotFound(f"no channel account {account_id}", param="account_id")
        current = account.evaluations.exclude(state=EvaluationState.REJECTED).first()
        if current is not None:
            raise InvalidState(f"{account.code} already has an evaluation ({current.state})")
        try:
            with transaction.atomic():
                evaluation = InterfaceEvaluation.objects.create(account=account)
        except IntegrityError:  # the partial unique constraint: someone else opened one first
            raise InvalidState(f"{account.code} already has an open evaluation")
        record_change(actor=actor, account=account, target=evaluation, target_type="evaluation",
                      action="evaluation.started", changes={"state": {"old": None, "new": evaluation.state}},
                      reason=reason)
    return evaluation


def _normalise_item(key: str, entry: Any) -> dict:
    if not isinstance(entry, dict):
        raise InvalidRequest(f"checklist item {key} must be an object", param=f"checklist.{key}")
    finding = entry.get("finding", "") or ""
    if not isinstance(finding, str):
        raise InvalidRequest(f"checklist.{key}.finding must be text", param=f"checklist.{key}.finding")
    if len(finding) > MAX_FINDING_LENGTH:
        raise InvalidRequest(f"checklist.{key}.finding is longer than {MAX_FINDING_LENGTH} characters",
                             param=f"checklist.{key}.finding")
    score = entry.get("score")
    if score == "":
        score = None
    if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= MAX_SCORE):
        raise InvalidRequest(f"checklist.{key}.score must be a whole number from 0 to {MAX_SCORE}",
                             param=f"checklist.{key}.score")
    return {"finding": finding.strip(), "score": score}


def interface_evaluation_save(
    *, evaluation_id: int, actor, checklist: dict[str, dict], verdict_notes: str = UNSET
) -> InterfaceEvaluation:
    """Save findings and scores (merged into the stored checklist) while the evaluation is open."""
    unknown = sorted(set(checklist) - set(CHECKLIST_KEYS))
    if unknown:
        raise InvalidRequest(f"{unknown[0]} is not a checklist item", param=f"checklist.{unknown[0]}")
    items = {key: _normalise_item(key, entry) for key, entry in checklist.items()}
    with transaction.atomic():
        evaluation = _locked(evaluation_id)
        if evaluation.state != EvaluationState.EVALUATING:
            raise InvalidState(f"evaluation #{evaluation.pk} is {evaluation.state}; its checklist is closed")
        before = {f"checklist.{key}": evaluation.item(key) for key in CHECKLIST_KEYS}
        before["verdict_notes"] = evaluation.verdict_notes
        evaluation.checklist = {**(evaluation.checklist or {}), **items}
        if verdict_notes is not UNSET:
            evaluation.verdict_notes = verdict_notes or ""
        after = {f"checklist.{key}": evaluation.item(key) for key in CHECKLIST_KEYS}
        after["verdict_notes"] = evaluation.verdict_notes
        changes = diff(before, after)
        if not changes:
            return evaluation
        evaluation.save()
        record_change(actor=actor, account=evaluation.account, target=evaluation, target_type="evaluation",
                      action="evaluation.saved", changes=changes)
    return evaluation


def _transition(*, evaluation_id: int, actor, name: str, reason: str, verdict: bool = False) -> InterfaceEvaluation:
    with transaction.atomic():
        evaluation = _locked(evaluation_id)
        method = getattr(evaluation, name)
        if not can_proceed(method):
            raise InvalidState(f"evaluation #{evaluation.pk} is {evaluation.state}; cannot {name.replace('_', ' ')}")
        if name == "approve":
            missing = evaluation.missing_items()
            if missing:
                raise InvalidRequest(
                    f"every checklist item needs a finding and a score before approval; missing: {', '.join(missing)}",
                    param=f"checklist.{missing[0]}",
                )
        before = evaluation.state
        method()
        if verdict:
            evaluation.verdict_notes = reason
            evaluation.reviewer = _user(actor)
            evaluation.decided_at = timezone.now()
        evaluation.save()
        changes = {"state": {"old": before, "new": evaluation.state}}
        if verdict:
            changes["overall_score"] = {"old": None, "new": evaluation.overall_score}
        record_change(actor=actor, account=evaluation.account, target=evaluation, target_type="evaluation",
                      action=f"evaluation.{evaluation.state}", changes=changes, reason=reason)
    return evaluation


def _require_reason(reason: str, verb: str) -> None:
    if not reason or not reason.strip():
        raise InvalidRequest(f"a reason is required to {verb} an evaluation", param="reason")


def interface_evaluation_approve(*, evaluation_id: int, actor, reason: str) -> InterfaceEvaluation:
    """Verdict "approved": needs every checklist item answered and scored, and the reviewer's reasons."""
    _require_reason(reason, "approve")
    return _transition(evaluation_id=evaluation_id, actor=actor, name="approve", reason=reason, verdict=True)


def interface_evaluation_reject(*, evaluation_id: int, actor, reason: str) -> InterfaceEvaluation:
    """Verdict "rejected" (terminal). A dealbreaker may be found before every item is filled."""
    _require_reason(reason, "reject")
    return _transition(evaluation_id=evaluation_id, actor=actor, name="reject", reason=reason, verdict=True)


def interface_evaluation_start_integrating(*, evaluation_id: int, actor, reason: str = "") -> InterfaceEvaluation:
    return _transition(evaluation_id=evaluation_id, actor=actor, name="start_integrating", reason=reason)


def interface_evaluation_go_live(*, evaluation_id: int, actor, reason: str = "") -> InterfaceEvaluation:
    """The integration is in production: from now on the account may be enabled (``channel_account_enable``
    refuses until then, design §1).

    Going live does not enable the account itself. Enabling sends real money through it, which ops do deliberately
    — once products, rates and contracts are in place, at a time they choose — as its own audited change with its
    own reason; the evaluation's page offers "Enable the account" as the next step. Nor does a later change of the
    account touch its evaluation: disabling it (an incident, a channel outage) keeps the evaluation live, so it
    can be enabled again.
    """
    return _transition(evaluation_id=evaluation_id, actor=actor, name="go_live", reason=reason)

"""Onboarding applications (进件): drafting, documents, submission and the risk review — design §4, issue 4.

Every transition locks the application row, re-checks with ``can_proceed`` and writes an audit row in the same
transaction, so two clerks pressing "submit" at once produce one transition and one clear error.
"""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import actor_label_for, audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.permissions import require_perm
from merchants.models import (
    ApplicationState,
    Document,
    DocumentType,
    Merchant,
    OnboardingApplication,
    SettlementAccount,
    Store,
)
from merchants.services.contracts import contracts_create_for_application
from merchants.services.merchants import new_merchant_no
from merchants.services.record import RecordInput, required_documents, validate_record

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024  # WeChat media upload limit (A.13 image upload)
DOCUMENT_CONTENT_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "application/pdf": b"%PDF-"}

EDITABLE_STATES = (ApplicationState.DRAFT, ApplicationState.RETURNED)


def _write_record(*, merchant: Merchant, record: RecordInput) -> None:
    for key, value in record.merchant.items():
        setattr(merchant, key, value)
    merchant.save()
    if record.settlement is not None:
        current = merchant.settlement_accounts.filter(current=True).first()
        if current is None:
            SettlementAccount.objects.create(merchant=merchant, current=True, **record.settlement)
        else:
            for key, value in record.settlement.items():
                setattr(current, key, value)
            current.save()
    kept = []
    for store in record.stores:
        obj, _ = Store.objects.update_or_create(merchant=merchant, store_no=store["store_no"], defaults=store)
        kept.append(obj.pk)
    merchant.stores.exclude(pk__in=kept).delete()


def merchant_onboard_draft(*, actor, data: dict, partner: Merchant | None = None, partner_reference: str = "",
                           request_fingerprint: str = "") -> OnboardingApplication:
    """Create a merchant and its draft application from a record (form, import row or partner API).

    ``partner_reference`` and ``request_fingerprint`` come from the partner API (merchants.services.partner): a
    reference the partner already used is an IntegrityError from the unique constraint, for the caller to handle.
    """
    require_perm(actor, "merchants.add_merchant")
    record = validate_record(data)
    with transaction.atomic():
        merchant = Merchant.objects.create(
            merchant_no=new_merchant_no(), legal_name=record.merchant["legal_name"],
            short_name=record.merchant["short_name"], partner=partner, partner_reference=partner_reference,
            partner_request_fingerprint=request_fingerprint,
        )
        _write_record(merchant=merchant, record=record)
        application = OnboardingApplication.objects.create(merchant=merchant, created_by=actor_label_for(actor))
        audit_log(actor=actor, action="merchants.application.drafted", target=application,
                  data={"merchant_no": merchant.merchant_no, "partner": partner.merchant_no if partner else None,
                        "partner_reference": partner_reference or None})
    return application


def _locked_application(application_id: int) -> OnboardingApplication:
    try:
        return OnboardingApplication.objects.select_for_update().select_related("merchant").get(pk=application_id)
    except OnboardingApplication.DoesNotExist:
        raise NotFound(f"no application {application_id}")


def merchant_record_update(*, application_id: int, actor, data: dict) -> OnboardingApplication:
    """Correct a draft or returned application's record. A returned application goes back to draft."""
    require_perm(actor, "merchants.change_merchant")
    record = validate_record(data)
    with transaction.atomic():
        application = _locked_application(application_id)
        if application.state not in EDITABLE_STATES:
            raise InvalidState(f"the application is {application.state}; only draft or returned ones can be edited")
        before = application.state
        if application.state == ApplicationState.RETURNED:
            application.reopen()
            application.save()
        merchant = Merchant.objects.select_for_update().get(pk=application.merchant_id)
        _write_record(merchant=merchant, record=record)
        audit_log(actor=actor, action="merchants.application.edited", target=application,
                  data={"from": before, "to": application.state})
    return application


def document_add(*, merchant_id: int, actor, doc_type: str, uploaded_file) -> Document:
    """Store an uploaded document after checking its type by content (not by name), size and declared type."""
    require_perm(actor, "merchants.change_merchant")
    if doc_type not in DocumentType.values:
        raise InvalidRequest(f"doc_type must be one of {', '.join(DocumentType.values)}", param="doc_type")
    size = uploaded_file.size
    if not size:
        raise InvalidRequest("file is empty", param="file")
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidRequest(f"file is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} (5 MB)", param="file")
    uploaded_file.seek(0)
    head = uploaded_file.read(16)
    content_type = next((ct for ct, magic in DOCUMENT_CONTENT_TYPES.items() if head.startswith(magic)), None)
    if content_type is None:
        raise InvalidRequest("file must be a JPEG, PNG or PDF", param="file")
    uploaded_file.seek(0)
    digest = hashlib.sha256()
    for chunk in uploaded_file.chunks():
        digest.update(chunk)
    uploaded_file.seek(0)
    with transaction.atomic():
        merchant = Merchant.objects.select_for_update().get(pk=merchant_id)
        open_app = merchant.applications.exclude(state__in=["rejected", "completed"]).first()
        # A channel that rejected a picture needs a new one before the clerk resubmits that contract.
        fixing_rejection = merchant.contracts.filter(state="rejected").exists()
        if open_app is not None and open_app.state not in EDITABLE_STATES and not fixing_rejection:
            raise InvalidState(f"the application is {open_app.state}; documents can be added while it is a draft "
                               "or a channel rejected it")
        document = Document.objects.create(
            merchant=merchant, doc_type=doc_type, file=uploaded_file, content_type=content_type, size=size,
            sha256=digest.hexdigest(), uploaded_by=actor_label_for(actor),
        )
        audit_log(actor=actor, action="merchants.document.added", target=merchant,
                  data={"doc_type": doc_type, "size": size, "sha256": document.sha256})
    return document


def missing_documents(merchant: Merchant) -> list[str]:
    have = set(merchant.documents.values_list("doc_type", flat=True))
    needed = required_documents(subject_type=merchant.subject_type, scenarios=merchant.scenarios)
    return sorted(needed - have)


# The risk officer's decisions, which are only possible once the review is taken (risk_review).
_DECISION_VERBS = {"approve": "approve it", "return_for_correction": "return it", "reject": "reject it"}


def _transition(*, application_id: int, actor, name: str, action: str, reason: str = "",
                before_save=None) -> OnboardingApplication:
    with transaction.atomic():
        application = _locked_application(application_id)
        method = getattr(application, name)
        if not can_proceed(method):
            if application.state == ApplicationState.SUBMITTED and name in _DECISION_VERBS:
                # A decision needs the review taken first (submitted → risk_review): say so, not just "cannot".
                raise InvalidState(f"the application is submitted and nobody has taken it for review yet; take the "
                                   f"review first, then {_DECISION_VERBS[name]}")
            raise InvalidState(f"the application is {application.state}; it cannot {name.replace('_', ' ')}")
        before = application.state
        if before_save is not None:
            before_save(application)
        method()
        application.save()
        audit_log(actor=actor, action=action, target=application, reason=reason,
                  data={"from": before, "to": application.state, "merchant_no": application.merchant.merchant_no})
    return application


def application_submit(*, application_id: int, actor) -> OnboardingApplication:
    """Send a complete draft to risk review. Missing documents are named."""
    require_perm(actor, "merchants.change_merchant")

    def check(application):
        missing = missing_documents(application.merchant)
        if missing:
            raise InvalidRequest(f"documents missing: {', '.join(missing)}", param="documents")
        if not application.merchant.settlement_accounts.filter(current=True).exists():
            raise InvalidRequest("settlement_account is required", param="settlement_account")
        application.submitted_at = timezone.now()

    with transaction.atomic():
        application = _transition(application_id=application_id, actor=actor, name="submit",
                                  action="merchants.application.submitted", before_save=check)
        if application.merchant.partner_id:  # the partner is told (merchant-api.md "Partner onboarding")
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=application.merchant_id, type="merchant.submitted")
    return application


def application_review_start(*, application_id: int, actor) -> OnboardingApplication:
    require_perm(actor, "merchants.review_application")

    def take(application):
        application.reviewer = actor if not isinstance(actor, str) and actor is not None else None

    return _transition(application_id=application_id, actor=actor, name="start_review",
                       action="merchants.application.review_started", before_save=take)


def application_approve(*, application_id: int, actor, notes: str = "") -> OnboardingApplication:
    require_perm(actor, "merchants.review_application")

    def decide(application):
        application.review_notes = notes
        application.decided_at = timezone.now()

    with transaction.atomic():
        _transition(application_id=application_id, actor=actor, name="approve",
                    action="merchants.application.approved", reason=notes, before_save=decide)
        # Approval creates the contracts and queues their submission (issue 4 "Flow"); no contract, no approval.
        contracts_create_for_application(application_id=application_id, actor=actor)
    return OnboardingApplication.objects.get(pk=application_id)


def application_return(*, application_id: int, actor, reasons: list[dict]) -> OnboardingApplication:
    """Return for correction with reasons per field: [{"field": "licence_no", "reason": "blurred photo"}]."""
    require_perm(actor, "merchants.review_application")
    if not reasons or not all(isinstance(r, dict) and r.get("reason") for r in reasons):
        raise InvalidRequest("give at least one reason (field and reason) for the clerk", param="reasons")

    def decide(application):
        application.returned_reasons = [{"field": r.get("field", ""), "reason": r["reason"]} for r in reasons]
        application.decided_at = timezone.now()

    with transaction.atomic():
        application = _transition(application_id=application_id, actor=actor, name="return_for_correction",
                                  action="merchants.application.returned",
                                  reason="; ".join(r["reason"] for r in reasons), before_save=decide)
        if application.merchant.partner_id:  # the partner is told (merchant-api.md "Partner onboarding")
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=application.merchant_id, type="merchant.returned")
    return application


def application_reject(*, application_id: int, actor, reason: str) -> OnboardingApplication:
    require_perm(actor, "merchants.review_application")
    if not reason:
        raise InvalidRequest("a reason is required to reject an application", param="reason")

    def decide(application):
        application.review_notes = reason
        application.decided_at = timezone.now()

    with transaction.atomic():
        application = _transition(application_id=application_id, actor=actor, name="reject",
                                  action="merchants.application.rejected", reason=reason, before_save=decide)
        if application.merchant.partner_id:  # the partner is told (merchant-api.md "Partner onboarding")
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=application.merchant_id, type="merchant.rejected")
    return application

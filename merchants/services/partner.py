"""Merchants a partner creates through the API (merchant-api.md "Partner onboarding"; issue 4).

``partner_merchant_create`` is the whole of POST /api/v1/merchants: the draft, the documents that came along and the
optional submission, in one transaction. A create that carries a ``partner_reference`` (the partner's own id of the
merchant) is idempotent the way orders are by ``out_trade_no`` (design §5 rule 5, style.md §9): the same request
again answers the merchant it made; the same reference with other content is an ``idempotency_conflict``. The unique
constraint on ``(partner, partner_reference)`` decides a concurrent double create: the loser's INSERT waits for the
winner's commit, fails, and replays the winner's merchant — or, the same business twice, its duplicate check waits
for that commit under the identity's lock and refuses, and it replays the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from aggpay.errors import IdempotencyConflict, InvalidRequest, InvalidState
from aggpay.fingerprints import request_print
from merchants.models import ApplicationState, IdDocType, Merchant
from merchants.services.locks import lock_merchant
from merchants.services.onboarding import (
    _locked_application,
    application_submit,
    document_add,
    merchant_onboard_draft,
    merchant_record_update,
)
from merchants.services.settlement import merchant_settlement_change

# The character rules of out_trade_no (merchant-api.md "Orders"), 1–64 long.
PARTNER_REFERENCE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Documents one create may carry inline (docs/api.md "Partner onboarding"): all the required ones with a few store
# photos to spare; more go one by one through POST /merchants/{merchant_no}/documents.
MAX_CREATE_DOCUMENTS = 20


def request_prints(*, data: dict, documents: Sequence[tuple[str, UploadedFile]], submit: bool
                   ) -> tuple[str, str, str]:
    """SHA-256 over what a create asks for — the record, each document's type, name and content hash, submit — as
    (the print a merchant made now stores, the old scheme's print of the same request), the documents read once.

    The print covers the *effective* record (_effective_record): a retry that spells out what it left out the first
    time (``"contact_email": null``, ``"legal_person_id_type": "id_card"``) is the same request, and only other
    content is an ``idempotency_conflict`` (merchant-api.md "Errors": different parameters). The old scheme hashed
    the record as given; merchants made before carry it, and a retry of theirs sent as it was still replays. Stop
    accepting it after 2027-03-01: a partner retries a create whose answer it lost within minutes, so three months
    on no retry of one made under the old scheme is still pending.

    ``requested_products`` is a set (the record check stores it sorted, without repeats): the same products in
    another order are the same request. Merchants made before that was so carry the print of the effective record
    with the list as sent, the middle one here; the same 2027-03-01 applies."""
    files = []
    for doc_type, uploaded_file in documents:
        digest = hashlib.sha256()
        uploaded_file.seek(0)
        for chunk in uploaded_file.chunks():
            digest.update(chunk)
        uploaded_file.seek(0)
        files.append([doc_type, uploaded_file.name, digest.hexdigest()])
    effective = _effective_record(data)
    as_a_set = dict(effective)
    if isinstance(as_a_set.get("requested_products"), list):
        as_a_set["requested_products"] = sorted(set(map(str, as_a_set["requested_products"])))
    return (request_print({"record": as_a_set, "documents": files, "submit": bool(submit)}),
            request_print({"record": effective, "documents": files, "submit": bool(submit)}),
            request_print({"record": data, "documents": files, "submit": bool(submit)}))


def _effective_record(data: dict) -> dict:
    """The record as the record checks read it: null and "" say nothing (merchants.services.record reads an optional
    text, date or branch code that is either as absent), an omitted ``legal_person_id_type`` is ``id_card`` and no
    ``stores`` is none (record.check_record)."""
    record = _without_empty(data)
    record.setdefault("legal_person_id_type", IdDocType.ID_CARD.value)
    record.setdefault("stores", [])
    return record


def _without_empty(value):
    if isinstance(value, dict):
        return {key: _without_empty(item) for key, item in value.items() if item is not None and item != ""}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


def _existing(*, partner: Merchant, partner_reference: str) -> Merchant | None:
    return Merchant.objects.filter(partner=partner, partner_reference=partner_reference).first()


def _replay(merchant: Merchant, prints: tuple[str, ...]) -> Merchant:
    if merchant.partner_request_fingerprint not in prints:
        raise IdempotencyConflict(f"partner_reference {merchant.partner_reference} was used with different content "
                                  f"(merchant {merchant.merchant_no})", param="partner_reference")
    return merchant


@transaction.atomic(durable=True)
def partner_merchant_create(*, partner: Merchant, actor, data: dict, partner_reference: str = "",
                            documents: Sequence[tuple[str, UploadedFile]] = (),
                            submit: bool = False) -> tuple[Merchant, bool]:
    """Create ``partner``'s merchant from a record, attach ``documents`` ((doc_type, file) pairs) and, if
    ``submit``, send it for review — all or nothing. Returns (merchant, replayed).

    With a ``partner_reference`` a retry is recognised: (the existing merchant, True) when the request is the same,
    ``IdempotencyConflict`` naming ``partner_reference`` when it is not. A bad document is an ``InvalidRequest``
    whose param is ``documents.<index>.<param of document_add>``.
    """
    # fullmatch: the pattern's $ also matches before a final newline, and "WL-1\n" is not the partner's key
    if partner_reference and not PARTNER_REFERENCE_RE.fullmatch(partner_reference):
        raise InvalidRequest("partner_reference must be 1–64 characters of A-Z, a-z, 0-9, '_' and '-'",
                             param="partner_reference")
    if len(documents) > MAX_CREATE_DOCUMENTS:
        raise InvalidRequest(f"a create carries at most {MAX_CREATE_DOCUMENTS} documents; add the others one by one "
                             "with POST /api/v1/merchants/{merchant_no}/documents", param="documents")
    prints = request_prints(data=data, documents=documents, submit=submit) if partner_reference else ("",)
    print_ = prints[0]
    if partner_reference:
        existing = _existing(partner=partner, partner_reference=partner_reference)
        if existing is not None:
            return _replay(existing, prints), True
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the transaction usable for the replay
            application = merchant_onboard_draft(actor=actor, data=data, partner=partner,
                                                 partner_reference=partner_reference, request_fingerprint=print_)
    except (IntegrityError, InvalidRequest):
        # A concurrent create with this reference committed first: replay it, as if it had committed before the
        # lookup above. The loser learns it from the unique constraint, or — the same business — from the duplicate
        # check, which waits for the winner's commit (refuse_record_duplicates). Without such a merchant the error
        # stands.
        existing = _existing(partner=partner, partner_reference=partner_reference) if partner_reference else None
        if existing is None:
            raise
        return _replay(existing, prints), True
    for index, (doc_type, uploaded_file) in enumerate(documents):
        try:
            document_add(merchant_id=application.merchant_id, actor=actor, doc_type=doc_type,
                         uploaded_file=uploaded_file)
        except InvalidRequest as exc:
            raise InvalidRequest(exc.message, param=f"documents[{index}].{exc.param}" if exc.param else "documents",
                                 extra=exc.extra) from exc
    if submit:
        application_submit(application_id=application.pk, actor=actor)
    return application.merchant, False


@transaction.atomic
def partner_merchant_correct(*, merchant: Merchant, actor, record, changed: bool, submit: bool) -> None:
    """PATCH of an onboarding merchant: replace its open application's record and, if ``submit``, (re)submit it —
    both or neither. ``record(merchant)`` gives the whole corrected record from the merchant as it is under the lock;
    ``changed`` says whether the partner changed any of it. A returned application reopens through the record update
    even when only documents changed.

    The patch is merged into the record read under the application's and merchant's lock, not into a copy read
    before it: two PATCHes at once (one changes the phone, the other the short name) each keep the other's change,
    where the second used to write back the first one's field as it was before (a lost update)."""
    application = (merchant.applications.exclude(state__in=[ApplicationState.REJECTED, ApplicationState.COMPLETED])
                   .order_by("-created_at", "-id").first())
    if application is None:
        raise InvalidState("this merchant has no open application to correct")
    application = _locked_application(application.pk)  # locks its merchant too, in merchant_record_update's order
    if changed or (submit and application.state == ApplicationState.RETURNED):
        merchant_record_update(application_id=application.pk, actor=actor, data=record(application.merchant),
                               partner=merchant.partner)
    if submit:
        application_submit(application_id=application.pk, actor=actor)


@transaction.atomic
def partner_settlement_change(*, merchant: Merchant, actor, account) -> None:
    """PATCH of an active merchant's ``settlement_account``: ask its channels to switch to the account that
    ``account(merchant)`` gives from the merchant as it is under the lock (``merchant_settlement_change``).

    Merged under the lock, as in ``partner_merchant_correct`` and in its order (the latest application, then the
    merchant): a PATCH that waited while an earlier change became the current account (every channel accepted it,
    ``_promote_if_complete``) used to merge into the account read before it waited and ask for that earlier
    change's fields back (a lost update)."""
    application = merchant.applications.order_by("-created_at", "-id").first()
    locked = (_locked_application(application.pk).merchant if application is not None
              else lock_merchant(merchant.pk))
    try:
        merchant_settlement_change(merchant_id=locked.pk, actor=actor, account=account(locked))
    except InvalidState as exc:
        # Every refusal of a PATCH names the field it refuses (merchant-api.md "Errors"): here settlement_account,
        # e.g. while an earlier change is still pending at the channels.
        if exc.param is not None:
            raise
        raise InvalidState(exc.message, param="settlement_account", extra=exc.extra) from exc

"""Onboarding applications (进件): drafting, documents, submission and the risk review — design §4, issue 4.

Every transition locks the application row, re-checks with ``can_proceed`` and writes an audit row in the same
transaction, so two clerks pressing "submit" at once produce one transition and one clear error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import NamedTuple

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import actor_label_for, audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.permissions import require_perm
from merchants.documents import (
    MAX_DOCUMENT_BYTES,
    channel_refusal,
    document_content_type,
    joined_names,
    latest_documents,
)
from merchants.models import (
    ApplicationState,
    Contract,
    ContractState,
    Document,
    DocumentType,
    Merchant,
    OnboardingApplication,
    SettlementAccount,
    Store,
)
from merchants.services.contracts import contracts_create_for_application, onboarding_offers
from merchants.services.locks import lock_application, lock_merchant
from merchants.services.merchants import new_merchant_no
from merchants.services.record import (
    RecordInput,
    refuse_record_duplicates,
    required_documents,
    validate_record,
)
from merchants.validation import required_reason

EDITABLE_STATES = (ApplicationState.DRAFT, ApplicationState.RETURNED)
# An approved application whose contracts are with the channels: its record is corrected only for a contract a
# channel rejected (design §4: rejected → correct and resubmit), see merchant_record_correct.
CORRECTABLE_STATES = (ApplicationState.CONTRACTING, ApplicationState.COMPLETED)
# What risk approved the merchant as (design §1: risk reviews the real business at onboarding): a correction for a
# channel keeps it. A different subject, licence, person, product set or kind of business is for risk to review.
APPROVED_FIELDS = {
    "subject_type": "the subject type",
    "licence_no": "the licence number",
    "legal_person_id_type": "the legal person's ID document type",
    "legal_person_id_number": "the legal person's ID number",
    "requested_products": "the requested products",
}
# Contracts whose channel has (or is reviewing) the record's settlement account: a correction must not move it
# under them — they would go on paying to the old one while the record shows the new one.
HOLDING_STATES = (ContractState.SUBMITTED, ContractState.AUDITING, ContractState.TO_BE_CONFIRMED,
                  ContractState.TO_BE_SIGNED, ContractState.ACTIVE, ContractState.LIMITED, ContractState.SUSPENDED)
SETTLEMENT_FIELDS = ("account_type", "bank_name", "bank_branch", "bank_branch_code", "account_number",
                     "account_holder")
# Record fields the record check leaves optional but a channel's onboarding request cannot go without, per channel
# kind (the adapters' own checks: channels/adapters/wechatpay_merchant.py ``applyment_body``). Sent without one, the
# contract comes back rejected after approval ("onboarding application lacks contact.email"), when the partner can
# no longer patch the record; so submission refuses it first, naming the field (``channel_required_fields``).
CHANNEL_REQUIRED_FIELDS: dict[str, dict[str, str]] = {
    # channel-protocols.md A.13 contact_info.contact_email: WeChat Pay sends the sub-merchant's notices there.
    "wechatpay": {"contact_email": "WeChat Pay's onboarding requires the contact's e-mail (A.13 contact_email)"},
}


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
    try:
        merchant.stores.exclude(pk__in=kept).delete()
    except ProtectedError as exc:  # one-code-pay codes are printed for it (trades.StoreCode)
        numbers = sorted({obj.store.store_no for obj in exc.protected_objects if hasattr(obj, "store")})
        which = f"store {numbers[0]} has" if len(numbers) == 1 else f"stores {', '.join(numbers)} have"
        raise InvalidRequest(f"stores: {which} one-code-pay codes printed, so it cannot be removed; keep it in the "
                             "list", param="stores") from exc


# Record fields whose old and new values an edit's audit row may show (design §5 rule 10: audit data holds no PII):
# what the business is called and sells, where it sells and its bank. Every other field — the people's names, ID
# numbers and dates, phones, e-mail, addresses, licence, the account number and holder — is named with CHANGED only:
# a risk officer re-reviewing sees what moved and reads the value itself on the masked merchant page.
SHOWN_FIELDS = frozenset({
    "subject_type", "short_name", "mcc", "industry", "requested_products", "licence_valid_from",
    "licence_valid_until", "legal_person_id_type",
    "settlement_account.account_type", "settlement_account.bank_name", "settlement_account.bank_branch",
    "settlement_account.bank_branch_code",
})
SHOWN_PARTS = frozenset({"type", "name", "url", "appid", "store_no", "area_code"})  # of scenarios[i] and stores[i]
# The value an audit row gives a changed field it does not show (as channels.services.history.CHANGED).
CHANGED = "(changed)"


def _plain(value):
    """A record value as the audit row's JSON keeps it, with "absent" one value (None, "" and [] alike)."""
    if value in (None, "", []):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _change(changes: dict, name: str, old, new, *, shown: bool) -> None:
    old, new = _plain(old), _plain(new)
    if old != new:
        changes[name] = {"old": old, "new": new} if shown else CHANGED


def record_changes(*, merchant: Merchant, record: RecordInput) -> dict:
    """What writing ``record`` would change of ``merchant``'s stored record, for the edit's audit row: field → {old,
    new} for a field in SHOWN_FIELDS, field → CHANGED for any other; {} when nothing changes. Fields are named as
    the record's ``param`` names them (``contact_phone``, ``settlement_account.account_number``,
    ``stores[0].address``); a store added or a scenario added or removed is named by its index, a store removed as
    ``stores.removed`` with its store numbers. Call it before ``_write_record``."""
    changes: dict = {}
    for key, new in record.merchant.items():
        old = getattr(merchant, key)
        if key == "requested_products":
            old, new = sorted(old or []), sorted(new or [])
        if key == "scenarios":
            continue
        _change(changes, key, old, new, shown=key in SHOWN_FIELDS)
    if "scenarios" in record.merchant:
        old_list, new_list = merchant.scenarios or [], record.merchant["scenarios"] or []
        for i in range(max(len(old_list), len(new_list))):
            old_item = old_list[i] if i < len(old_list) else None
            new_item = new_list[i] if i < len(new_list) else None
            if old_item is None or new_item is None:
                _change(changes, f"scenarios[{i}]", (old_item or {}).get("type"), (new_item or {}).get("type"),
                        shown=True)
                continue
            for part in sorted(set(old_item) | set(new_item)):
                _change(changes, f"scenarios[{i}].{part}", old_item.get(part), new_item.get(part),
                        shown=part in SHOWN_PARTS)
    if record.settlement is not None:
        current = merchant.settlement_accounts.filter(current=True).first()
        for key in SETTLEMENT_FIELDS:
            name = f"settlement_account.{key}"
            _change(changes, name, getattr(current, key, None), record.settlement.get(key), shown=name in SHOWN_FIELDS)
    stored = {store.store_no: store for store in merchant.stores.all()} if merchant.pk else {}
    for i, store in enumerate(record.stores):
        old_store = stored.pop(store.get("store_no"), None)
        if old_store is None:
            _change(changes, f"stores[{i}]", None, store.get("store_no"), shown=True)
            continue
        for part in ("name", "area_code", "address"):
            _change(changes, f"stores[{i}].{part}", getattr(old_store, part), store.get(part),
                    shown=part in SHOWN_PARTS)
    if stored:
        changes["stores.removed"] = sorted(stored)
    return changes


def merchant_onboard_draft(*, actor, data: dict, partner: Merchant | None = None, partner_reference: str = "",
                           request_fingerprint: str = "") -> OnboardingApplication:
    """Create a merchant and its draft application from a record (form, import row or partner API).

    ``partner_reference`` and ``request_fingerprint`` come from the partner API (merchants.services.partner): a
    reference the partner already used is an IntegrityError from the unique constraint, for the caller to handle.
    """
    require_perm(actor, "merchants.add_merchant")
    record = validate_record(data)
    with transaction.atomic():
        # Checked in the transaction that inserts, under the identity's lock: one of two creates sent at once wins.
        refuse_record_duplicates(merchant=record.merchant, partner=partner)
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
        return lock_application(application_id)  # and its merchant: merchants/services/locks.py
    except OnboardingApplication.DoesNotExist:
        raise NotFound(f"no application {application_id}")


def merchant_record_update(*, application_id: int, actor, data: dict,
                           partner: Merchant | None = None) -> OnboardingApplication:
    """Correct a draft or returned application's record. A returned application goes back to draft.

    ``partner``: the partner correcting its merchant through the API, so that a duplicate it does not own is not
    named to it (``check_record_duplicates``).
    """
    require_perm(actor, "merchants.change_merchant")
    record = validate_record(data)
    with transaction.atomic():
        application = _locked_application(application_id)
        if application.state not in EDITABLE_STATES:
            raise InvalidState(f"the application is {application.state}; only draft or returned ones can be edited")
        merchant = lock_merchant(application.merchant_id)
        if _identity_changes(merchant, record):
            refuse_record_duplicates(merchant=record.merchant, exclude_merchant_id=merchant.pk, partner=partner)
        before = application.state
        if application.state == ApplicationState.RETURNED:
            application.reopen()
            application.save()
        # The row names what changed, so that a risk officer re-reviewing a resubmission sees what the clerk did;
        # an edit that changed nothing still writes one (it may have reopened a returned application): changes {}.
        changes = record_changes(merchant=merchant, record=record)
        _write_record(merchant=merchant, record=record)
        audit_log(actor=actor, action="merchants.application.edited", target=application,
                  data={"from": before, "to": application.state, "changes": changes})
    return application


def _identity_changes(merchant: Merchant, record: RecordInput) -> bool:
    """Whether an edit changes what identifies the business (``check_record_duplicates``). Only then is it compared
    with the other merchants: an edit of a phone number must not be refused for a duplicate that was there before
    the check existed — that one is for a person to resolve, not a reason to freeze the draft."""
    return any((getattr(merchant, key) or "") != (record.merchant.get(key) or "")
               for key in ("subject_type", "licence_no", "legal_person_id_number"))


def rejected_contracts(merchant: Merchant) -> list[Contract]:
    return list(merchant.contracts.filter(state=ContractState.REJECTED).select_related("channel_account")
                .order_by("channel_account__code"))


def record_correctable(application: OnboardingApplication | None) -> bool:
    """Whether ``merchant_record_correct`` would take this application: approved, and a channel rejected one of
    its merchant's contracts."""
    return (application is not None and application.state in CORRECTABLE_STATES
            and application.merchant.contracts.filter(state=ContractState.REJECTED).exists())


def merchant_record_correct(*, application_id: int, actor, data: dict) -> OnboardingApplication:
    """Correct an approved merchant's record after a channel rejected one of its contracts, so the clerk can then
    resubmit that contract (``contract_resubmit`` sends the record as it is now). Same checks and audit as
    ``merchant_record_update``; the application keeps its state (risk's approval stands). Two things a correction
    cannot do, each refused naming its field with nothing written:

    * change what risk approved (APPROVED_FIELDS, and the kinds of business scenario);
    * move the settlement account while another channel has it (HOLDING_STATES): that channel would pay to the old
      account while the record showed the new one — once active, a settlement account change asks every channel.
    """
    require_perm(actor, "merchants.change_merchant")
    record = validate_record(data)
    with transaction.atomic():
        application = _locked_application(application_id)
        merchant = lock_merchant(application.merchant_id)
        rejected = rejected_contracts(merchant)
        if application.state not in CORRECTABLE_STATES or not rejected:
            raise InvalidState(f"the application is {application.state} and no channel rejected a contract: only a "
                               "draft or returned application, or one a channel rejected, can be edited")
        _check_keeps_approval(merchant, record)
        _check_settlement_not_held(merchant, record)
        changes = record_changes(merchant=merchant, record=record)
        _write_record(merchant=merchant, record=record)
        audit_log(actor=actor, action="merchants.application.edited", target=application,
                  data={"from": application.state, "to": application.state,
                        "rejected_by": [c.channel_account.code for c in rejected], "changes": changes})
    return application


def _check_keeps_approval(merchant: Merchant, record: RecordInput) -> None:
    for key, what in APPROVED_FIELDS.items():
        before, after = getattr(merchant, key), record.merchant[key]
        if key == "requested_products":
            before, after = sorted(before or []), sorted(after)
        if (before or "") != (after or ""):
            raise InvalidRequest(f"{key}: {what} was approved by risk and cannot change in a correction for a "
                                 "channel; a different merchant needs its own review", param=key)
    if {s["type"] for s in merchant.scenarios or []} != {s["type"] for s in record.merchant["scenarios"]}:
        raise InvalidRequest("scenarios: the kinds of business scenario were approved by risk and cannot change in a "
                             "correction for a channel (names, URLs and app ids can)", param="scenarios")


def _check_settlement_not_held(merchant: Merchant, record: RecordInput) -> None:
    if record.settlement is None:
        return
    current = merchant.settlement_accounts.filter(current=True).first()
    if current is not None and all(getattr(current, k) == record.settlement.get(k, "") for k in SETTLEMENT_FIELDS):
        return
    holders = [c.channel_account.name for c in merchant.contracts.filter(state__in=HOLDING_STATES)
               .select_related("channel_account").order_by("channel_account__code")]
    if holders:
        verb = "has" if len(holders) == 1 else "have"
        raise InvalidRequest(f"settlement_account: {', '.join(holders)} already {verb} the current account and would "
                             "go on paying to it; once the merchant is active, change it with a settlement account "
                             "change, which every channel confirms", param="settlement_account")


def document_add(*, merchant_id: int, actor, doc_type: str, uploaded_file) -> Document:
    """Store an uploaded document after checking its declared type, size, and type and wholeness by content (not by
    name: ``document_content_type``, the check the batch import's dry run makes too).

    While channels rejected contracts of the merchant, a document uploaded now is the one their resubmissions send
    (the latest of its type, channel_application ``upload_documents``) and no submission checks it again, so it is
    checked here against those channels' formats (``resubmission_fit``):

    * none of them can take it (a PDF licence when only WeChat Pay waits for it): refused, naming the document and
      the channels, and nothing is stored. Stored, it would be of no use and would stand in front of the document of
      that type they can take, so every resubmission would be refused (``contract_resubmit``) until it was
      replaced.
    * some can take it (a PDF scan for the bank while WeChat Pay waits too): stored — it may be just what the bank
      asked for, and the clerk can resubmit to the bank, then upload a photo for WeChat Pay — and
      ``resubmission_warning`` tells the clerk at once which channels cannot take it, rather than the resubmit button
      later. Refusing it would force one file on both when the clerk may rightly want each its own.
    """
    require_perm(actor, "merchants.change_merchant")
    if doc_type not in DocumentType.values:
        raise InvalidRequest(f"doc_type must be one of {', '.join(DocumentType.values)}", param="doc_type")
    size = uploaded_file.size
    if size > MAX_DOCUMENT_BYTES:  # before reading it: a file this large is not read into memory
        raise InvalidRequest(f"the file is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} (5 MB)", param="file")
    uploaded_file.seek(0)
    content = uploaded_file.read()
    uploaded_file.seek(0)
    content_type = document_content_type(content, field="file")
    size, sha256 = len(content), hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        # The merchant's row lock also waits for a transition of its application (_locked_application locks both).
        merchant = lock_merchant(merchant_id)
        refusal = documents_refusal(merchant)
        if refusal is not None:
            raise InvalidState(refusal)
        fit = resubmission_fit(merchant, doc_type=doc_type, content_type=content_type, size=size)
        if fit.refusal is not None and not fit.taking:
            contracts = "contract" if len(fit.refusing) == 1 else "contracts"
            raise InvalidRequest(f"{fit.refusal} (it would go with the resubmission of the {contracts} "
                                 f"{joined_names(fit.refusing)} rejected)", param="file")
        document = Document.objects.create(
            merchant=merchant, doc_type=doc_type, file=uploaded_file, content_type=content_type, size=size,
            sha256=sha256, uploaded_by=actor_label_for(actor),
        )
        audit_log(actor=actor, action="merchants.document.added", target=merchant,
                  data={"doc_type": doc_type, "size": size, "sha256": document.sha256})
    return document


def documents_refusal(merchant: Merchant) -> str | None:
    """Why no document can be added to ``merchant`` now, or None when one can: the rule of ``document_add`` and of
    the merchant page's upload form. Documents are added while the application is a draft or returned, or when a
    channel rejected a contract and wants a new picture (before the clerk resubmits it). Not while risk reviews it
    or the channels are contracted (they have the record as it was sent), and never once risk rejected it: that is
    final (docs/api.md), nothing can resubmit it, so a document there would only suggest otherwise."""
    latest = merchant.applications.order_by("-created_at", "-id").first()
    if latest is not None and latest.state == ApplicationState.REJECTED:
        return ("the application was rejected by risk, which is final: it cannot be corrected or resubmitted, so no "
                "document is added to it; a business that comes back is onboarded as a new merchant")
    open_app = merchant.applications.exclude(state__in=[ApplicationState.REJECTED, ApplicationState.COMPLETED]).first()
    if open_app is None or open_app.state in EDITABLE_STATES:
        return None
    if merchant.contracts.filter(state=ContractState.REJECTED).exists():
        return None
    return f"the application is {open_app.state}; documents can be added while it is a draft or a channel rejected it"


class ResubmissionFit(NamedTuple):
    """How a document fits the channels that rejected a contract of its merchant (``resubmission_fit``)."""
    refusal: str | None  # ``channel_refusal``'s sentence: the document, the channels that cannot take it, what to do
    refusing: list[str]  # those channels' names
    taking: list[str]  # the names of the ones that can take it


def resubmission_fit(merchant: Merchant, *, doc_type: str, content_type: str, size: int) -> ResubmissionFit:
    """Whether the channels that rejected a contract of ``merchant`` can take this document, which their
    resubmissions would send; no refusal and no names when no contract is rejected."""
    rejected = (merchant.contracts.filter(state=ContractState.REJECTED).select_related("channel_account")
                .order_by("channel_account__name", "channel_account_id"))
    refusing: dict[str, Mapping[str, int]] = {}
    taking: list[str] = []
    for contract in rejected:
        account = contract.channel_account
        accepted = account.adapter_class.accepted_documents
        if accepted is not None and channel_refusal(doc_type=doc_type, content_type=content_type, size=size,
                                                    channels={account.name: accepted}) is not None:
            refusing[account.name] = accepted
        else:
            taking.append(account.name)
    refusal = (channel_refusal(doc_type=doc_type, content_type=content_type, size=size, channels=refusing)
               if refusing else None)
    return ResubmissionFit(refusal, list(refusing), taking)


def resubmission_warning(document: Document) -> str | None:
    """What a clerk is told beside "uploaded" when ``document`` was stored although a channel that rejected a
    contract cannot take it (``document_add`` stores it when another such channel can): which channels cannot, and
    that their contracts are not resubmitted while it is the latest of its type. None when every one can."""
    fit = resubmission_fit(document.merchant, doc_type=document.doc_type, content_type=document.content_type,
                           size=document.size)
    if fit.refusal is None:
        return None
    which = "contract is" if len(fit.refusing) == 1 else "contracts are"
    return (f"{fit.refusal}. It is kept for {joined_names(fit.taking)}, which can take it; {joined_names(fit.refusing)}"
            f"'s {which} not resubmitted while it is the latest {document.doc_type}.")


def missing_documents(merchant: Merchant) -> list[str]:
    have = set(merchant.documents.values_list("doc_type", flat=True))
    needed = required_documents(subject_type=merchant.subject_type, scenarios=merchant.scenarios)
    return sorted(needed - have)


def unusable_documents(merchant: Merchant) -> list[str]:
    """One sentence per document a channel that will onboard the merchant cannot take (its format or size), naming
    the document and the channels (``merchants.documents.channel_refusal``); [] when they can take every one.

    The channels are the accounts approval will contract (``contracts_create_for_application``: enabled accounts
    whose enabled products onboard a requested product); each is asked through its adapter's ``accepted_documents``.
    The documents are the ones they will receive: the latest of each type, all uploaded to every channel with a
    picture upload (``channel_application.upload_documents``) — so a PDF licence when only a bank onboards is fine."""
    offers = (onboarding_offers(merchant.requested_products).select_related("account")
              .order_by("account__name", "account_id"))
    channels = {}
    for offer in offers:
        accepted = offer.account.adapter_class.accepted_documents
        if accepted is not None:
            channels[offer.account.name] = accepted
    if not channels:
        return []
    refusals = (channel_refusal(doc_type=doc_type, content_type=document.content_type, size=document.size,
                                channels=channels) for doc_type, document in sorted(latest_documents(merchant).items()))
    return [refusal for refusal in refusals if refusal is not None]


def channel_required_fields(merchant: Merchant) -> dict[str, tuple[str, list[str]]]:
    """The record fields ``merchant`` leaves empty that a channel approval will contract requires
    (CHANNEL_REQUIRED_FIELDS): field → (why, the channels' names), in the table's order; {} when none is missing.
    The channels are the ones ``unusable_documents`` asks: the accounts that onboard a requested product."""
    offers = (onboarding_offers(merchant.requested_products).select_related("account")
              .order_by("account__name", "account_id"))
    lacking: dict[str, tuple[str, list[str]]] = {}
    for offer in offers:
        for field, why in CHANNEL_REQUIRED_FIELDS.get(offer.account.kind, {}).items():
            if getattr(merchant, field) in (None, ""):
                names = lacking.setdefault(field, (why, []))[1]
                if offer.account.name not in names:
                    names.append(offer.account.name)
    return lacking


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
    """Send a complete draft to risk review. Missing documents are named, and so are documents a channel that will
    onboard the merchant cannot take (``unusable_documents``): found now, not after approval from the channel."""
    require_perm(actor, "merchants.change_merchant")

    def check(application):
        missing = missing_documents(application.merchant)
        if missing:
            raise InvalidRequest(f"documents missing: {', '.join(missing)}", param="documents")
        unusable = unusable_documents(application.merchant)
        if unusable:
            raise InvalidRequest(f"documents the channels cannot take: {'. '.join(unusable)}", param="documents")
        if not application.merchant.settlement_accounts.filter(current=True).exists():
            raise InvalidRequest("settlement_account is required", param="settlement_account")
        lacking = channel_required_fields(application.merchant)
        if lacking:
            field, (why, channels) = next(iter(lacking.items()))
            raise InvalidRequest(f"{field} is required: {why}, and {joined_names(channels)} will onboard this "
                                 "merchant for the requested products", param=field)
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
    reasons = [{**r, "reason": required_reason(r["reason"], verb="return an application", field=f"reasons[{i}].reason")}
               for i, r in enumerate(reasons)]

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
    reason = required_reason(reason, verb="reject an application")

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

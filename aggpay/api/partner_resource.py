"""The merchant as the partner onboarding API shows it (merchant-api.md "Partner onboarding"), and the
``merchant.*`` events that carry it.

One representation serves ``GET /api/v1/merchants/{merchant_no}``, the list, and the ``data.object`` of the
``merchant.*`` events a partner receives (merchant-api.md: "the object as the API returns it"). PII is masked
everywhere in it (design §5 rule 10): the partner sent those values and never needs them back in clear.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from rest_framework import serializers

from aggpay.masking import mask_bank_account, mask_email, mask_id_number, mask_name, mask_phone
from merchants.models import (
    AccountType,
    ApplicationState,
    ContractState,
    DocumentType,
    IdDocType,
    Merchant,
    MerchantState,
    SubjectType,
)
from merchants.services.record import SCENARIO_TYPES, required_documents
from merchants.services.settlement import paying_account

# merchant-api.md "Partner onboarding": the partner is told the sub-merchant ids "once active".
SUB_MERCHANT_ID_STATES = (ContractState.ACTIVE, ContractState.LIMITED, ContractState.SUSPENDED,
                          ContractState.TERMINATED)
SIGN_URL_STATES = (ContractState.TO_BE_CONFIRMED, ContractState.TO_BE_SIGNED)
MERCHANT_EVENT_TYPES = ("merchant.submitted", "merchant.returned", "merchant.rejected",
                        "merchant.contract_updated", "merchant.activated", "merchant.frozen", "merchant.unfrozen")


# --- output serializers (documentation and rendering) ---------------------------------------------------------
class PartnerReasonOutputSerializer(serializers.Serializer):
    field = serializers.CharField(allow_blank=True, help_text="the record field concerned; empty when general")
    reason = serializers.CharField(allow_blank=True)


class PartnerApplicationOutputSerializer(serializers.Serializer):
    state = serializers.CharField(help_text="`draft`, `submitted`, `risk_review`, `returned` (correct it with "
                                            "PATCH), `rejected`, `approved`, `contracting`, `completed`")
    returned_reasons = PartnerReasonOutputSerializer(many=True, help_text="why it was returned, per field: the "
                                                     "current round's only (empty once it is resubmitted)")
    rejection_reason = serializers.CharField(allow_null=True, help_text="why risk rejected it (final) when the "
                                                                        "state is `rejected`; otherwise null")
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True, help_text="when risk returned, rejected or approved it "
                                                                      "in the current round; null while it waits")
    created_at = serializers.DateTimeField()


class PartnerAppOutputSerializer(serializers.Serializer):
    app_id = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField(), help_text="`payments`, `onboarding`")
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class PartnerContractRateOutputSerializer(serializers.Serializer):
    product = serializers.CharField()
    rate = serializers.DecimalField(max_digits=8, decimal_places=6, help_text="decimal string, e.g. `0.003800`")


class PartnerContractOutputSerializer(serializers.Serializer):
    channel = serializers.CharField(help_text="`wechatpay`, `alipay` or `bank`")
    channel_account = serializers.CharField(help_text="which of aggpay's accounts at that channel, e.g. `bank-a`")
    state = serializers.CharField(help_text="`pending`, `submitted`, `auditing`, `rejected`, `to_be_confirmed` "
                                            "(the merchant verifies its account), `to_be_signed` (the merchant "
                                            "signs at `sign_url`), `active`, `limited`, `suspended`, `terminated`")
    products = PartnerContractRateOutputSerializer(many=True)
    sub_merchant_id = serializers.CharField(allow_null=True, help_text="the channel's id of the merchant, once "
                                                                        "active (`sub_mchid`, `smid`, bank no)")
    rejection_reasons = PartnerReasonOutputSerializer(many=True, help_text="the channel's reasons when rejected")
    sign_url = serializers.CharField(allow_null=True, help_text="where the merchant verifies or signs, when asked")
    updated_at = serializers.DateTimeField()


class PartnerDocumentOutputSerializer(serializers.Serializer):
    doc_type = serializers.ChoiceField(choices=DocumentType.choices)
    content_type = serializers.CharField(help_text="detected from the content: image/jpeg, image/png, application/pdf")
    size = serializers.IntegerField(help_text="bytes")
    sha256 = serializers.CharField(help_text="hex SHA-256 of the content")
    created_at = serializers.DateTimeField()


class PartnerDocumentAddedSerializer(PartnerDocumentOutputSerializer):
    warning = serializers.CharField(
        allow_null=True,
        help_text="null, or — when a channel rejected a contract of the merchant and the document was kept for one "
                  "that can take it — which channels cannot take it: their contracts are not resubmitted while it "
                  "is the latest of its type")


class PartnerScenarioOutputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=[(t, t) for t in SCENARIO_TYPES])
    name = serializers.CharField()
    url = serializers.CharField(required=False, help_text="website scenarios")
    appid = serializers.CharField(required=False, help_text="app, mini program and official account scenarios")


class PartnerStoreOutputSerializer(serializers.Serializer):
    store_no = serializers.CharField()
    name = serializers.CharField()
    area_code = serializers.CharField()
    address = serializers.CharField()


class PartnerSettlementOutputSerializer(serializers.Serializer):
    account_type = serializers.ChoiceField(choices=AccountType.choices)
    bank_name = serializers.CharField()
    bank_branch = serializers.CharField(allow_blank=True)
    bank_branch_code = serializers.CharField(allow_blank=True)
    account_number = serializers.CharField(help_text="masked: last 4 digits")
    account_holder = serializers.CharField(help_text="masked for personal accounts")


class PartnerPaysToOutputSerializer(serializers.Serializer):
    bank_name = serializers.CharField()
    account_number = serializers.CharField(help_text="masked: last 4 digits")


class PartnerSettlementChangeChannelOutputSerializer(serializers.Serializer):
    channel_account = serializers.CharField()
    state = serializers.CharField(help_text="`pending`, `auditing`, `succeeded`, `failed`")
    message = serializers.CharField(allow_blank=True, help_text="the channel's words, e.g. why it refused")
    pays_to = PartnerPaysToOutputSerializer(
        allow_null=True, help_text="the account this channel pays the merchant to now: the new one once it accepted "
                                   "(this change or an earlier one), until then the one it had")


class PartnerSettlementChangeOutputSerializer(serializers.Serializer):
    state = serializers.CharField(help_text="`pending` while any channel is still verifying; `succeeded` when all "
                                            "accepted (the new account is now `settlement_account`); `failed` when "
                                            "one refused: `settlement_account` stays the old account, and the "
                                            "channel that refused keeps paying to it, but the channels that "
                                            "accepted already pay to the new one (a channel's switch cannot be "
                                            "taken back) — each channel's `pays_to` says where it pays. Asking the "
                                            "change again, once the refusal's cause is fixed, brings them together")
    bank_name = serializers.CharField()
    account_number = serializers.CharField(help_text="masked: last 4 digits")
    channels = PartnerSettlementChangeChannelOutputSerializer(many=True)
    created_at = serializers.DateTimeField()


class PartnerMerchantOutputSerializer(serializers.Serializer):
    merchant_no = serializers.CharField()
    partner_reference = serializers.CharField(allow_null=True, help_text="your own id of the merchant, as sent "
                                                                         "when creating it; null if none was sent")
    state = serializers.ChoiceField(choices=MerchantState.choices, help_text="`onboarding` until a contract is "
                                                                             "active, then `active`")
    subject_type = serializers.ChoiceField(choices=SubjectType.choices)
    legal_name = serializers.CharField()
    short_name = serializers.CharField()
    licence_no = serializers.CharField(allow_blank=True)
    licence_valid_from = serializers.DateField(allow_null=True)
    licence_valid_until = serializers.DateField(allow_null=True, help_text="null: long-term")
    registered_address = serializers.CharField(allow_blank=True)
    legal_person_name = serializers.CharField(help_text="masked")
    legal_person_id_type = serializers.ChoiceField(choices=IdDocType.choices)
    legal_person_id_number = serializers.CharField(help_text="masked")
    legal_person_id_valid_from = serializers.DateField(allow_null=True)
    legal_person_id_valid_until = serializers.DateField(allow_null=True, help_text="null: long-term")
    contact_name = serializers.CharField(help_text="masked")
    contact_phone = serializers.CharField(help_text="masked")
    contact_email = serializers.CharField(allow_blank=True, help_text="masked")
    service_phone = serializers.CharField(allow_blank=True)
    mcc = serializers.CharField(allow_blank=True)
    industry = serializers.CharField(allow_blank=True)
    requested_products = serializers.ListField(child=serializers.CharField())
    scenarios = PartnerScenarioOutputSerializer(many=True)
    stores = PartnerStoreOutputSerializer(many=True)
    settlement_account = PartnerSettlementOutputSerializer(allow_null=True)
    settlement_change = PartnerSettlementChangeOutputSerializer(
        allow_null=True, help_text="the latest settlement account change (active merchants), followed at every "
                                   "channel; null when none was asked for")
    application = PartnerApplicationOutputSerializer(allow_null=True, help_text="the latest application")
    documents = PartnerDocumentOutputSerializer(many=True)
    missing_documents = serializers.ListField(child=serializers.CharField(),
                                              help_text="document types still needed before submitting")
    contracts = PartnerContractOutputSerializer(many=True, help_text="one per channel account, after approval")
    apps = PartnerAppOutputSerializer(many=True, help_text="the merchant's own API apps, oldest first: its payments "
                                                           "app is issued when its first contract goes active. Never "
                                                           "the secret: aggpay's staff give it to the merchant")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PartnerMerchantListOutputSerializer(serializers.Serializer):
    data = PartnerMerchantOutputSerializer(many=True, help_text="newest first")
    has_more = serializers.BooleanField()


# --- building it ------------------------------------------------------------------------------------------------
def with_resource_data(queryset: QuerySet[Merchant]) -> QuerySet[Merchant]:
    """Prefetch what ``merchant_resource`` reads, so a page of merchants costs a fixed number of queries."""
    from merchants.models import Contract, OnboardingApplication, SettlementAccount, SettlementChange

    return queryset.prefetch_related(
        Prefetch("applications", queryset=OnboardingApplication.objects.order_by("-created_at", "-id")),
        "documents",
        "stores",
        "apps",
        Prefetch("settlement_accounts", queryset=SettlementAccount.objects.filter(current=True),
                 to_attr="current_accounts"),
        Prefetch("contracts", queryset=Contract.objects.select_related("channel_account").prefetch_related("rates")
                 .order_by("created_at", "id")),
        Prefetch("settlement_changes", queryset=SettlementChange.objects.select_related(
            "contract__channel_account", "new_account").order_by("-created_at", "-id")),
    )


def _reasons(items) -> list[dict]:
    reasons = []
    for item in items or []:
        if isinstance(item, dict):
            reasons.append({"field": str(item.get("field") or ""), "reason": str(item.get("reason") or "")})
        else:
            reasons.append({"field": "", "reason": str(item)})
    return reasons


def _settlement(merchant: Merchant) -> dict | None:
    account = _current_account(merchant)
    if account is None:
        return None
    personal = account.account_type == AccountType.PERSONAL
    return {
        "account_type": account.account_type,
        "bank_name": account.bank_name,
        "bank_branch": account.bank_branch,
        "bank_branch_code": account.bank_branch_code,
        "account_number": mask_bank_account(account.account_number),
        "account_holder": mask_name(account.account_holder) if personal else account.account_holder,
    }


def _current_account(merchant: Merchant):
    accounts = merchant.current_accounts if hasattr(merchant, "current_accounts") else list(
        merchant.settlement_accounts.filter(current=True))
    return accounts[0] if accounts else None


def _pays_to(account) -> dict | None:
    if account is None:
        return None
    return {"bank_name": account.bank_name, "account_number": mask_bank_account(account.account_number)}


def _settlement_change(merchant: Merchant) -> dict | None:
    changes = list(merchant.settlement_changes.all())  # newest first
    if not changes:
        return None
    latest = [change for change in changes if change.new_account_id == changes[0].new_account_id]
    states = {change.state for change in latest}
    overall = "failed" if "failed" in states else ("pending" if states - {"succeeded"} else "succeeded")
    account = latest[0].new_account
    current = _current_account(merchant)

    def pays_to(change) -> dict | None:  # merchants.services.settlement.settlement_by_channel, from what is loaded
        return _pays_to(paying_account([c for c in changes if c.contract_id == change.contract_id], current))

    return {
        "state": overall,
        "bank_name": account.bank_name,
        "account_number": mask_bank_account(account.account_number),
        "channels": [{"channel_account": change.contract.channel_account.code, "state": change.state,
                      "message": change.message, "pays_to": pays_to(change)}
                     for change in sorted(latest, key=lambda c: c.pk)],
        "created_at": min(change.created_at for change in latest),
    }


def _application(merchant: Merchant) -> dict | None:
    applications = list(merchant.applications.all())
    if not applications:
        return None
    application = applications[0]
    # returned_reasons and decided_at stay on the row after a return; once it is resubmitted (submitted_at after
    # decided_at) they are the previous round's and risk has not decided this one: not shown as if it had.
    earlier = (application.decided_at is not None and application.submitted_at is not None
               and application.decided_at < application.submitted_at)
    return {
        "state": application.state,
        "returned_reasons": [] if earlier else _reasons(application.returned_reasons),
        "rejection_reason": application.review_notes if application.state == ApplicationState.REJECTED else None,
        "submitted_at": application.submitted_at,
        "decided_at": None if earlier else application.decided_at,
        "created_at": application.created_at,
    }


def _contract(contract) -> dict:
    return {
        "channel": contract.channel_account.kind,
        "channel_account": contract.channel_account.code,
        "state": contract.state,
        "products": [{"product": rate.product, "rate": rate.rate}
                     for rate in sorted(contract.rates.all(), key=lambda r: r.product)],
        "sub_merchant_id": (contract.sub_mchid or None) if contract.state in SUB_MERCHANT_ID_STATES else None,
        "rejection_reasons": _reasons(contract.rejection_reasons) if contract.state == ContractState.REJECTED else [],
        "sign_url": (contract.sign_url or None) if contract.state in SIGN_URL_STATES else None,
        "updated_at": contract.updated_at,
    }


def merchant_resource(merchant: Merchant) -> dict:
    """The partner's view of one of its merchants, rendered (JSON-ready)."""
    documents = sorted(merchant.documents.all(), key=lambda d: (d.created_at, d.pk))
    have = {document.doc_type for document in documents}
    needed = required_documents(subject_type=merchant.subject_type, scenarios=merchant.scenarios or [])
    data = {
        "merchant_no": merchant.merchant_no,
        "partner_reference": merchant.partner_reference or None,
        "state": merchant.state,
        "subject_type": merchant.subject_type,
        "legal_name": merchant.legal_name,
        "short_name": merchant.short_name,
        "licence_no": merchant.licence_no,
        "licence_valid_from": merchant.licence_valid_from,
        "licence_valid_until": merchant.licence_valid_until,
        "registered_address": merchant.registered_address,
        "legal_person_name": mask_name(merchant.legal_person_name),
        "legal_person_id_type": merchant.legal_person_id_type,
        "legal_person_id_number": mask_id_number(merchant.legal_person_id_number),
        "legal_person_id_valid_from": merchant.legal_person_id_valid_from,
        "legal_person_id_valid_until": merchant.legal_person_id_valid_until,
        "contact_name": mask_name(merchant.contact_name),
        "contact_phone": mask_phone(merchant.contact_phone),
        "contact_email": mask_email(merchant.contact_email),
        "service_phone": merchant.service_phone,
        "mcc": merchant.mcc,
        "industry": merchant.industry,
        "requested_products": list(merchant.requested_products or []),
        "scenarios": list(merchant.scenarios or []),
        "stores": [{"store_no": s.store_no, "name": s.name, "area_code": s.area_code, "address": s.address}
                   for s in sorted(merchant.stores.all(), key=lambda s: s.store_no)],
        "settlement_account": _settlement(merchant),
        "settlement_change": _settlement_change(merchant),
        "application": _application(merchant),
        "documents": [{"doc_type": d.doc_type, "content_type": d.content_type, "size": d.size, "sha256": d.sha256,
                       "created_at": d.created_at} for d in documents],
        "missing_documents": sorted(needed - have),
        "contracts": [_contract(contract) for contract in merchant.contracts.all()],
        # The merchant's own apps (its payments app comes with its first active contract, merchants.services
        # .activation), so the partner can tell the merchant its app_id; the secret is never here (design §5 rule
        # 10): staff reveal it to the merchant (app_secret_reveal).
        "apps": [{"app_id": app.app_id, "scopes": list(app.scopes or []), "active": app.active,
                  "created_at": app.created_at}
                 for app in sorted(merchant.apps.all(), key=lambda a: (a.created_at, a.pk))],
        "created_at": merchant.created_at,
        "updated_at": merchant.updated_at,
    }
    return _plain(PartnerMerchantOutputSerializer(data).data)


def _plain(value):
    """ReturnDict/OrderedDict → dict, recursively: what is stored in events must be plain JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def partner_merchant(*, partner: Merchant, merchant_no: str) -> Merchant | None:
    """One of ``partner``'s merchants, ready for ``merchant_resource``; None for anyone else's (design §5 rule 11)."""
    return with_resource_data(Merchant.objects.filter(partner=partner, merchant_no=merchant_no)).first()


# --- merchant.* events --------------------------------------------------------------------------------------------
def partner_event_emit(*, merchant_id: int, type: str):
    """Tell the partner that onboarded ``merchant_id`` about a change, in the caller's transaction.

    Called from the onboarding services at the points merchant-api.md names (submitted, returned, rejected, each
    contract state change, activated), and when risk freezes or unfreezes the merchant (frozen, unfrozen). The event belongs to the partner (its apps with the ``onboarding`` scope receive
    and list it); its object is the merchant, so ``sequence`` orders all of one merchant's events.
    """
    from trades.services.events import event_emit

    if type not in MERCHANT_EVENT_TYPES:
        raise ValueError(f"unknown merchant event type {type!r}")
    merchant = with_resource_data(Merchant.objects.select_related("partner").filter(pk=merchant_id)).get()
    if merchant.partner is None or not merchant.partner.is_partner:
        # A partner risk stopped is told nothing more of the merchants it onboarded (its event feed refuses it too,
        # trades.services.events.events_for_app). Bug: a revoked partner's notify URL still received
        # merchant.frozen with the merchant's whole record.
        return None
    return event_emit(merchant=merchant.partner, type=type, obj_type="merchant", obj_id=merchant.merchant_no,
                      data=merchant_resource(merchant))


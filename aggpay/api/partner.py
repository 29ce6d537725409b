"""The partner onboarding API (merchant-api.md "Partner onboarding"; issue 4 "Partner onboarding API").

Apps with the ``onboarding`` scope whose merchant is a partner (``is_partner``) submit, correct and follow their
own merchants — never another partner's: every lookup is by ``(partner, merchant_no)`` and anything else is a 404
(design §5 rule 11). The record is checked by ``merchants.services.record.validate_record``, the same check the
clerks' form and the batch import use; the serializers here only pin down JSON types (so that a number where text
belongs is a 400 naming the field, not a crash) and refuse unknown fields (a misspelt field is never dropped
silently).

    POST  /merchants                           the record (+ optional inline documents, + "submit": true);
                                               idempotent by the partner's own "partner_reference"
    GET   /merchants                           list, newest first
    GET   /merchants/{merchant_no}             application, per-channel contracts, sub-merchant ids (PII masked)
    PATCH /merchants/{merchant_no}             JSON merge patch (RFC 7396) of the record while draft/returned;
                                               only settlement_account once active
    POST  /merchants/{merchant_no}/documents   {"doc_type", "filename", "content_base64"}
"""

from __future__ import annotations

import base64
import binascii
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from aggpay.api.lists import ListParamsSerializer, page, parse_list_params
from aggpay.api.partner_resource import (
    PartnerDocumentAddedSerializer,
    PartnerMerchantListOutputSerializer,
    PartnerMerchantOutputSerializer,
    merchant_resource,
    partner_merchant,
    with_resource_data,
)
from aggpay.api.permissions import HasScope, IsMerchantApp
from aggpay.api.schema import api_schema
from aggpay.api.strict import StrictSerializer, TextField
from aggpay.api.views import MerchantAPIView, api_actor
from aggpay.errors import InvalidRequest, InvalidState
from channels.adapters.base import PRODUCTS
from merchants.models import (
    AccountType,
    Document,
    DocumentType,
    IdDocType,
    Merchant,
    MerchantApp,
    MerchantState,
    SubjectType,
)
from merchants.services.onboarding import document_add, resubmission_warning
from merchants.services.partner import (
    MAX_CREATE_DOCUMENTS,
    PARTNER_REFERENCE_RE,
    partner_merchant_correct,
    partner_merchant_create,
    partner_settlement_change,
)
from merchants.services.record import SCENARIO_TYPES
from trades.api.orders import IdentifierField, StrictCharField, StrictRegexField

# A name the file storage keeps as it is (Django's get_valid_filename would reject '.', '..' or '???').
FILENAME_RE = re.compile(r"^\w[\w .()-]{0,99}$")


class IsPartnerApp(BasePermission):
    message = "only a partner's apps may onboard merchants"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, MerchantApp) and request.auth.merchant.is_partner


PARTNER_PERMISSIONS = [IsMerchantApp, HasScope("onboarding"), IsPartnerApp]


# --- input ------------------------------------------------------------------------------------------------------
# Text and identifiers are JSON strings, as in an order: DRF's own fields took 13800138000 for "13800138000" (and
# 12.5 for a legal name "12.5"), and trimmed " WL-1 " into another partner_reference than the partner sent.
# An application's text reaches risk's and the clerks' pages and the channels' onboarding calls: no control or
# bidirectional formatting characters (aggpay.api.strict.TextField), as in an order's subject. Bug: a name ending
# "\u202etxt.exe" was taken and shown to risk reversed.
def _text(**kwargs):
    return TextField(trim_whitespace=False, **kwargs)


def _optional_text(**kwargs):
    return TextField(trim_whitespace=False, required=False, allow_blank=True, allow_null=True, **kwargs)


class StrictBooleanField(serializers.BooleanField):
    """``submit`` is a JSON boolean: DRF would read "yes", "false", 1 or 0 as one (design §5 rule 12)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class PartnerScenarioInputSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=[(t, t) for t in SCENARIO_TYPES])
    name = _text()
    url = _optional_text(help_text="website scenarios: http(s) URL")
    appid = _optional_text(help_text="app, mini program, official account scenarios")


class PartnerStoreInputSerializer(StrictSerializer):
    store_no = _text(help_text="your id of the store, unique within the merchant")
    name = _text()
    area_code = _text(help_text="6-digit administrative division code")
    address = _text()


class PartnerSettlementInputSerializer(StrictSerializer):
    account_type = serializers.ChoiceField(choices=AccountType.choices,
                                           help_text="enterprises: `corporate`; small/micro: `personal`")
    bank_name = _text()
    bank_branch = _optional_text()
    bank_branch_code = _optional_text(help_text="CNAPS code")
    account_number = _text(help_text="8–30 digits")
    account_holder = _text(help_text="the legal name (corporate) or the legal person's name (personal)")


class PartnerRecordInputSerializer(StrictSerializer):
    subject_type = serializers.ChoiceField(choices=SubjectType.choices)
    legal_name = _text()
    short_name = _text()
    licence_no = _optional_text(help_text="unified social credit code; required unless `micro`, refused for `micro`")
    licence_valid_from = serializers.DateField(required=False, allow_null=True,
                                               help_text="required unless `micro`; not in the future")
    licence_valid_until = serializers.DateField(required=False, allow_null=True, help_text="null: long-term")
    # Required by the record check (WeChat Pay's ID address, merchants.services.record), so required here too.
    registered_address = _text()
    legal_person_name = _text(help_text="2–30 Chinese characters (· between the parts of a minority name), or "
                                        "Latin letters for a foreigner")
    legal_person_id_type = serializers.ChoiceField(choices=IdDocType.choices, required=False,
                                                   help_text="default `id_card`")
    legal_person_id_number = _text(help_text="a resident ID: a real birth date, an adult holder")
    legal_person_id_valid_from = serializers.DateField(help_text="not in the future")
    legal_person_id_valid_until = serializers.DateField(required=False, allow_null=True, help_text="null: long-term")
    contact_name = _text(help_text="a person's name, as `legal_person_name`")
    contact_phone = _text(help_text="mainland mobile number")
    contact_email = _optional_text()
    service_phone = _text()
    mcc = _text(help_text="4 digits, not 0000")
    industry = _optional_text()
    requested_products = serializers.ListField(child=serializers.ChoiceField(choices=[(p, p) for p in PRODUCTS]),
                                               allow_empty=False)
    scenarios = PartnerScenarioInputSerializer(many=True, allow_empty=False)
    stores = PartnerStoreInputSerializer(many=True, required=False, help_text="needed for offline scenarios")
    settlement_account = PartnerSettlementInputSerializer()


class PartnerDocumentInputSerializer(StrictSerializer):
    doc_type = serializers.ChoiceField(choices=DocumentType.choices)
    filename = StrictRegexField(FILENAME_RE, max_length=100,
                                help_text="e.g. `licence.jpg`: letters, digits, space, `.`, `(`, `)`, `-`")
    content_base64 = StrictCharField(help_text="the file, base64; a whole JPEG, PNG or PDF up to 5 MB")

    def validate_content_base64(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("not valid base64")


def _partner_reference(**kwargs):
    return IdentifierField(PARTNER_REFERENCE_RE, max_length=64, min_length=1, **kwargs)


class PartnerMerchantCreateInputSerializer(PartnerRecordInputSerializer):
    partner_reference = _partner_reference(
        required=False, help_text="recommended: your own id of the merchant, 1–64 characters `[A-Za-z0-9_-]`, "
                                  "unique among your merchants. A create retried with it returns the merchant it "
                                  "made (200, `Idempotent-Replayed: true`); other content under it is a `409 "
                                  "idempotency_conflict`. Set once: it cannot be patched")
    documents = PartnerDocumentInputSerializer(
        many=True, required=False, max_length=MAX_CREATE_DOCUMENTS,
        help_text=f"documents to attach at once (or upload them later), at most {MAX_CREATE_DOCUMENTS}; the whole "
                  "body is at most 8 MB")
    submit = StrictBooleanField(default=False, help_text="submit for review at once (all required "
                                                         "documents must be attached)")


class PartnerMerchantPatchInputSerializer(PartnerRecordInputSerializer):
    """Validated with ``partial=True``: only the fields sent are checked; null removes an optional field."""

    submit = StrictBooleanField(required=False, help_text="(re)submit for review after the corrections")


class PartnerMerchantListParamsSerializer(ListParamsSerializer):
    starting_after = serializers.CharField(required=False, max_length=64,
                                           help_text="a merchant_no: the page after that merchant")
    state = serializers.ChoiceField(choices=MerchantState.choices, required=False)
    partner_reference = _partner_reference(required=False, help_text="only the merchant with this reference of yours")


def _validated(serializer_class, data, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return _plain(serializer.validated_data)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def merge_patch(target, patch):
    """RFC 7396: objects merge key by key, null removes a key, anything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def current_record(merchant: Merchant) -> dict:
    """The merchant's record in the shape validate_record takes (clear values: it never leaves the server)."""
    record = {
        "subject_type": merchant.subject_type, "legal_name": merchant.legal_name, "short_name": merchant.short_name,
        "registered_address": merchant.registered_address, "legal_person_name": merchant.legal_person_name,
        "legal_person_id_type": merchant.legal_person_id_type,
        "legal_person_id_number": merchant.legal_person_id_number,
        "legal_person_id_valid_from": merchant.legal_person_id_valid_from,
        "legal_person_id_valid_until": merchant.legal_person_id_valid_until,
        "contact_name": merchant.contact_name, "contact_phone": merchant.contact_phone,
        "contact_email": merchant.contact_email, "service_phone": merchant.service_phone, "mcc": merchant.mcc,
        "industry": merchant.industry, "requested_products": list(merchant.requested_products or []),
        "scenarios": list(merchant.scenarios or []),
        "stores": [{"store_no": s.store_no, "name": s.name, "area_code": s.area_code, "address": s.address}
                   for s in merchant.stores.all()],
    }
    if merchant.subject_type != SubjectType.MICRO:
        record.update(licence_no=merchant.licence_no, licence_valid_from=merchant.licence_valid_from,
                      licence_valid_until=merchant.licence_valid_until)
    account = current_settlement(merchant)
    if account is not None:
        record["settlement_account"] = account
    return record


def current_settlement(merchant: Merchant) -> dict | None:
    accounts = getattr(merchant, "current_accounts", None)
    if accounts is None:
        accounts = list(merchant.settlement_accounts.filter(current=True))
    if not accounts:
        return None
    a = accounts[0]
    return {"account_type": a.account_type, "bank_name": a.bank_name, "bank_branch": a.bank_branch,
            "bank_branch_code": a.bank_branch_code, "account_number": a.account_number,
            "account_holder": a.account_holder}


def _upload(document: dict) -> SimpleUploadedFile:
    return SimpleUploadedFile(document["filename"], document["content_base64"])


def _api_error(exc: InvalidRequest) -> InvalidRequest:
    """document_add speaks of the uploaded "file"; over this JSON API the file is content_base64."""
    param = exc.param
    if param is not None and param.rsplit(".", 1)[-1] == "file":
        param = param[: -len("file")] + "content_base64"
    return InvalidRequest(exc.message, param=param, extra=exc.extra)


def _add_document(*, merchant_id: int, actor: str, document: dict) -> Document:
    try:
        return document_add(merchant_id=merchant_id, actor=actor, doc_type=document["doc_type"],
                            uploaded_file=_upload(document))
    except InvalidRequest as exc:
        raise _api_error(exc) from exc


# --- views ------------------------------------------------------------------------------------------------------
class PartnerAPIView(MerchantAPIView):
    permission_classes = PARTNER_PERMISSIONS
    # (param, advice) for a POST body over DATA_UPLOAD_MAX_MEMORY_SIZE: Django refuses it while authentication reads
    # the body to check the signature, before any serializer, so errors.py alone can only say "too large".
    too_large: tuple[str, str] | None = None

    def handle_exception(self, exc):
        if isinstance(exc, RequestDataTooBig) and self.too_large and self.request.method == "POST":
            param, advice = self.too_large
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024 // 1024
            exc = InvalidRequest(f"the request body is over the {limit} MB limit: {advice}", param=param)
        return super().handle_exception(exc)

    def get_merchant(self, request, merchant_no: str) -> Merchant:
        merchant = partner_merchant(partner=request.auth.merchant, merchant_no=merchant_no)
        if merchant is None:
            raise NotFound()  # another partner's merchant is indistinguishable from none
        return merchant

    def resource(self, request, merchant_no: str) -> dict:
        return merchant_resource(self.get_merchant(request, merchant_no))


TAGS = ["partner onboarding"]
REPLAYED = {"Idempotent-Replayed": "true"}


class PartnerMerchantListView(PartnerAPIView):
    too_large = ("documents", "send fewer documents in it and add the others one by one with "
                              "POST /api/v1/merchants/{merchant_no}/documents")

    @api_schema(
        operation_id="partner_merchants_list",
        summary="List your merchants",
        description="The merchants this partner onboarded, newest first.",
        parameters=[PartnerMerchantListParamsSerializer],
        responses={200: PartnerMerchantListOutputSerializer},
        errors=(403,),
        tags=TAGS,
    )
    def get(self, request):
        params = parse_list_params(PartnerMerchantListParamsSerializer, request.query_params)
        merchants = Merchant.objects.filter(partner=request.auth.merchant)
        where = {name: params[name] for name in ("state", "partner_reference") if params.get(name)}
        rows, has_more = page(with_resource_data(merchants), params=params, id_field="merchant_no", where=where)
        return Response({"data": [merchant_resource(m) for m in rows], "has_more": has_more})

    @api_schema(
        operation_id="partner_merchants_create",
        summary="Submit a merchant for onboarding",
        description="Creates the merchant and its draft application from the record. Attach documents here or "
                    "with POST /merchants/{merchant_no}/documents; `\"submit\": true` sends it for review at once "
                    "(all in one transaction: on any error nothing is created). With `partner_reference` a "
                    "retried create returns the merchant it made instead of making another.",
        request=PartnerMerchantCreateInputSerializer,
        responses={201: PartnerMerchantOutputSerializer,
                   200: OpenApiResponse(PartnerMerchantOutputSerializer,
                                        description="the same request retried (same `partner_reference`): the "
                                                    "merchant it made, with header `Idempotent-Replayed: true`")},
        errors=(403, 409),
        replays=True,
        tags=TAGS,
    )
    def post(self, request):
        data = _validated(PartnerMerchantCreateInputSerializer, request.data)
        submit, documents = data.pop("submit", False), data.pop("documents", [])
        partner_reference = data.pop("partner_reference", "")
        try:
            merchant, replayed = partner_merchant_create(
                partner=request.auth.merchant, actor=api_actor(request), data=data,
                partner_reference=partner_reference, submit=submit,
                documents=[(document["doc_type"], _upload(document)) for document in documents])
        except InvalidRequest as exc:
            raise _api_error(exc) from exc
        if replayed:
            return Response(self.resource(request, merchant.merchant_no), status=200, headers=REPLAYED)
        return Response(self.resource(request, merchant.merchant_no), status=201)


class PartnerMerchantDetailView(PartnerAPIView):
    @api_schema(
        operation_id="partner_merchants_retrieve",
        summary="One of your merchants",
        description="The record (PII masked), the application's state and returned reasons, the documents and "
                    "those still missing, and per channel the contract's state, rejection reasons, sign URL and, "
                    "once active, the sub-merchant id.",
        responses={200: PartnerMerchantOutputSerializer},
        errors=(403, 404),
        tags=TAGS,
    )
    def get(self, request, merchant_no: str):
        return Response(self.resource(request, merchant_no))

    @api_schema(
        operation_id="partner_merchants_update",
        summary="Correct a merchant's record, or change its settlement account",
        description="A JSON merge patch (RFC 7396) of the record: send only what changes; `null` removes an "
                    "optional field; lists (`stores`, `scenarios`, `requested_products`) are replaced whole. "
                    "Allowed while the application is `draft` or `returned` (a returned application goes back to "
                    "draft); `\"submit\": true` then (re)submits it. Once the merchant is active only "
                    "`settlement_account` may change: the change is made at every channel asynchronously and "
                    "followed in `settlement_change`.",
        request=PartnerMerchantPatchInputSerializer,
        responses={200: PartnerMerchantOutputSerializer},
        errors=(403, 404, 409),
        tags=TAGS,
    )
    def patch(self, request, merchant_no: str):
        merchant = self.get_merchant(request, merchant_no)
        patch = _validated(PartnerMerchantPatchInputSerializer, request.data, partial=True)
        submit = patch.pop("submit", False)
        actor = api_actor(request)
        if merchant.state == MerchantState.ONBOARDING:
            partner_merchant_correct(merchant=merchant, actor=actor, changed=bool(patch), submit=submit,
                                     record=lambda locked: merge_patch(current_record(locked), patch))
        else:
            _change_settlement(merchant, patch=patch, submit=submit, actor=actor)
        return Response(self.resource(request, merchant_no))


def _change_settlement(merchant: Merchant, *, patch: dict, submit: bool, actor: str) -> None:
    other = sorted(set(patch) - {"settlement_account"}) + (["submit"] if submit else [])
    if other:
        raise InvalidState(f"the merchant is {merchant.state}: only settlement_account can change now",
                           param=other[0])
    if "settlement_account" not in patch:
        return
    partner_settlement_change(merchant=merchant, actor=actor,
                              account=lambda locked: merge_patch(current_settlement(locked) or {},
                                                                 patch["settlement_account"]))


class PartnerMerchantDocumentsView(PartnerAPIView):
    too_large = ("content_base64", "a document is up to 5 MB (under 7 MB as base64)")

    @api_schema(
        operation_id="partner_merchant_documents_create",
        summary="Upload a document",
        description="A licence, ID side, store photo, bank card or site screenshot as base64 (a whole JPEG, PNG "
                    "or PDF by content, up to 5 MB). Allowed while the application is a draft or returned, or when a "
                    "channel rejected a contract and wants a new picture.",
        request=PartnerDocumentInputSerializer,
        responses={201: PartnerDocumentAddedSerializer},
        errors=(403, 404, 409),
        tags=TAGS,
    )
    def post(self, request, merchant_no: str):
        merchant = self.get_merchant(request, merchant_no)
        document = _validated(PartnerDocumentInputSerializer, request.data)
        added = _add_document(merchant_id=merchant.pk, actor=api_actor(request), document=document)
        # Kept for one channel that rejected a contract although another cannot take it (document_add): said in the
        # answer, as the staff page says it beside "uploaded", rather than first by a refused resubmission.
        added.warning = resubmission_warning(added)
        return Response(PartnerDocumentAddedSerializer(added).data, status=201)


"""From our merchant record to the channel-neutral onboarding application of channels/adapters/base_onboarding.py.

Documents are uploaded to the channel first (its media ids replace the files in the application); the ids are kept
on the contract by document hash so a resubmission does not upload the same picture again.
"""

from __future__ import annotations

from django.db import transaction

from merchants.documents import latest_documents
from merchants.models import Contract, SubjectType
from merchants.services.locks import lock_contract_alone

# Our subject types → base_onboarding.SUBJECT_TYPES.
SUBJECT_TYPE_MAP = {
    SubjectType.ENTERPRISE: "enterprise",
    SubjectType.INDIVIDUAL_BUSINESS: "individual",
    SubjectType.MICRO: "micro",
}
# WeChat's settlement rule (结算规则 settlement_id, A.13 settlement_info) by subject type; other channels ignore it.
# [UNVERIFIED] the ids of the general-industry rules; an operator can refine them per industry later.
SETTLEMENT_RULE_IDS = {SubjectType.ENTERPRISE: "716", SubjectType.INDIVIDUAL_BUSINESS: "719", SubjectType.MICRO: "746"}
SCENARIO_MAP = {"store": "store", "website": "web", "app": "app", "mini_program": "mini_program",
                "official_account": "official_account"}


def upload_documents(*, contract: Contract, adapter) -> dict[str, str]:
    """doc_type → the channel's media id. Uploads what the channel has not seen; no lock held during uploads."""
    documents = latest_documents(contract.merchant)
    known = dict(contract.media_ids or {})
    uploader = getattr(adapter, "upload_image", None)
    media: dict[str, str] = {}
    fresh: dict[str, str] = {}
    for doc_type, document in documents.items():
        if document.sha256 in known:
            media[doc_type] = known[document.sha256]
            continue
        if uploader is None:
            # Channels without a media API take the picture's digest as a reference (docs/channels/bank.md).
            media[doc_type] = "sha256:" + document.sha256
            continue
        with document.file.open("rb") as handle:
            content = handle.read()
        extension = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}[document.content_type]
        media_id = uploader(filename=f"{doc_type}.{extension}", content=content)
        media[doc_type] = fresh[document.sha256] = media_id
    if fresh:
        with transaction.atomic():
            locked = lock_contract_alone(contract.pk)
            locked.media_ids = {**(locked.media_ids or {}), **fresh}
            locked.save(update_fields=["media_ids", "updated_at"])
    return media


def build_channel_application(*, contract: Contract, media: dict[str, str]) -> dict:
    merchant = contract.merchant
    account = merchant.settlement_accounts.filter(current=True).first()
    scenarios = merchant.scenarios or []

    def appid_of(kind: str) -> str:
        return next((s.get("appid", "") for s in scenarios if s["type"] == kind), "")

    stores = [
        {"name": store.name, "address_code": store.area_code, "address": store.address,
         "entrance_pic": media.get("store_front", ""), "indoor_pic": media.get("store_inside", "")}
        for store in merchant.stores.all()
    ]
    from channels.callbacks import callback_url

    return {
        "business_code": contract.business_code,
        # Channels that notify review results (Alipay zft messages, the bank's apply notify) call us back here.
        "notify_url": callback_url(contract.channel_account),
        "subject_type": SUBJECT_TYPE_MAP[merchant.subject_type],
        "legal_name": merchant.legal_name,
        "short_name": merchant.short_name,
        "service_phone": merchant.service_phone.replace("-", ""),
        "mcc": merchant.mcc,
        "licence": {
            "number": merchant.licence_no, "address": merchant.registered_address,
            "valid_from": merchant.licence_valid_from.isoformat() if merchant.licence_valid_from else "",
            "valid_to": merchant.licence_valid_until.isoformat() if merchant.licence_valid_until else "",
            "copy": media.get("licence", ""),
        },
        "legal_person": {
            "name": merchant.legal_person_name, "id_type": merchant.legal_person_id_type,
            "id_number": merchant.legal_person_id_number, "id_address": merchant.registered_address,
            "valid_from": (merchant.legal_person_id_valid_from.isoformat()
                           if merchant.legal_person_id_valid_from else ""),
            "valid_to": (merchant.legal_person_id_valid_until.isoformat()
                         if merchant.legal_person_id_valid_until else ""),
            "id_front": media.get("id_front", ""), "id_back": media.get("id_back", ""),
        },
        "contact": {
            "type": "legal" if merchant.contact_name == merchant.legal_person_name else "super_admin",
            "name": merchant.contact_name, "id_number": merchant.legal_person_id_number,
            "mobile": merchant.contact_phone, "email": merchant.contact_email,
        },
        "settlement_account": {
            "type": account.account_type, "account_name": account.account_holder,
            "account_number": account.account_number, "bank_name": account.bank_name,
            "bank_branch": account.bank_branch, "bank_branch_id": account.bank_branch_code,
            "bank_address_code": (stores[0]["address_code"][:4] + "00") if stores else "",
        } if account else {},
        "stores": stores,
        "scenarios": sorted({SCENARIO_MAP[s["type"]] for s in scenarios}),
        "mini_program_appid": appid_of("mini_program"),
        "official_account_appid": appid_of("official_account"),
        "app_appid": appid_of("app"),
        "website": next((s.get("url", "") for s in scenarios if s["type"] == "website"), ""),
        "products": sorted(contract.rates.values_list("product", flat=True)),
        "settlement_rule_id": SETTLEMENT_RULE_IDS[merchant.subject_type],
        "qualification_type": merchant.industry,
        "site_screenshot": media.get("site_screenshot", ""),
        "bank_card": media.get("bank_card", ""),
    }

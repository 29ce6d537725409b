"""Mapping the channel-neutral onboarding application (base_onboarding.py) to the bank's merchant apply body.

docs/channels/bank.md §9 is the target: nested objects for licence, legal person, contact, settlement account and
stores; sensitive values (ID number, mobile, account number, account holder) RSA-OAEP-encrypted under the bank's
public key (§9.2); dates as yyyyMMdd with ``FOREVER`` for long-term; pictures as the bank's file ids (§9.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.adapters.bank_wire import encrypt_field
from channels.adapters.base import OnboardingResult, OnboardingState
from channels.adapters.errors import ChannelError, ParseError

MERCHANT_TYPES = {
    "enterprise": "ENTERPRISE",
    "individual": "INDIVIDUAL",
    "micro": "MICRO",
    "institution": "INSTITUTION",
    "government": "INSTITUTION",
    "other": "INSTITUTION",
}
ID_TYPES = {
    "id_card": "ID_CARD",
    "passport": "PASSPORT",
    "hk_macao_permit": "HK_MACAO_PERMIT",
    "taiwan_permit": "TAIWAN_PERMIT",
    "foreign_resident": "FOREIGN_RESIDENT",
    "hk_macao_resident": "HK_MACAO_RESIDENT",
    "taiwan_resident": "TAIWAN_RESIDENT",
}
SCENES = {
    "store": "STORE",
    "official_account": "OFFICIAL_ACCOUNT",
    "mini_program": "MINI_PROGRAM",
    "app": "APP",
    "web": "WEB",
}
# bank.md §4: our product codes → the bank's product codes an apply opens. UnionPay QR covers 银联JS支付 too,
# because a one-code-pay page pays a UnionPay payer through the QR product (bank.md §6.2).
PRODUCT_CODES = {
    "wechat.native": ("WECHAT_NATIVE",),
    "wechat.jsapi": ("WECHAT_JSAPI",),
    "wechat.mini": ("WECHAT_MINIAPP",),
    "wechat.barcode": ("WECHAT_MICROPAY",),
    "alipay.qr": ("ALIPAY_NATIVE",),
    "alipay.jsapi": ("ALIPAY_JSAPI",),
    "alipay.barcode": ("ALIPAY_MICROPAY",),
    "unionpay.qr": ("UNIONPAY_NATIVE", "UNIONPAY_JSAPI"),
    "unionpay.barcode": ("UNIONPAY_MICROPAY",),
}
APPLY_STATES = {
    "AUDITING": OnboardingState.AUDITING,
    "REJECTED": OnboardingState.REJECTED,
    "WAIT_VERIFY": OnboardingState.TO_BE_CONFIRMED,
    "WAIT_SIGN": OnboardingState.TO_BE_SIGNED,
    "FINISHED": OnboardingState.FINISHED,
    "CANCELED": OnboardingState.CANCELED,
}
MODIFY_STATES = {"AUDITING": "auditing", "SUCCESS": "succeeded", "FAIL": "failed"}
# bank.md §9.3: a repeated apply_no the bank refuses because it already holds that apply — under review with other
# content, or already open. Not a verdict on the application: follow the existing apply instead.
ALREADY_APPLIED_CODES = frozenset({"APPLY_IN_REVIEW", "APPLY_FINISHED"})


def apply_body(application: Mapping[str, Any], *, bank_public_key_pem: str) -> dict[str, Any]:
    """The /api/merchant/apply fields (bank.md §9.3) for a base_onboarding.OnboardingApplication."""
    enc = _Encryptor(bank_public_key_pem)
    subject = application.get("subject_type", "")
    if subject not in MERCHANT_TYPES:
        raise ChannelError(f"subject_type {subject!r} is not one the bank onboards", code="invalid_params")
    products = sorted({code for product in application.get("products", []) for code in PRODUCT_CODES.get(product, ())})
    if not products:
        raise ChannelError("none of the requested products is offered by the bank", code="invalid_params")
    licence = application.get("licence") or {}
    person = application.get("legal_person") or {}
    contact = application.get("contact") or {}
    body: dict[str, Any] = {
        "apply_no": application.get("business_code", ""),
        "merchant_type": MERCHANT_TYPES[subject],
        "merchant_name": application.get("legal_name", ""),
        "short_name": application.get("short_name", ""),
        "service_phone": application.get("service_phone", ""),
        "industry": application.get("qualification_type", ""),
        "mcc": application.get("mcc", ""),
        "legal_person": _compact({
            "name": person.get("name", ""),
            "id_type": ID_TYPES.get(person.get("id_type", "id_card"), "ID_CARD"),
            "id_no": enc(person.get("id_number", "")),
            "valid_from": _date(person.get("valid_from", "")),
            "valid_to": _date(person.get("valid_to", "")) or "FOREVER",
            "id_front_pic": person.get("id_front", ""),
            "id_back_pic": person.get("id_back", ""),
        }),
        "contact": _compact({
            "name": contact.get("name", ""),
            "mobile": enc(contact.get("mobile", "")),
            "email": contact.get("email", ""),
        }),
        "settlement_account": settlement_account(application.get("settlement_account") or {}, enc),
        "stores": [
            _compact({
                "store_name": store.get("name", ""),
                "area_code": store.get("address_code", ""),
                "address": store.get("address", ""),
                "door_pic": store.get("entrance_pic", ""),
                "inside_pic": store.get("indoor_pic", ""),
            })
            for store in application.get("stores", [])
        ],
        "scenes": [SCENES[s] for s in application.get("scenarios", []) if s in SCENES],
        "scene_info": _compact({
            "official_account_appid": application.get("official_account_appid", ""),
            "mini_program_appid": application.get("mini_program_appid", ""),
            "app_appid": application.get("app_appid", ""),
            "website": application.get("website", ""),
        }),
        "products": products,
        "notify_url": application.get("notify_url", ""),
    }
    if subject != "micro":  # bank.md §9.3: 小微 merchants have no licence
        body["license"] = _compact({
            "license_no": licence.get("number", ""),
            "license_address": licence.get("address", ""),
            "valid_from": _date(licence.get("valid_from", "")),
            "valid_to": _date(licence.get("valid_to", "")) or "FOREVER",
            "license_pic": licence.get("copy", ""),
        })
    return body


def settlement_account(account: Mapping[str, Any], enc: _Encryptor) -> dict[str, str]:
    return _compact({
        "account_type": "PERSONAL" if account.get("type") == "personal" else "CORPORATE",
        "account_name": enc(account.get("account_name", "")),
        "account_no": enc(account.get("account_number", "")),
        "bank_name": account.get("bank_name", ""),
        "bank_branch_name": account.get("bank_branch", ""),
        "bank_branch_no": account.get("bank_branch_id", ""),
        "area_code": account.get("bank_address_code", ""),
    })


class _Encryptor:
    def __init__(self, bank_public_key_pem: str):
        self.pem = bank_public_key_pem

    def __call__(self, value: str) -> str:
        return encrypt_field(value, self.pem) if value else ""


def encryptor(bank_public_key_pem: str) -> _Encryptor:
    return _Encryptor(bank_public_key_pem)


def onboarding_result(data: Mapping[str, Any]) -> OnboardingResult:
    """An apply object (bank.md §9.4) as an OnboardingResult. ParseError when its state is unknown."""
    state = data.get("apply_state")
    if not isinstance(state, str) or state not in APPLY_STATES:
        raise ParseError(f"bank apply_state {state!r} is not one of bank.md §9.5")
    if state == "FINISHED" and not data.get("mch_no"):
        # bank.md §9.5: FINISHED carries the merchant's mch_no; without it there is nothing to trade under.
        raise ParseError("bank apply_state FINISHED without mch_no")
    reasons = data.get("reject_reasons") or []
    if not isinstance(reasons, list) or not all(isinstance(r, dict) for r in reasons):
        raise ParseError("bank reject_reasons must be a list of objects")
    return OnboardingResult(
        state=APPLY_STATES[state],
        application_id=_text(data.get("apply_id")),
        sub_mchid=_text(data.get("mch_no")),
        sign_url=_text(data.get("sign_url")),
        message=_text(data.get("apply_state_desc")),
        rejections=[{"field": _text(r.get("field")), "reason": _text(r.get("reason"))} for r in reasons],
        raw=dict(data),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"bank field value {value!r} should be a string")
    return value


def _date(value: str) -> str:
    """``YYYY-MM-DD`` → ``yyyyMMdd`` (bank.md §2); "" stays "" (the caller decides what empty means)."""
    return value.replace("-", "") if value else ""


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    # bank.md §9.3: optional members are omitted rather than sent empty (the bank reads "" as a bad value).
    return {k: v for k, v in values.items() if v not in ("", None, [], {})}

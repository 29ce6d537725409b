"""The channel-neutral onboarding application every adapter's ``onboarding_submit`` accepts (design §4, §6).

merchants.services builds one of these from the merchant's KYC record; each adapter maps it to its channel's body
(WeChat applyment4sub A.13, Alipay zft B.7, the bank's merchant apply), encrypting what the channel wants encrypted.
Keep it plain data (JSON-serialisable): values are strings unless stated; dates are ``YYYY-MM-DD``; an empty
``valid_to`` means long-term (长期). Fields a channel does not need are ignored by that channel's adapter.

Example::

    {
        "business_code": "AGG20261126000001",          # ours, unique per application; reused to resubmit
        "subject_type": "enterprise",                   # SUBJECT_TYPES below
        "legal_name": "杭州茶馆有限公司",                 # name on the business licence
        "short_name": "茶馆",                            # shown to payers (商户简称)
        "service_phone": "057188888888",
        "licence": {"number": "91330100MA2XXXXXXX", "address": "杭州市西湖区…", "valid_from": "2020-01-01",
                    "valid_to": "", "copy": "<media id>"},
        "legal_person": {"name": "张三", "id_type": "id_card", "id_number": "330102199001011234",
                         "id_address": "杭州市…", "valid_from": "2019-01-01", "valid_to": "2039-01-01",
                         "id_front": "<media id>", "id_back": "<media id>"},
        "contact": {"type": "legal", "name": "张三", "id_number": "330102199001011234",
                    "mobile": "13800000000", "email": "owner@example.com"},
        "settlement_account": {"type": "corporate", "account_name": "杭州茶馆有限公司",
                               "account_number": "6222020202020202", "bank_name": "招商银行",
                               "bank_branch": "招商银行杭州分行", "bank_branch_id": "", "bank_address_code": "330100"},
        "stores": [{"name": "西湖店", "address_code": "330106", "address": "杭州市西湖区…",
                    "entrance_pic": "<media id>", "indoor_pic": "<media id>"}],
        "scenarios": ["store", "mini_program"],
        "mini_program_appid": "", "official_account_appid": "", "app_appid": "", "website": "",
        "products": ["wechat.jsapi", "wechat.barcode"],
        "settlement_rule_id": "716",                    # the channel's settlement/fee class (WeChat settlement_id)
        "qualification_type": "餐饮",
    }

Pictures (``copy``, ``id_front``, ``store`` pictures) are the channel's media ids, obtained by uploading the file
through that channel's adapter before submitting (WeChat: ``WechatPayAdapter.upload_image``).
"""

from __future__ import annotations

from typing import TypedDict

SUBJECT_TYPES = ("enterprise", "individual", "institution", "government", "other", "micro")
ID_TYPES = ("id_card", "passport", "hk_macao_permit", "taiwan_permit", "foreign_resident", "hk_macao_resident",
            "taiwan_resident")
SCENARIOS = ("store", "official_account", "mini_program", "app", "web", "wework")


class Licence(TypedDict, total=False):
    number: str  # unified social credit code / registration number
    address: str
    valid_from: str
    valid_to: str  # "" = long-term
    copy: str  # media id of the licence photo


class LegalPerson(TypedDict, total=False):
    name: str  # PII: encrypted in transit where the channel demands it
    id_type: str  # ID_TYPES
    id_number: str  # PII
    id_address: str  # PII
    valid_from: str
    valid_to: str
    id_front: str  # media id
    id_back: str  # media id


class Contact(TypedDict, total=False):
    type: str  # "legal" (the legal person) | "super_admin" (someone else, needs an authorisation letter)
    name: str  # PII
    id_number: str  # PII
    mobile: str  # PII
    email: str  # PII
    openid: str  # optional, WeChat only


class SettlementAccount(TypedDict, total=False):
    type: str  # "corporate" | "personal"
    account_name: str  # PII
    account_number: str  # PII
    bank_name: str  # bank (开户银行), e.g. 招商银行
    bank_branch: str  # branch name (开户银行全称(含支行))
    bank_branch_id: str  # CNAPS / channel branch id when known
    bank_address_code: str  # 6-digit province/city code


class StoreInfo(TypedDict, total=False):
    name: str
    address_code: str
    address: str
    entrance_pic: str  # media id
    indoor_pic: str  # media id


class OnboardingApplication(TypedDict, total=False):
    business_code: str
    subject_type: str  # SUBJECT_TYPES
    legal_name: str
    short_name: str
    service_phone: str
    licence: Licence
    legal_person: LegalPerson
    contact: Contact
    settlement_account: SettlementAccount
    stores: list[StoreInfo]
    scenarios: list[str]  # SCENARIOS
    mini_program_appid: str
    official_account_appid: str
    app_appid: str
    website: str
    products: list[str]  # product codes of channels.adapters.base.PRODUCTS
    settlement_rule_id: str
    qualification_type: str

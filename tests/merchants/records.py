"""Sample onboarding records and documents used across merchants tests."""

from __future__ import annotations

import copy

from django.core.files.uploadedfile import SimpleUploadedFile

from merchants.validation import id_card_check_char, uscc_check_char

# A valid unified social credit code (check char computed) and resident ID (the GB 11643 sample).
LICENCE_NO = "91330106MA2B00000U"
ID_NUMBER = "11010519491231002X"

TEA_HOUSE_RECORD = {
    "subject_type": "enterprise",
    "legal_name": "杭州西湖茶馆有限公司",
    "short_name": "西湖茶馆",
    "licence_no": LICENCE_NO,
    "licence_valid_from": "2020-01-01",
    "licence_valid_until": None,
    "registered_address": "浙江省杭州市西湖区龙井路1号",
    "legal_person_name": "张三",
    "legal_person_id_type": "id_card",
    "legal_person_id_number": ID_NUMBER,
    "legal_person_id_valid_from": "2015-05-01",
    "legal_person_id_valid_until": "2035-05-01",
    "contact_name": "李四",
    "contact_phone": "13800138000",
    "contact_email": "li.si@example.com",
    "service_phone": "0571-88888888",
    "mcc": "5814",
    "industry": "餐饮",
    "requested_products": ["wechat.native", "alipay.qr", "unionpay.qr"],
    "scenarios": [{"type": "store", "name": "龙井路店"}],
    "stores": [{"store_no": "S001", "name": "龙井路店", "area_code": "330106", "address": "龙井路1号"}],
    "settlement_account": {
        "account_type": "corporate",
        "bank_name": "招商银行",
        "bank_branch": "杭州西湖支行",
        "bank_branch_code": "308331012345",
        "account_number": "571234567890123",
        "account_holder": "杭州西湖茶馆有限公司",
    },
}



def licence_no(serial: int) -> str:
    """Another valid unified social credit code, i.e. another business (``licence_no(0)`` is LICENCE_NO): a second
    merchant with the Tea House's licence would be refused as already onboarded."""
    first17 = f"91330106MA2B{serial:05d}"
    return first17 + uscc_check_char(first17)


def id_number(serial: int) -> str:
    """Another valid resident ID number, i.e. another person (``id_number(2)`` is ID_NUMBER)."""
    first17 = f"11010519491231{serial:03d}"
    return first17 + id_card_check_char(first17)


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def record(**changes) -> dict:
    data = copy.deepcopy(TEA_HOUSE_RECORD)
    data.update(changes)
    return data


def micro_record(**changes) -> dict:
    """A 小微 merchant: Zhang San's own tea stall — no licence, so his ID number identifies it; paid to his personal
    account."""
    data = record(subject_type="micro", legal_name="张三", short_name="张三茶摊", licence_no="",
                  licence_valid_from=None)
    data["settlement_account"] = {**data["settlement_account"], "account_type": "personal", "account_holder": "张三"}
    data.update(changes)
    return data


def png(name: str = "doc.png") -> SimpleUploadedFile:
    """A small PNG whose bytes depend on ``name``: different documents have different hashes."""
    return SimpleUploadedFile(name, PNG_BYTES + name.encode(), content_type="image/png")

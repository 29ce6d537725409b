"""Numbers typed with full-width characters (a Chinese input method, a copy from a scanned licence) are read as the
numbers they are; digits of other scripts are refused naming the field (issue 4 "Field-level validation that a clerk
understands"; design §5 rule 12). Python's ``\\d`` matches both, so without this a full-width ID number passed, was
stored as typed — and, digested differently, let the same 小微 owner be onboarded twice."""

from __future__ import annotations

import pytest

from aggpay.errors import InvalidRequest
from merchants.models import Merchant
from merchants.services.onboarding import merchant_onboard_draft
from merchants.services.record import validate_record
from tests.merchants.records import ID_NUMBER, LICENCE_NO, micro_record, record

FULL_WIDTH = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-", "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ－")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def full_width(text: str) -> str:
    return text.translate(FULL_WIDTH)


def test_it_reads_full_width_numbers_as_the_plain_numbers_they_are():
    data = record(licence_no=full_width(LICENCE_NO), legal_person_id_number=full_width(ID_NUMBER),
                  contact_phone=full_width("13800138000"), service_phone=full_width("0571-88888888"),
                  mcc=full_width("5814"))
    data["stores"][0]["area_code"] = full_width("330106")
    data["settlement_account"]["account_number"] = full_width("571234567890123")

    checked = validate_record(data)

    assert checked.merchant["licence_no"] == LICENCE_NO
    assert checked.merchant["legal_person_id_number"] == ID_NUMBER
    assert checked.merchant["contact_phone"] == "13800138000"
    assert checked.merchant["service_phone"] == "0571-88888888"
    assert checked.merchant["mcc"] == "5814"
    assert checked.stores[0]["area_code"] == "330106"
    assert checked.settlement["account_number"] == "571234567890123"


@pytest.mark.parametrize(("change", "param"), [
    ({"legal_person_id_number": ID_NUMBER[:17].translate(ARABIC_INDIC) + "X"}, "legal_person_id_number"),
    ({"mcc": "5814".translate(ARABIC_INDIC)}, "mcc"),
    ({"settlement_account": {**record()["settlement_account"],
                             "account_number": "571234567890123".translate(ARABIC_INDIC)}},
     "settlement_account.account_number"),
])
def test_it_refuses_digits_of_other_scripts_naming_the_field(change, param):
    with pytest.raises(InvalidRequest) as refused:
        validate_record(record(**change))
    assert refused.value.param == param


@pytest.mark.django_db
def test_a_small_micro_owner_typed_in_full_width_is_still_recognised_as_already_onboarded(clerk_wang):
    merchant_onboard_draft(actor=clerk_wang, data=micro_record())

    with pytest.raises(InvalidRequest) as refused:
        merchant_onboard_draft(actor=clerk_wang, data=micro_record(legal_person_id_number=full_width(ID_NUMBER)))

    assert refused.value.param == "legal_person_id_number"
    assert "already onboarded" in refused.value.message
    assert Merchant.objects.count() == 1

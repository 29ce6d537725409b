"""A record is refused when a field holds what no real merchant could have, even where its format and check
character are right (found by a partner's trial of POST /api/v1/merchants): an ID number whose body is no real
person (GB 11643: province, birth date) or a minor's, a name with digits or of one character, a licence issued in the
future or whose organisation code fails its GB 11714 check, MCC 0000, a licence for a 小微 merchant. The one check
(merchants.services.record) answers the partner API, the batch import and the clerk's form alike, naming the field."""

from __future__ import annotations

import datetime as dt

import pytest

from aggpay.errors import InvalidRequest
from merchants import validation
from merchants.batch.examples import example_rows
from merchants.models import Merchant
from merchants.services.record import validate_record, validate_record_problems
from merchants.validation import id_card_check_char
from tests.merchants.records import LICENCE_NO, micro_record, record


def resident_id(first17: str) -> str:
    """An ID number with a correct GB 11643 check digit, whatever its body says."""
    return first17 + id_card_check_char(first17)


BORN_2020 = resident_id("11010520200101001")
IMPOSSIBLE = [
    # (changes, the field named, words of the message)
    ({"legal_person_id_number": "330106198513321237"}, "legal_person_id_number", "is not a date"),
    ({"legal_person_id_number": resident_id("00000019800101001")}, "legal_person_id_number", "not a province"),
    ({"legal_person_id_number": resident_id("11010530000101001")}, "legal_person_id_number", "in the future"),
    ({"legal_person_id_number": resident_id("11010519900230001")}, "legal_person_id_number", "is not a date"),
    ({"legal_person_id_number": BORN_2020}, "legal_person_id_number", "under 18"),
    ({"legal_person_name": "张伟123"}, "legal_person_name", "no digits"),
    ({"legal_person_name": "张"}, "legal_person_name", "2 to 30 characters"),
    ({"legal_person_name": "张" * 60}, "legal_person_name", "2 to 30 characters"),
    ({"contact_name": "李四4"}, "contact_name", "no digits"),
    ({"contact_name": "李"}, "contact_name", "2 to 30 characters"),
    ({"licence_valid_from": "2030-01-01"}, "licence_valid_from", "in the future"),
    ({"mcc": "0000"}, "mcc", "not a merchant category code"),
    ({"licence_no": "91330100123456780P"}, "licence_no", "organisation code"),
    ({"legal_person_id_valid_from": "2040-01-01"}, "legal_person_id_valid_from", "in the future"),
]


@pytest.mark.parametrize("changes, param, words", IMPOSSIBLE)
def test_a_record_with_an_impossible_value_is_refused_naming_the_field(changes, param, words):
    with pytest.raises(InvalidRequest) as refused:
        validate_record(record(**changes))

    assert refused.value.param == param
    assert words in refused.value.message


@pytest.mark.parametrize("changes, param, words", [
    ({"legal_person_id_number": BORN_2020}, "legal_person_id_number", "under 18"),  # the 小微 merchant's owner
    ({"legal_person_id_number": "330106198513321237"}, "legal_person_id_number", "is not a date"),
    ({"licence_no": LICENCE_NO}, "licence_no", "has no business licence"),
])
def test_a_micro_merchants_record_is_refused_for_its_owners_impossible_id_or_a_licence_it_cannot_have(
        changes, param, words):
    problems = validate_record_problems(micro_record(**changes))

    assert [problem.param for problem in problems] == [param]
    assert words in problems[0].message


def test_a_future_id_valid_from_is_named_and_not_blamed_on_its_valid_until():
    problems = validate_record_problems(record(legal_person_id_valid_from="2040-01-01",
                                               legal_person_id_valid_until="2035-05-01"))
    assert [problem.param for problem in problems] == ["legal_person_id_valid_from"]


def test_an_id_valid_until_before_a_past_valid_from_still_names_the_valid_until():
    problems = validate_record_problems(record(legal_person_id_valid_from="2015-05-01",
                                               legal_person_id_valid_until="2014-05-01"))
    assert [problem.param for problem in problems] == ["legal_person_id_valid_until"]
    assert "after legal_person_id_valid_from" in problems[0].message


def test_a_holder_is_of_age_on_their_18th_birthday_and_not_the_day_before():
    number = resident_id("11010520080315001")
    assert validation.validate_id_number(number, today=dt.date(2026, 3, 15)) == number
    with pytest.raises(InvalidRequest, match="under 18"):
        validation.validate_id_number(number, today=dt.date(2026, 3, 14))


@pytest.mark.parametrize("name", ["张伟", "阿卜杜·热合曼", "欧阳娜娜", "John Smith", "Mary-Jane O'Neil", "J. R. Smith",
                                  "Zoë Müller", "张" * 30])
def test_real_names_in_chinese_characters_or_latin_letters_pass(name):
    assert validation.validate_person_name(name) == name
    assert validate_record(record(legal_person_name=name, contact_name=name,
                                  settlement_account=record()["settlement_account"])).merchant[
        "legal_person_name"] == name


@pytest.mark.parametrize("name", ["张 伟", "·张伟", "张伟·", "张伟John", "Smith3", "@@", "张" * 31])
def test_names_with_other_signs_mixed_scripts_or_too_many_characters_are_refused(name):
    with pytest.raises(InvalidRequest) as refused:
        validation.validate_person_name(name, field="contact_name")
    assert refused.value.param == "contact_name"


def test_the_valid_fixtures_and_the_sample_rows_still_pass():
    assert validate_record_problems(record()) == []
    assert validate_record_problems(micro_record()) == []


# --- the partner API: 400 invalid_request naming the field, nothing created ----------------------------------------
@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


@pytest.mark.django_db
@pytest.mark.parametrize("changes, param, words", IMPOSSIBLE)
def test_the_partner_api_refuses_an_impossible_value_naming_the_field(partner, changes, param, words):
    response = partner.post("/api/v1/merchants", json=record(**changes))

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert words in error["message"]
    assert not Merchant.objects.filter(partner__isnull=False).exists()


@pytest.mark.django_db
def test_the_partner_api_refuses_a_licence_sent_for_a_micro_merchant_instead_of_dropping_it(partner):
    response = partner.post("/api/v1/merchants", json=micro_record(licence_no=LICENCE_NO))

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == "licence_no"
    assert not Merchant.objects.filter(partner__isnull=False).exists()


# --- the batch import: the row and the column ---------------------------------------------------------------------
@pytest.mark.django_db
def test_the_batch_import_names_the_row_and_column_of_each_impossible_value(staff_member,
                                                                          django_capture_on_commit_callbacks):
    from merchants.batch import services
    from tests.merchants.test_batch_import import problems, upload

    clerk = staff_member("onboarding_clerk", username="wang.clerk")
    rows = example_rows(3)
    rows[1]["legal_person_id_number"] = "330106198513321237"
    rows[1]["legal_person_name"] = "张伟123"
    rows[1]["mcc"] = "0000"
    rows[2]["licence_no"] = "91330100123456780P"
    rows[2]["licence_valid_from"] = "2030-01-01"
    rows[2]["legal_person_id_valid_from"] = "2040-01-01"

    with django_capture_on_commit_callbacks(execute=True):
        job = services.import_job_create(actor=clerk, sheet=upload(rows), documents=None)

    report = problems(job)
    assert sorted(report) == [3, 4]  # Excel rows: the header is row 1
    assert [label for label, _reason, _kind in report[3]] == ["法人姓名 Legal person", "法人证件号 ID number", "MCC码 MCC"]
    assert [label for label, _reason, _kind in report[4]] == [
        "统一社会信用代码 Licence no. (USCC)", "执照起始日 Licence valid from", "证件起始日 ID valid from"]

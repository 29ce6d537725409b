"""The onboarding record is checked field by field, in words a clerk can act on, before anything is written."""

from __future__ import annotations

import pytest

from aggpay.errors import InvalidRequest
from merchants import validation
from merchants.batch.columns import COLUMNS, column_for_param
from merchants.services.record import required_documents, validate_record, validate_record_problems
from tests.merchants.records import ID_NUMBER, LICENCE_NO, record


def test_it_accepts_a_complete_enterprise_record():
    result = validate_record(record())
    assert result.merchant["licence_no"] == LICENCE_NO
    assert result.merchant["legal_person_id_number"] == ID_NUMBER
    assert result.settlement["account_number"] == "571234567890123"
    assert result.stores[0]["store_no"] == "S001"


ONE_BAD_FIELD = [
    ({"legal_name": ""}, "legal_name"),
    ({"subject_type": "company"}, "subject_type"),
    ({"licence_no": "91330106MA2B00000V"}, "licence_no"),  # wrong check character
    ({"licence_no": "91330106MA2B0000OU"}, "licence_no"),  # letter O is never used
    ({"legal_person_id_number": "110105194912310021"}, "legal_person_id_number"),
    ({"contact_phone": "12800138000"}, "contact_phone"),
    ({"contact_email": "not-an-email"}, "contact_email"),
    ({"mcc": "58"}, "mcc"),
    ({"requested_products": ["wechat.cash"]}, "requested_products"),
    ({"requested_products": []}, "requested_products"),
    ({"scenarios": [{"type": "website", "name": "shop", "url": "ftp://x"}]}, "scenarios[0].url"),
    ({"stores": []}, "stores"),
    ({"licence_valid_from": "2020-13-01"}, "licence_valid_from"),
    ({"legal_person_id_valid_until": "2001-01-01"}, "legal_person_id_valid_until"),
]


@pytest.mark.parametrize(("changes", "param"), ONE_BAD_FIELD)
def test_it_names_the_field_that_is_wrong(changes, param):
    with pytest.raises(InvalidRequest) as excinfo:
        validate_record(record(**changes))
    assert excinfo.value.param == param
    assert excinfo.value.message


@pytest.mark.parametrize(("changes", "param"), ONE_BAD_FIELD)
def test_one_bad_field_is_exactly_one_problem(changes, param):
    assert [problem.param for problem in validate_record_problems(record(**changes))] == [param]


def test_it_accepts_a_complete_record_with_no_problem():
    assert validate_record_problems(record()) == []


def test_it_finds_every_bad_field_at_once_in_the_templates_column_order():
    data = record(contact_phone="12800138000", licence_no="91330106MA2B00000V", mcc="58")
    data["settlement_account"] = dict(data["settlement_account"], account_number="6222-ABC")

    problems = validate_record_problems(data)

    assert [p.param for p in problems] == ["licence_no", "contact_phone", "mcc", "settlement_account.account_number"]
    assert all(p.message for p in problems)
    # validate_record raises the first of them: the partner API's one ``param`` is the batch preview's first problem.
    with pytest.raises(InvalidRequest) as excinfo:
        validate_record(data)
    assert (excinfo.value.param, excinfo.value.message) == (problems[0].param, problems[0].message)


def test_problems_come_in_the_order_of_the_templates_columns_whatever_goes_wrong():
    position = {column.key: i for i, column in enumerate(COLUMNS)}
    data = {key: "?" for key in record()}  # every field the wrong shape or value
    data.update(subject_type="enterprise", licence_valid_until="1999-01-01", scenarios=[{"type": "website"}],
                stores=[{"store_no": ""}], settlement_account={"account_type": "personal"})

    params = [p.param for p in validate_record_problems(data)]

    assert len(params) > 20
    columns = [column_for_param(param) for param in params]
    assert None not in columns
    assert [position[c] for c in columns] == sorted(position[c] for c in columns), params


def test_a_check_that_depends_on_another_bad_field_waits_for_it():
    # The ID number's format depends on the ID type; the holder's name on the account type.
    data = record(legal_person_id_type="driving_licence", legal_person_id_number="not-checked")
    data["settlement_account"] = dict(data["settlement_account"], account_type="personal")
    assert [p.param for p in validate_record_problems(data)] == ["legal_person_id_type",
                                                                "settlement_account.account_type"]
    # An unknown subject type leaves open whether a licence is needed: empty licence cells are not asked for yet,
    # a filled one is still checked.
    assert [p.param for p in validate_record_problems(record(subject_type="company", licence_no=""))] == [
        "subject_type"]
    assert [p.param for p in validate_record_problems(record(subject_type="company", licence_no="9133"))] == [
        "subject_type", "licence_no"]


def test_it_requires_an_enterprise_to_settle_to_a_corporate_account_in_its_own_name():
    data = record()
    data["settlement_account"] = dict(data["settlement_account"], account_type="personal", account_holder="张三")
    with pytest.raises(InvalidRequest) as excinfo:
        validate_record(data)
    assert excinfo.value.param == "settlement_account.account_type"

    data["settlement_account"] = dict(data["settlement_account"], account_type="corporate", account_holder="别人公司")
    with pytest.raises(InvalidRequest) as excinfo:
        validate_record(data)
    assert excinfo.value.param == "settlement_account.account_holder"


def test_it_lets_a_micro_merchant_onboard_without_a_licence_to_the_legal_persons_account():
    data = record(subject_type="micro", licence_no="", legal_name="张三的早餐店", short_name="早餐店")
    data["settlement_account"] = dict(data["settlement_account"], account_type="personal", account_holder="张三")
    result = validate_record(data)
    assert result.merchant["licence_no"] == ""
    assert result.settlement["account_type"] == "personal"


def test_it_asks_for_documents_by_subject_type_and_scenario():
    assert required_documents(subject_type="enterprise", scenarios=[{"type": "website"}]) == {
        "licence", "id_front", "id_back", "bank_card", "site_screenshot"}
    assert required_documents(subject_type="micro", scenarios=[{"type": "store"}]) == {
        "id_front", "id_back", "bank_card", "store_front", "store_inside"}


def test_check_characters_follow_the_national_standards():
    # GB 11643 sample ID and a GB 32100 code computed independently.
    assert validation.id_card_check_char("11010519491231002") == "X"
    assert validation.uscc_check_char("91350100M000100Y4") == "3"


@pytest.mark.parametrize("code", ["30833101234", "3083310123456", "30833101234X", "308-331-012345"])
def test_a_branch_code_that_is_not_twelve_digits_is_refused_naming_the_field(code):
    data = record()
    data["settlement_account"] = dict(data["settlement_account"], bank_branch_code=code)

    with pytest.raises(InvalidRequest) as excinfo:
        validate_record(data)

    assert excinfo.value.param == "settlement_account.bank_branch_code" and "12 digits" in excinfo.value.message


@pytest.mark.parametrize(("code", "kept"), [("308331012345", "308331012345"), ("３０８３３１０１２３４５", "308331012345"),
                                            (" 308331012345 ", "308331012345"), ("", "")])
def test_a_twelve_digit_branch_code_is_kept_plain_and_none_is_fine(code, kept):
    data = record()
    data["settlement_account"] = dict(data["settlement_account"], bank_branch_code=code)

    assert validate_record(data).settlement["bank_branch_code"] == kept

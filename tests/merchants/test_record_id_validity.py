"""The legal person's ID document is checked like the licence: valid until a date after it was issued, and not
expired (issue 4 "Field-level validation that a clerk understands"; channel-protocols.md A.13 id_card_info
card_period_begin/card_period_end). A swapped pair of dates is a typing mistake the clerk is told about, naming the
field, before a channel refuses it."""

from __future__ import annotations

import datetime as dt

import pytest

from aggpay.errors import InvalidRequest
from merchants.services.record import validate_record, validate_record_problems
from tests.merchants.records import record


def _later(years: int) -> str:
    return (dt.date.today() + dt.timedelta(days=365 * years)).isoformat()


def test_an_id_valid_until_before_it_was_issued_is_refused_naming_the_field():
    with pytest.raises(InvalidRequest) as refused:
        validate_record(record(legal_person_id_valid_from="2015-05-01", legal_person_id_valid_until="2014-05-01"))

    assert refused.value.param == "legal_person_id_valid_until"
    assert "after legal_person_id_valid_from" in refused.value.message


def test_an_id_valid_until_the_day_it_was_issued_is_refused_too():
    problems = validate_record_problems(record(legal_person_id_valid_from="2015-05-01",
                                               legal_person_id_valid_until="2015-05-01"))
    assert [problem.param for problem in problems] == ["legal_person_id_valid_until"]


def test_a_long_term_id_or_one_valid_after_it_was_issued_passes():
    assert validate_record(record(legal_person_id_valid_until=None)).merchant["legal_person_id_valid_until"] is None
    checked = validate_record(record(legal_person_id_valid_from="2015-05-01", legal_person_id_valid_until=_later(2)))
    assert checked.merchant["legal_person_id_valid_until"] == dt.date.fromisoformat(_later(2))

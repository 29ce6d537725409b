"""The finance pages refuse a day before 2000-01-01 — the first day the statements API answers for — naming the
field, as they refuse 9999-12-31: the Shanghai midnight of 0001-01-01 is in the year 0 in UTC, which Python has not
got, and reading such a day was an OverflowError (a 500) on the page and both CSVs."""

from __future__ import annotations

import datetime as dt

import pytest

from aggpay.errors import InvalidRequest
from trades.services.finance import fee_report
from trades.services.statements import statement_get

pytestmark = pytest.mark.django_db

PAGE = "/staff/finance/"
TOO_EARLY = "there are no statements before 2000-01-01"
REPORT_TOO_EARLY = "a report must start on 2000-01-01 or later"


@pytest.fixture
def finance_client(client, staff_member):
    client.force_login(staff_member("finance"))
    return client


@pytest.mark.parametrize("start, end", [("0001-01-01", "0001-01-01"), ("1999-12-31", "2000-01-01")])
def test_a_report_starting_before_2000_is_refused_naming_from(finance_client, start, end):
    response = finance_client.get(PAGE, {"from": start, "to": end})

    assert response.status_code == 200
    assert response.context["report"] is None
    assert response.context["report_form"].errors == {"from": [REPORT_TOO_EARLY]}
    assert REPORT_TOO_EARLY in response.content.decode()


def test_the_fees_csv_of_such_a_range_is_a_400_naming_from(finance_client):
    response = finance_client.get(f"{PAGE}fees.csv", {"from": "0001-01-01", "to": "0001-01-01"})

    assert response.status_code == 400
    assert response.context["report_form"].errors == {"from": [REPORT_TOO_EARLY]}


def test_a_report_from_the_first_day_is_shown(finance_client):
    response = finance_client.get(PAGE, {"from": "2000-01-01", "to": "2000-01-01"})

    assert response.status_code == 200
    assert response.context["report"].start == dt.date(2000, 1, 1) and response.context["report"].rows == []


@pytest.mark.parametrize("day", ["0001-01-01", "1999-12-31"])
def test_a_statement_before_2000_is_refused_naming_the_day(finance_client, tea_house, day):
    query = {"merchant_no": tea_house.merchant_no, "date": day}

    response = finance_client.get(PAGE, query)

    assert response.status_code == 200
    assert response.context["statement"] is None
    assert response.context["statement_form"].errors == {"date": [TOO_EARLY]}
    assert TOO_EARLY in response.content.decode()
    csv_response = finance_client.get(f"{PAGE}statement.csv", query)
    assert csv_response.status_code == 400
    assert csv_response.context["statement_form"].errors == {"date": [TOO_EARLY]}


def test_the_services_refuse_such_days_themselves(tea_house):
    with pytest.raises(InvalidRequest) as statement:
        statement_get(merchant=tea_house, day=dt.date.min)
    assert (statement.value.param, statement.value.message) == ("date", TOO_EARLY)
    with pytest.raises(InvalidRequest) as report:
        fee_report(start=dt.date.min, end=dt.date.min)
    assert (report.value.param, report.value.message) == ("from", REPORT_TOO_EARLY)
    assert statement_get(merchant=tea_house, day=dt.date(2000, 1, 1)).lines == []

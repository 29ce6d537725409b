"""The statement CSV is safe to open in Excel (merchant-api.md "Statements"; merchants.batch.export.safe_cell): the
merchant's own numbers may start with = + - @ and would run as formulas there (CSV injection), so a text cell that
starts with one gets a leading ' — in the CSV the merchant downloads from the API (signed over what is sent) and in
the one finance downloads from /staff/finance/. The JSON carries the merchant's numbers exactly."""

from __future__ import annotations

import csv
import io

import pytest

from aggpay.api.client import AggpayClient
from tests.trades.ledger import DAY, at, paid_order, refunded, reversed_at
from trades.services.statements import LINE_FIELDS

pytestmark = pytest.mark.django_db


@pytest.fixture
def dashes(tea_house):
    """A payment "-2-3-4x", partly refunded as "-1-1-1", and a payment "@SUM(A1)" reversed the same day."""
    order = paid_order(tea_house, "-2-3-4x", amount=10_000, rate="0.0038", paid_at=at(10))
    refund = refunded(order, "-1-1-1", amount=2_500, succeeded_at=at(11))
    at_sign = paid_order(tea_house, "@SUM(A1)", amount=1_000, rate="0.0038", paid_at=at(12),
                         product="wechat.barcode")
    reversed_at(at_sign, at(12, 0, 30))
    return {"order": order, "refund": refund, "at_sign": at_sign}


def rows_of(content: bytes) -> list[dict]:
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    assert tuple(rows[0]) == LINE_FIELDS
    return [dict(zip(LINE_FIELDS, row, strict=True)) for row in rows[1:] if row[0] != "summary"]


def cells(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(row["type"], row["out_trade_no"], row["out_refund_no"]) for row in rows]


EXPECTED_CELLS = [("payment", "'-2-3-4x", ""), ("refund", "'-2-3-4x", "'-1-1-1"),
                  ("payment", "'@SUM(A1)", ""), ("reversal", "'@SUM(A1)", "")]


def test_the_api_csv_quotes_a_merchants_number_that_excel_would_run_as_a_formula(signed_api, tea_house_app,
                                                                                 dashes):
    response = signed_api(tea_house_app).get(f"/api/v1/bills/{DAY}?format=csv")

    assert response.status_code == 200, response.content
    rows = rows_of(response.content)
    assert cells(rows) == EXPECTED_CELLS
    # Only text cells: the figures stay numbers a spreadsheet adds up.
    assert [(row["amount"], row["fee"], row["net"]) for row in rows] == [
        ("10000", "38", "9962"), ("-2500", "-10", "-2490"), ("1000", "4", "996"), ("-1000", "-4", "-996")]
    assert response.content.decode().splitlines()[-1] == "summary,2,11000,42,2,-3500,-14,7500,28,7472"


def test_the_api_csv_is_signed_over_the_quoted_bytes_it_sends(signed_api, tea_house_app, dashes):
    response = signed_api(tea_house_app).get(f"/api/v1/bills/{DAY}?format=csv")

    client = AggpayClient("http://testserver", tea_house_app.app_id, secret=tea_house_app.secret)
    assert b"'-1-1-1" in response.content
    assert client.verify(response.headers, response.content)
    assert not client.verify(response.headers, response.content.replace(b"'-1-1-1", b"-1-1-1"))


def test_the_json_statement_carries_the_merchants_numbers_exactly(signed_api, tea_house_app, dashes):
    body = signed_api(tea_house_app).get(f"/api/v1/bills/{DAY}").json()

    assert [(line["type"], line["out_trade_no"], line["out_refund_no"]) for line in body["lines"]] == [
        ("payment", "-2-3-4x", None), ("refund", "-2-3-4x", "-1-1-1"), ("payment", "@SUM(A1)", None),
        ("reversal", "@SUM(A1)", None)]


def test_the_staff_statement_csv_quotes_them_too_and_the_page_shows_them_as_they_are(client, staff_member,
                                                                                    tea_house, dashes):
    client.force_login(staff_member("finance"))
    query = {"merchant_no": tea_house.merchant_no, "date": DAY.isoformat()}

    response = client.get("/staff/finance/statement.csv", query)

    assert response.status_code == 200
    assert cells(rows_of(response.content)) == EXPECTED_CELLS
    page = client.get("/staff/finance/", query)
    assert [(line["out_trade_no"], line["out_refund_no"]) for line in page.context["statement_lines"]] == [
        ("-2-3-4x", None), ("-2-3-4x", "-1-1-1"), ("@SUM(A1)", None), ("@SUM(A1)", None)]

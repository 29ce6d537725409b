"""The statement lookup on /staff/finance/ takes a merchant number as finance types it: ``m2600000001`` is
``M2600000001`` (merchant numbers are upper case), on the page and for its CSV."""

from __future__ import annotations

import pytest

from tests.trades.ledger import DAY, at, paid_order

pytestmark = pytest.mark.django_db


def test_a_lower_case_merchant_number_finds_the_merchant(client, staff_member, tea_house):
    client.force_login(staff_member("finance"))
    paid_order(tea_house, "T1001", amount=10_000, rate="0.0038", paid_at=at(10))
    typed = f"  {tea_house.merchant_no.lower()} "
    assert typed.strip() != tea_house.merchant_no

    response = client.get("/staff/finance/", {"merchant_no": typed, "date": DAY.isoformat()})

    assert response.status_code == 200
    assert response.context["statement_form"].errors == {}
    assert response.context["statement_merchant"] == tea_house
    assert [line["out_trade_no"] for line in response.context["statement_lines"]] == ["T1001"]
    csv_response = client.get("/staff/finance/statement.csv", {"merchant_no": typed, "date": DAY.isoformat()})
    assert csv_response.status_code == 200
    assert f"aggpay-statement-{tea_house.merchant_no}-{DAY.isoformat()}.csv" in csv_response["Content-Disposition"]


def test_an_unknown_number_is_still_refused_as_typed(client, staff_member):
    client.force_login(staff_member("finance"))

    response = client.get("/staff/finance/", {"merchant_no": "m404", "date": DAY.isoformat()})

    assert response.context["statement_form"].errors == {"merchant_no": ["No merchant has the number “M404”."]}

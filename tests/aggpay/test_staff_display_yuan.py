"""Money on the staff pages reads as people write it: the sign before the currency (-¥248.12), never after it
(¥-248.12) — the statement's summary and the profit chart's tooltips give money back as negative sums."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import ChannelAccountFactory
from tests.trades.ledger import DAY, at, paid_order, refunded

pytestmark = pytest.mark.django_db


def test_the_sign_comes_before_the_currency():
    # Imported here, not at the top: without the filter, the page test below still runs and shows what it reads.
    from aggpay.templatetags.staff_display import yuan

    assert yuan(-24_812) == "-¥248.12"
    assert yuan(24_812) == "¥248.12"
    assert yuan(0) == "¥0.00"
    assert yuan(-1) == "-¥0.01"
    assert yuan(-123_456_789) == "-¥1,234,567.89"


def test_the_statement_summary_and_the_chart_show_negative_sums_sign_first(client, staff_member, tea_house):
    client.force_login(staff_member("finance"))
    account = ChannelAccountFactory(code="bank-a", name="Bank A")
    # 30 000 fen at 0.60 % (fee 180, cost 0.20 % = 60) paid on the 9th; 24 812 of it refunded on the 10th: fee back
    # 180 × 24812/30000 = 148.872 → 149, cost back 60 × 24812/30000 = 49.624 → 50 → profit reversed 99.
    order = paid_order(tea_house, "T1001", amount=30_000, rate="0.006", paid_at=at(10, day=DAY - dt.timedelta(days=1)),
                       channel_account=account)
    refunded(order, "R1", amount=24_812, succeeded_at=at(11))

    response = client.get("/staff/finance/", {"merchant_no": tea_house.merchant_no, "date": DAY.isoformat(),
                                              "from": DAY.isoformat(), "to": DAY.isoformat()})

    summary = dict(response.context["statement_summary"])
    assert summary["Refunds and reversals"] == "1 · -¥248.12"
    assert (summary["Fees given back"], summary["Amount"], summary["Net to the merchant"]) == (
        "-¥1.49", "-¥248.12", "-¥246.63")
    assert summary["Fees charged"] == "¥0.00"
    html = response.content.decode()
    assert "¥-" not in html
    assert "2026-03-10: -¥0.99</title>" in html  # the chart's tooltip of the day's loss

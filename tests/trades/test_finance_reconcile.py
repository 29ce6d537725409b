"""Finance reconciling a month (design §1 "Money", §5 rules 1 and 12; merchant-api.md "Statements"): the fee report
and the merchant statements add up across days — a payment at 23:59:59 refunded in parts from 00:00:01 on, a
failed refund in between — and what finance downloads is safe to open and refused, not a 500, for a day the
calendar cannot end.

Trades are written with the ledger helpers (tests.trades.ledger), as the order and refund services leave them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from aggpay.errors import InvalidRequest
from tests.factories import ChannelAccountFactory
from tests.trades.ledger import DAY, at, paid_order, refunded, reversed_at
from trades.models import Order
from trades.services.finance import fee_report
from trades.services.statements import statement_get

pytestmark = pytest.mark.django_db

FEES_CSV = "/staff/finance/fees.csv"


def day(n: int) -> dt.date:
    return DAY + dt.timedelta(days=n)


@pytest.fixture
def finance_client(client, staff_member):
    client.force_login(staff_member("finance"))
    return client


def test_a_payment_refunded_in_thirds_over_three_days_gives_back_its_whole_snapshot_each_part_on_its_day(tea_house):
    # 9 999 fen at 0.6 % / 0.25 % / 0.05 %: fee 59.994→60, cost 24.9975→25, rebate 4.9995→5. Each third's share
    # is fractional (20, 8.33, 1.67): only the cumulative proration makes the thirds add up to 60 / 25 / 5.
    account = ChannelAccountFactory(code="bank-r", name="Bank R")
    order = paid_order(tea_house, "RECON1", amount=9_999, rate="0.006", cost_rate="0.0025", rebate_rate="0.0005",
                       channel_account=account, paid_at=at(23, 59, 59))
    refunded(order, "RC-1", amount=3_333, succeeded_at=at(0, 0, 1, day=day(1)))
    refunded(order, "RC-X", amount=3_333, succeeded_at=None, state="failed")  # moved nothing
    refunded(order, "RC-2", amount=3_333, succeeded_at=at(12, day=day(2)))
    refunded(order, "RC-3", amount=3_333, succeeded_at=at(23, 59, 59, 999_999, day=day(3)))

    report = fee_report(start=DAY, end=day(3))
    by_day = {d: f for d, f in report.daily}
    assert [by_day[d].payment_amount for d in map(day, range(4))] == [9_999, 0, 0, 0]
    assert [by_day[d].refund_amount for d in map(day, range(4))] == [0, 3_333, 3_333, 3_333]
    totals = report.totals
    assert (totals.merchant_fee_reversed, totals.channel_cost_reversed, totals.rebate_reversed) == (60, 25, 5)
    assert (totals.net_amount, totals.net_profit) == (0, 0)  # fully refunded: nothing gained, nothing lost

    statements = [statement_get(merchant=tea_house, day=day(n)) for n in range(4)]
    assert [[line.type for line in s.lines] for s in statements] == [["payment"], ["refund"], ["refund"], ["refund"]]
    assert sum(s.summary.fee for s in statements) == 0 and sum(s.summary.net for s in statements) == 0
    for s in statements:
        assert s.summary.fee == sum(line.fee for line in s.lines)
        assert s.summary.net == sum(line.net for line in s.lines)


def test_a_reversed_paid_order_saying_its_whole_amount_went_back_is_counted_back_once(tea_house):
    # Since 6f3df94 a reversed paid order's refunded_amount is its amount (orders._reversal_refunded). The report and
    # the statement date the reversal by its event and take the snapshot once; no Refund row adds it again.
    account = ChannelAccountFactory(code="bank-v", name="Bank V")
    order = paid_order(tea_house, "REV1", amount=10_000, channel_account=account, paid_at=at(23, 59, 59),
                       product="wechat.barcode")
    reversed_at(order, at(0, 0, 1, day=day(1)))
    Order.objects.filter(pk=order.pk).update(refunded_amount=10_000, refund_reserved=10_000, refund_state="full")

    report = fee_report(start=DAY, end=day(1))
    assert [(d, f.payment_amount, f.refund_count, f.refund_amount, f.merchant_fee_reversed)
            for d, f in report.daily] == [(DAY, 10_000, 0, 0, 0), (day(1), 0, 1, 10_000, 38)]
    assert report.totals.net_profit == 0
    next_day = statement_get(merchant=tea_house, day=day(1))
    assert [(line.type, line.amount, line.fee) for line in next_day.lines] == [("reversal", -10_000, -38)]


# --- the CSV is safe to open in Excel ---------------------------------------------------------------------------
def test_an_account_name_or_code_that_reads_as_a_formula_is_written_as_text_in_the_fees_csv(finance_client,
                                                                                             tea_house):
    # Operations type account names freely (channels.services.accounts); finance opens the file in Excel.
    account = ChannelAccountFactory(code="-1-1", name='=HYPERLINK("http://evil.example","Bank")')
    paid_order(tea_house, "CSVF1", amount=10_000, channel_account=account, paid_at=at(10))

    response = finance_client.get(FEES_CSV, {"from": DAY.isoformat(), "to": DAY.isoformat()})

    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0]["channel_account"] == "'-1-1"
    assert rows[0]["channel_account_name"] == '\'=HYPERLINK("http://evil.example","Bank")'
    # Numbers stay numbers; the total row keeps its empty cells.
    assert rows[0]["payment_amount_fen"] == "10000" and rows[-1]["channel_account"] == ""


# --- the last day of the calendar -------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/staff/finance/", FEES_CSV])
def test_a_range_ending_on_the_calendars_last_day_is_refused_naming_to_not_a_500(finance_client, url):
    response = finance_client.get(url, {"from": "9999-12-30", "to": "9999-12-31"})

    assert response.status_code == (200 if url == "/staff/finance/" else 400)
    assert response.context["report"] is None
    assert list(response.context["report_form"].errors) == ["to"]


def test_the_report_service_refuses_the_calendars_last_day_naming_to():
    with pytest.raises(InvalidRequest) as refused:
        fee_report(start=dt.date(9999, 12, 31), end=dt.date(9999, 12, 31))
    assert refused.value.param == "to"

"""/staff/finance/ — the fees and profit report and the merchant statement lookup (trades.services.finance,
trades.views_finance; design §1 "Money", §8 finance).

Trades are written as rows with their fee snapshot (trades.services.fees), as the order and refund services leave
them; every figure asserted is worked out by hand in the fixture's docstring.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from tests.factories import ChannelAccountFactory
from tests.trades.ledger import DAY, at, paid_order, refunded, reversed_at
from trades.models import Order
from trades.services.finance import CSV_HEADER, fee_report, fee_report_default_range
from trades.services.statements import statement_as_csv, statement_get

pytestmark = pytest.mark.django_db

NEXT = DAY + dt.timedelta(days=1)
PAGE = "/staff/finance/"


def paid(merchant, out_trade_no: str, *, account, rates: tuple[str, str, str], **fields) -> Order:
    """A paid order on ``account`` with the fee snapshot of (merchant rate, channel cost rate, rebate rate)."""
    rate, cost_rate, rebate_rate = rates
    return paid_order(merchant, out_trade_no, channel_account=account, rate=rate, cost_rate=cost_rate,
                      rebate_rate=rebate_rate, **fields)


@pytest.fixture
def bank_a(db):
    return ChannelAccountFactory(code="bank-a", name="Bank A 甲银行")


@pytest.fixture
def bank_b(db):
    return ChannelAccountFactory(code="bank-b", name="Bank B")


@pytest.fixture
def tea_house_week(tea_house, bank_a, bank_b):
    """Tea House's 10 and 11 March 2026 (Shanghai) on two channel accounts.

    10 March, bank-a, wechat.native (merchant 0.38 % / 0.60 %, cost 0.20 %, rebate 0.05 %):
      A1  10 000 fen: fee 38, cost 20, rebate 5            → profit 23
      A2   2 990 fen: fee 17.94→18, cost 5.98→6, rebate 1.495→1 → profit 13
      R1   2 500 of A1 at 16:40: back 38×¼=9.5→10, 20×¼=5, 5×¼=1.25→1 → profit reversed 10−5+1 = 6
      payments 2 · 12 990 · fee 56 · cost 26 · rebate 6 · profit 36; refunds 1 · 2 500 · 10 · 5 · 1 · 6; net 30
    10 March, bank-b, alipay.qr (0.60 %, cost 0.25 %, no rebate):
      B1  50 000 fen at 23:59:59.999999: fee 300, cost 125, rebate 0 → profit 175; net 175
    11 March:
      B2   1 000 fen on bank-b at 00:00:00 (16:00 UTC on the 10th): fee 6, cost 2.5→3 → profit 3
      R2  10 000 of B1 at 09:00: back 300×⅕=60, 125×⅕=25, 0 → profit reversed 35
      bank-b alipay.qr: payments 1 · 1 000 · 6 · 3 · 0 · 3; refunds 1 · 10 000 · 60 · 25 · 0 · 35; net −32
    Not money that moved: an unpaid order, a failed refund, a refund still pending.
    """
    merchant = tea_house
    native = ("0.0038", "0.0020", "0.0005")
    a1 = paid(merchant, "A1", account=bank_a, amount=10_000, rates=native, paid_at=at(10, 15))
    a2 = paid(merchant, "A2", account=bank_a, amount=2_990, rates=("0.006", "0.0020", "0.0005"), paid_at=at(14, 30))
    r1 = refunded(a1, "R1", amount=2_500, succeeded_at=at(16, 40, 11))
    qr = ("0.006", "0.0025", "0")
    b1 = paid(merchant, "B1", account=bank_b, amount=50_000, rates=qr, paid_at=at(23, 59, 59, 999_999),
              product="alipay.qr")
    b2 = paid(merchant, "B2", account=bank_b, amount=1_000, rates=qr, paid_at=at(0, day=NEXT), product="alipay.qr")
    r2 = refunded(b1, "R2", amount=10_000, succeeded_at=at(9, day=NEXT))
    Order.objects.create(merchant=merchant, out_trade_no="U1", amount=500, product="wechat.native",
                         channel_account=bank_a, subject="tea", request_fingerprint="x" * 64, expires_at=at(18))
    refunded(a2, "R3", amount=100, succeeded_at=None, state="failed")
    refunded(a2, "R4", amount=200, succeeded_at=None, state="pending")
    return {"A1": a1, "A2": a2, "B1": b1, "B2": b2, "R1": r1, "R2": r2}


def figures(row) -> dict:
    return row.figures.as_dict()


A_DAY = {"payment_count": 2, "payment_amount": 12_990, "merchant_fee": 56, "channel_cost": 26, "rebate": 6,
         "profit": 36, "refund_count": 1, "refund_amount": 2_500, "merchant_fee_reversed": 10,
         "channel_cost_reversed": 5, "rebate_reversed": 1, "profit_reversed": 6, "net_amount": 10_490,
         "net_profit": 30}
B_DAY = {"payment_count": 1, "payment_amount": 50_000, "merchant_fee": 300, "channel_cost": 125, "rebate": 0,
         "profit": 175, "refund_count": 0, "refund_amount": 0, "merchant_fee_reversed": 0,
         "channel_cost_reversed": 0, "rebate_reversed": 0, "profit_reversed": 0, "net_amount": 50_000,
         "net_profit": 175}
B_NEXT = {"payment_count": 1, "payment_amount": 1_000, "merchant_fee": 6, "channel_cost": 3, "rebate": 0,
          "profit": 3, "refund_count": 1, "refund_amount": 10_000, "merchant_fee_reversed": 60,
          "channel_cost_reversed": 25, "rebate_reversed": 0, "profit_reversed": 35, "net_amount": -9_000,
          "net_profit": -32}


# --- the figures ------------------------------------------------------------------------------------------------
def test_a_day_with_payments_on_two_accounts_and_a_partial_refund_adds_up_exactly(tea_house_week):
    report = fee_report(start=DAY, end=DAY)

    assert [(r.day, r.account_code, r.product) for r in report.rows] == [
        (DAY, "bank-a", "wechat.native"), (DAY, "bank-b", "alipay.qr")]
    assert figures(report.rows[0]) == A_DAY
    assert figures(report.rows[1]) == B_DAY
    assert report.totals.as_dict() == {name: A_DAY[name] + B_DAY[name] for name in A_DAY}
    assert report.totals.net_profit == 205


def test_a_refund_reverses_its_fees_on_the_day_it_succeeded_not_the_day_of_the_payment(tea_house_week):
    report = fee_report(start=DAY, end=NEXT)

    rows = {(r.day, r.account_code): figures(r) for r in report.rows}
    assert rows == {(DAY, "bank-a"): A_DAY, (DAY, "bank-b"): B_DAY, (NEXT, "bank-b"): B_NEXT}
    assert [(day, f.net_profit) for day, f in report.daily] == [(DAY, 205), (NEXT, -32)]


def test_the_day_ends_at_midnight_in_shanghai_not_in_utc(tea_house_week):
    # B2 was paid at 16:00 UTC on the 10th, which is 00:00 on the 11th in Shanghai: it belongs to the 11th.
    assert tea_house_week["B2"].paid_at == dt.datetime(2026, 3, 10, 16, 0, tzinfo=dt.UTC)
    assert [r.figures.payment_count for r in fee_report(start=NEXT, end=NEXT).rows] == [1]
    # B1, a microsecond before midnight, still belongs to the 10th.
    assert fee_report(start=DAY, end=DAY).totals.payment_amount == 10_000 + 2_990 + 50_000


def test_a_reversed_payment_gives_its_whole_snapshot_back_on_the_day_it_was_reversed(tea_house, bank_a):
    order = paid(tea_house, "C1", account=bank_a, amount=8_000, rates=("0.0038", "0.0020", "0.0005"),
                 paid_at=at(11), product="wechat.barcode", requested="barcode")
    reversed_at(order, at(8, day=NEXT))

    (payment,) = fee_report(start=DAY, end=DAY).rows
    (reversal,) = fee_report(start=NEXT, end=NEXT).rows
    # 8 000 fen: fee 30.4→30, cost 16, rebate 4, profit 18 — all of it back; the product the channel was asked for.
    assert (payment.product, payment.figures.profit) == ("wechat.barcode", 18)
    assert (reversal.figures.refund_count, reversal.figures.refund_amount, reversal.figures.profit_reversed,
            reversal.figures.net_profit) == (1, 8_000, 18, -18)


def test_filters_narrow_to_one_channel_account_and_one_product(tea_house_week, bank_a, bank_b):
    by_account = fee_report(start=DAY, end=NEXT, account_id=bank_b.pk)
    assert [(r.day, r.account_code) for r in by_account.rows] == [(DAY, "bank-b"), (NEXT, "bank-b")]
    assert by_account.totals.net_profit == 175 - 32

    by_product = fee_report(start=DAY, end=NEXT, product="wechat.native")
    assert [(r.day, r.account_code, r.product) for r in by_product.rows] == [(DAY, "bank-a", "wechat.native")]
    assert by_product.totals.as_dict() == A_DAY

    assert fee_report(start=DAY, end=NEXT, account_id=bank_a.pk, product="alipay.qr").rows == []


def test_the_default_range_is_the_last_seven_closed_days_in_shanghai():
    # 00:30 on the 11th in Shanghai is still the 10th in UTC: the 10th has closed, the 11th has not.
    now = dt.datetime(2026, 3, 10, 16, 30, tzinfo=dt.UTC)
    assert fee_report_default_range(now=now) == (dt.date(2026, 3, 4), DAY)


def test_the_report_reads_three_queries_however_many_trades(tea_house, bank_a, bank_b,
                                                             django_assert_num_queries):
    for i in range(30):
        order = paid(tea_house, f"V{i}", account=(bank_a, bank_b)[i % 2], amount=1_000 + i,
                     rates=("0.006", "0.002", "0"), paid_at=at(9 + i % 10, day=DAY - dt.timedelta(days=i % 5)),
                     product=("wechat.native", "alipay.qr", "unionpay.qr")[i % 3])
        if i % 4 == 0:
            refunded(order, f"VR{i}", amount=100, succeeded_at=at(20, day=DAY))
    with django_assert_num_queries(3):  # payments, refunds, reversals
        report = fee_report(start=DAY - dt.timedelta(days=6), end=DAY)
    assert report.totals.payment_count == 30
    assert report.totals.refund_count == 8


# --- the page ---------------------------------------------------------------------------------------------------
@pytest.fixture
def finance_client(client, staff_member):
    client.force_login(staff_member("finance"))
    return client


def test_the_page_shows_each_group_and_the_totals_in_yuan(finance_client, tea_house_week):
    response = finance_client.get(PAGE, {"from": "2026-03-10", "to": "2026-03-11"})

    assert response.status_code == 200
    html = response.content.decode()
    rows = response.context["report_rows"]
    assert [(r["day"], r["account_code"], r["product"]) for r in rows] == [
        (DAY, "bank-a", "wechat.native"), (DAY, "bank-b", "alipay.qr"), (NEXT, "bank-b", "alipay.qr")]
    assert {c["name"]: c["text"] for c in rows[2]["cells"]}["net_profit"] == "-0.32"
    totals = {c["name"]: c["text"] for c in response.context["report_totals"]}
    assert (totals["payment_amount"], totals["refund_amount"], totals["net_profit"]) == ("639.90", "125.00", "1.73")
    assert "Bank A 甲银行" in html
    assert "reconciliation" in html and "later issue" in html


def test_the_chart_draws_one_bar_per_day_with_its_net_profit(finance_client, tea_house_week):
    response = finance_client.get(PAGE, {"from": "2026-03-09", "to": "2026-03-11"})

    bars = response.context["chart"]["bars"]
    assert [(b["day"], b["value"], b["tone"]) for b in bars] == [
        (DAY - dt.timedelta(days=1), 0, "gain"), (DAY, 205, "gain"), (NEXT, -32, "loss")]
    html = response.content.decode()
    assert "<svg" in html and 'data-day="2026-03-11" data-fen="-32"' in html
    assert "2026-03-10: ¥2.05" in html


def test_the_page_opens_on_the_last_seven_closed_days(local_midday, finance_client):
    response = finance_client.get(PAGE)

    report = response.context["report"]
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    assert (report.start, report.end) == (yesterday - dt.timedelta(days=6), yesterday)
    assert len(response.context["chart"]["bars"]) == 7
    assert b"No money moved in these days" in response.content


def test_one_click_shows_today_so_far_marked_as_not_closed(local_midday, finance_client, tea_house, bank_a):
    # Finance opens on closed days; this morning's money is one link away, and the page says it still grows.
    today = timezone.localdate()
    paid(tea_house, "T1", account=bank_a, amount=10_000, rates=("0.0038", "0.0020", "0"),
         paid_at=timezone.now())
    html = finance_client.get(PAGE).content.decode()
    link = f'href="?from={today.isoformat()}&amp;to={today.isoformat()}"'
    assert link in html and "Today so far" in html

    response = finance_client.get(PAGE, {"from": today.isoformat(), "to": today.isoformat()})

    assert response.context["report"].totals.payment_amount == 10_000
    assert b"includes a day that has not closed yet" in response.content


def test_empty_closed_days_point_to_the_money_today_has_moved(local_midday, finance_client, tea_house, bank_a):
    # A first day (or the demo, whose trades are all this morning's): the empty table says today has money.
    today = timezone.localdate()
    order = paid(tea_house, "T1", account=bank_a, amount=10_000, rates=("0.0038", "0.0020", "0"),
                 paid_at=timezone.now())
    paid(tea_house, "T2", account=bank_a, amount=2_000, rates=("0.0038", "0.0020", "0"), paid_at=timezone.now())
    refunded(order, "R1", amount=100, succeeded_at=timezone.now())

    html = finance_client.get(PAGE).content.decode()

    hint = html[html.index('id="fees-today-hint"'):]
    assert "2 payments and 1 refund or reversal so far" in hint
    assert f'href="?from={today.isoformat()}&amp;to={today.isoformat()}&amp;account={bank_a.pk}"' not in hint
    assert f'href="?from={today.isoformat()}&amp;to={today.isoformat()}">show today' in hint


def test_the_pointer_to_today_keeps_the_filter_and_counts_only_what_it_matches(local_midday, finance_client,
                                                                               tea_house, bank_a, bank_b):
    today = timezone.localdate()
    paid(tea_house, "T1", account=bank_a, amount=10_000, rates=("0.0038", "0.0020", "0"), paid_at=timezone.now())

    on_a = finance_client.get(PAGE, {"account": bank_a.pk, "product": "wechat.native"}).content.decode()
    on_b = finance_client.get(PAGE, {"account": bank_b.pk}).content.decode()

    assert "1 payment and 0 refunds or reversals so far" in on_a
    assert (f'?from={today.isoformat()}&amp;to={today.isoformat()}&amp;account={bank_a.pk}&amp;product=wechat.native'
            in on_a)
    assert "fees-today-hint" not in on_b  # nothing moved on Bank B today either


def test_empty_closed_days_say_nothing_of_today_when_today_is_empty_too(finance_client):
    response = finance_client.get(PAGE)

    assert response.context["today_so_far"] is None
    assert b"fees-today-hint" not in response.content


def test_the_page_filters_by_account_and_product(finance_client, tea_house_week, bank_b):
    response = finance_client.get(PAGE, {"from": "2026-03-10", "to": "2026-03-11", "account": bank_b.pk,
                                         "product": "alipay.qr"})

    assert [(r["day"], r["account_code"]) for r in response.context["report_rows"]] == [
        (DAY, "bank-b"), (NEXT, "bank-b")]


def test_a_range_ending_before_it_starts_is_refused_naming_the_field(finance_client):
    response = finance_client.get(PAGE, {"from": "2026-03-11", "to": "2026-03-10"})

    assert response.status_code == 200
    assert response.context["report"] is None
    assert response.context["report_form"].errors == {"to": ["must not be before From"]}


def test_the_page_reads_a_bounded_number_of_queries_however_many_trades(client, staff_member, tea_house, bank_a,
                                                                         bank_b, django_assert_max_num_queries):
    client.force_login(staff_member("finance"))
    params = {"from": "2026-03-04", "to": "2026-03-10"}

    def trades(count: int, start: int) -> None:
        for i in range(start, start + count):
            order = paid(tea_house, f"Q{i}", account=(bank_a, bank_b)[i % 2], amount=500 + i,
                         rates=("0.006", "0.002", "0.0005"), paid_at=at(10, day=DAY - dt.timedelta(days=i % 7)),
                         product=("wechat.native", "alipay.qr")[i % 3 % 2])
            if i % 3 == 0:
                refunded(order, f"QR{i}", amount=100, succeeded_at=at(22, day=DAY))

    trades(3, 0)
    with django_assert_max_num_queries(12) as few:
        assert client.get(PAGE, params).status_code == 200
    trades(60, 3)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(PAGE, params)
    assert response.context["report"].totals.payment_count == 63
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/staff/finance/fees.csv", params).status_code == 200


# --- the CSV ----------------------------------------------------------------------------------------------------
def test_the_csv_has_the_same_rows_in_fen_with_a_bom_for_excel(finance_client, tea_house_week):
    response = finance_client.get("/staff/finance/fees.csv", {"from": "2026-03-10", "to": "2026-03-11"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="aggpay-fees-2026-03-10-to-2026-03-11.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert tuple(table[0]) == CSV_HEADER
    assert table[0][:6] == ["date", "channel_account", "channel_account_name", "product", "payment_count",
                            "payment_amount_fen"]
    rows = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    assert [(r["date"], r["channel_account"], r["product"]) for r in rows] == [
        ("2026-03-10", "bank-a", "wechat.native"), ("2026-03-10", "bank-b", "alipay.qr"),
        ("2026-03-11", "bank-b", "alipay.qr"), ("total", "", "")]
    assert rows[0]["channel_account_name"] == "Bank A 甲银行"

    def fen(row):
        return {name: int(row[name if name.endswith("count") else f"{name}_fen"]) for name in A_DAY}

    assert [fen(r) for r in rows[:3]] == [A_DAY, B_DAY, B_NEXT]
    assert fen(rows[3]) == {name: A_DAY[name] + B_DAY[name] + B_NEXT[name] for name in A_DAY}
    assert [r["net_profit_yuan"] for r in rows] == ["0.30", "1.75", "-0.32", "1.73"]


def test_the_csv_of_a_filtered_report_names_the_filter(finance_client, tea_house_week, bank_b):
    response = finance_client.get("/staff/finance/fees.csv", {"from": "2026-03-10", "to": "2026-03-10",
                                                               "account": bank_b.pk, "product": "alipay.qr"})

    assert response["Content-Disposition"] == (
        'attachment; filename="aggpay-fees-2026-03-10-to-2026-03-10-bank-b-alipay.qr.csv"')
    lines = response.content.decode("utf-8-sig").splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [["2026-03-10", "bank-b"], ["total", ""]]


# --- who may look -----------------------------------------------------------------------------------------------
FINANCE_URLS = [PAGE, "/staff/finance/fees.csv", "/staff/finance/statement.csv?merchant_no=M1&date=2026-03-10"]


@pytest.mark.parametrize("role", ["onboarding_clerk", "risk_officer", "support_agent", "operations", "admin"])
def test_other_roles_get_403_on_every_finance_url(client, staff_member, role):
    client.force_login(staff_member(role))
    for url in FINANCE_URLS:
        response = client.get(url)
        assert response.status_code == 403, (role, url)
        assert b"aggpay.access_finance" in response.content


def test_a_superuser_opens_the_finance_page_like_every_section(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x" * 20))
    assert client.get(PAGE).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/staff/finance/fees.csv")
    assert response.status_code == 302
    assert response["Location"].startswith("/staff/login/?next=")


# --- the merchant statement -------------------------------------------------------------------------------------
def test_the_statement_lookup_shows_the_merchants_lines_and_summary(finance_client, tea_house, tea_house_week):
    response = finance_client.get(PAGE, {"merchant_no": tea_house.merchant_no, "date": "2026-03-10"})

    assert response.status_code == 200
    lines = response.context["statement_lines"]
    assert [(line["type"], line["out_trade_no"], line["amount_yuan"], line["fee_yuan"]) for line in lines] == [
        ("payment", "A1", "100.00", "0.38"), ("payment", "A2", "29.90", "0.18"),
        ("refund", "A1", "-25.00", "-0.10"), ("payment", "B1", "500.00", "3.00")]
    html = response.content.decode()
    assert tea_house.merchant_no in html and "Net to the merchant" in html
    assert f"merchant_no={tea_house.merchant_no}&amp;date=2026-03-10" in html  # the CSV link


def test_the_statement_csv_is_the_one_the_merchant_downloads(finance_client, tea_house, tea_house_week):
    response = finance_client.get("/staff/finance/statement.csv", {"merchant_no": tea_house.merchant_no,
                                                                    "date": "2026-03-10"})

    assert response.status_code == 200
    assert response.content == statement_as_csv(statement_get(merchant=tea_house, day=DAY))
    assert response["Content-Disposition"] == (
        f'attachment; filename="aggpay-statement-{tea_house.merchant_no}-2026-03-10.csv"')


def test_the_statement_of_a_day_not_yet_closed_is_refused_with_the_reason(local_midday, finance_client, tea_house):
    today = timezone.localdate()
    response = finance_client.get(PAGE, {"merchant_no": tea_house.merchant_no, "date": today.isoformat()})

    assert response.status_code == 200
    assert response.context["statement"] is None
    (error,) = response.context["statement_form"].errors["date"]
    assert error.startswith(f"the statement for {today.isoformat()} is available once the day has closed")
    assert error in response.content.decode()
    assert finance_client.get("/staff/finance/statement.csv", {"merchant_no": tea_house.merchant_no,
                                                               "date": today.isoformat()}).status_code == 400


def test_an_unknown_merchant_number_is_refused_naming_the_field(finance_client):
    response = finance_client.get(PAGE, {"merchant_no": "M404", "date": "2026-03-10"})

    assert response.context["statement_form"].errors == {"merchant_no": ["No merchant has the number “M404”."]}
    html = response.content.decode()
    assert "Merchant no" in html and "No merchant has the number “M404”." in html


def test_looking_things_up_writes_no_audit_row(finance_client, tea_house, tea_house_week):
    from aggpay.models import AuditLog

    before = AuditLog.objects.count()
    finance_client.get(PAGE, {"merchant_no": tea_house.merchant_no, "date": "2026-03-10"})
    finance_client.get("/staff/finance/fees.csv")
    assert AuditLog.objects.count() == before

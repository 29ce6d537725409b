"""GET /api/v1/bills/{date} — the merchant's statement of a closed day (merchant-api.md "Statements";
trades.services.statements has the rules: the day in Asia/Shanghai, one line per money movement, signed fen).

The trades are written as rows with their fee snapshot (trades.services.fees), as the order and refund services
leave them; the figures asserted are worked out by hand from the rates in the comments.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aggpay.api import signing
from aggpay.api.client import AggpayClient
from aggpay.errors import InvalidState
from tests.aggpay.test_api_docs import run_shell, snippet
from tests.factories import MerchantAppFactory, MerchantFactory
from tests.trades.ledger import DAY, SHANGHAI, at, paid_order, refunded, reversed_at
from trades.models import Order
from trades.services.statements import LINE_FIELDS, statement_get


@pytest.fixture
def tea_house_day(tea_house_app):
    """Tea House's 10 March 2026: two payments and a partial refund of the first.

    T1001  10 000 fen at 0.38 %  → fee 38 (exactly);   channel cost 20, profit 18 (never shown)
    T1002   2 990 fen at 0.60 %  → 17.94 → fee 18;     channel cost 5.98 → 6
    R1      2 500 fen of T1001   → 38 × 2500/10000 = 9.5 → 10 fen of fee given back
    """
    merchant = tea_house_app.merchant
    first = paid_order(merchant, "T1001", amount=10_000, rate="0.0038", paid_at=at(10, 15, 2))
    second = paid_order(merchant, "T1002", amount=2_990, rate="0.006", paid_at=at(14, 30), product="alipay.qr")
    refund = refunded(first, "R1", amount=2_500, succeeded_at=at(16, 40, 11))
    # Not money that moved that day: an unpaid order, a failed refund.
    Order.objects.create(merchant=merchant, out_trade_no="T1003", amount=500, product="wechat.native",
                         subject="tea", request_fingerprint="x" * 64, expires_at=at(18))
    refunded(second, "R2", amount=100, succeeded_at=None, state="failed")
    return {"first": first, "second": second, "refund": refund}


EXPECTED_SUMMARY = {"payment_count": 2, "payment_amount": 12_990, "payment_fee": 56, "refund_count": 1,
                    "refund_amount": -2_500, "refund_fee": -10, "amount": 10_490, "fee": 46, "net": 10_444}


def bill(api, day=DAY, query: str = ""):
    return api.get(f"/api/v1/bills/{day}{query}")


# --- the statement --------------------------------------------------------------------------------------------
def test_it_lists_each_payment_and_refund_with_fee_and_net_then_the_summary(signed_api, tea_house_app,
                                                                           tea_house_day):
    response = bill(signed_api(tea_house_app))

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["date"], body["currency"]) == ("2026-03-10", "CNY")
    first, second, refund = tea_house_day["first"], tea_house_day["second"], tea_house_day["refund"]
    assert body["lines"] == [
        {"type": "payment", "id": first.pk, "out_trade_no": "T1001", "out_refund_no": None,
         "product": "wechat.native", "channel_trade_no": "42000T1001", "channel_refund_no": None,
         "time": "2026-03-10T10:15:02+08:00", "amount": 10_000, "fee": 38, "net": 9_962},
        {"type": "payment", "id": second.pk, "out_trade_no": "T1002", "out_refund_no": None,
         "product": "alipay.qr", "channel_trade_no": "42000T1002", "channel_refund_no": None,
         "time": "2026-03-10T14:30:00+08:00", "amount": 2_990, "fee": 18, "net": 2_972},
        {"type": "refund", "id": refund.pk, "out_trade_no": "T1001", "out_refund_no": "R1",
         "product": "wechat.native", "channel_trade_no": "42000T1001", "channel_refund_no": "50300R1",
         "time": "2026-03-10T16:40:11+08:00", "amount": -2_500, "fee": -10, "net": -2_490},
    ]
    assert body["summary"] == EXPECTED_SUMMARY


def test_every_figure_is_an_integer_and_totals_are_the_sums_of_the_lines(signed_api, tea_house_app, tea_house_day):
    body = bill(signed_api(tea_house_app)).json()
    numbers = [line[k] for line in body["lines"] for k in ("amount", "fee", "net")] + list(body["summary"].values())
    assert all(type(n) is int for n in numbers)
    assert all(line["net"] == line["amount"] - line["fee"] for line in body["lines"])
    assert body["summary"]["net"] == sum(line["net"] for line in body["lines"])
    assert body["summary"]["fee"] == sum(line["fee"] for line in body["lines"])


def test_it_never_shows_our_channel_cost_rebate_or_profit(signed_api, tea_house_app, tea_house_day):
    api = signed_api(tea_house_app)
    body = bill(api).json()
    assert all(list(line) == list(LINE_FIELDS) for line in body["lines"])
    assert list(body) == ["date", "currency", "lines", "summary"] and list(body["summary"]) == list(EXPECTED_SUMMARY)
    for text in (bill(api).content.decode(), bill(api, query="?format=csv").content.decode()):
        assert "cost" not in text and "profit" not in text and "rebate" not in text


def test_the_csv_has_a_header_the_lines_and_a_summary(signed_api, tea_house_app, tea_house_day):
    response = bill(signed_api(tea_house_app), query="?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    merchant_no = tea_house_app.merchant.merchant_no
    assert response["Content-Disposition"] == f'attachment; filename="aggpay-statement-{merchant_no}-2026-03-10.csv"'
    first, second, refund = tea_house_day["first"], tea_house_day["second"], tea_house_day["refund"]
    assert response.content.decode("utf-8") == (
        "type,id,out_trade_no,out_refund_no,product,channel_trade_no,channel_refund_no,time,amount,fee,net\r\n"
        f"payment,{first.pk},T1001,,wechat.native,42000T1001,,2026-03-10T10:15:02+08:00,10000,38,9962\r\n"
        f"payment,{second.pk},T1002,,alipay.qr,42000T1002,,2026-03-10T14:30:00+08:00,2990,18,2972\r\n"
        f"refund,{refund.pk},T1001,R1,wechat.native,42000T1001,50300R1,2026-03-10T16:40:11+08:00,-2500,-10,-2490\r\n"
        "summary,payment_count,payment_amount,payment_fee,refund_count,refund_amount,refund_fee,amount,fee,net\r\n"
        "summary,2,12990,56,1,-2500,-10,10490,46,10444\r\n"
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert dict(zip(rows[-2][1:], map(int, rows[-1][1:]), strict=True)) == EXPECTED_SUMMARY


def test_format_json_is_the_default_and_can_be_asked_for(signed_api, tea_house_app, tea_house_day):
    api = signed_api(tea_house_app)
    assert bill(api, query="?format=json").content == bill(api).content


def test_a_day_without_trades_is_an_empty_statement_with_zero_totals(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    body = bill(api, day=dt.date(2026, 3, 11)).json()
    assert body == {"date": "2026-03-11", "currency": "CNY", "lines": [],
                    "summary": dict.fromkeys(EXPECTED_SUMMARY, 0)}
    rows = bill(api, day=dt.date(2026, 3, 11), query="?format=csv").content.decode().splitlines()
    assert len(rows) == 3 and rows[-1] == "summary,0,0,0,0,0,0,0,0,0"


def test_another_merchants_trades_never_appear(signed_api, tea_house_app, tea_house_day):
    other = MerchantFactory(short_name="Noodle Bar")
    other_order = paid_order(other, "T1001", amount=50_000, rate="0.006", paid_at=at(11))
    refunded(other_order, "R1", amount=1_000, succeeded_at=at(12))
    other_reversal = paid_order(other, "T2001", amount=700, rate="0.006", paid_at=at(9))
    reversed_at(other_reversal, at(9, 5))

    body = bill(signed_api(tea_house_app)).json()
    assert body["summary"] == EXPECTED_SUMMARY
    assert other_order.pk not in {line["id"] for line in body["lines"]}

    # ... and the other merchant's app sees only its own.
    other_app = MerchantAppFactory(merchant=other)
    mine = bill(signed_api(other_app)).json()
    assert [(line["type"], line["amount"]) for line in mine["lines"]] == [
        ("payment", 700), ("reversal", -700), ("payment", 50_000), ("refund", -1_000)]


# --- the day ----------------------------------------------------------------------------------------------------
def test_the_day_runs_from_midnight_to_midnight_in_shanghai(signed_api, tea_house_app):
    merchant = tea_house_app.merchant
    next_day = DAY + dt.timedelta(days=1)
    eve = DAY - dt.timedelta(days=1)
    paid_order(merchant, "EVE001", amount=100, rate="0.006", paid_at=at(23, 59, 59, 999_999, day=eve))
    opening = paid_order(merchant, "OPEN01", amount=200, rate="0.006", paid_at=at(0))
    # 07:00 in Shanghai is still 9 March in UTC: the day is Shanghai's.
    morning = paid_order(merchant, "MORN01", amount=300, rate="0.006", paid_at=at(7))
    closing = paid_order(merchant, "CLOSE1", amount=400, rate="0.006", paid_at=at(23, 59, 59, 999_999))
    paid_order(merchant, "NEXT01", amount=500, rate="0.006", paid_at=at(0, day=next_day))
    refunded(opening, "R-LATE", amount=50, succeeded_at=at(0, day=next_day))

    lines = bill(signed_api(tea_house_app)).json()["lines"]
    assert [line["id"] for line in lines] == [opening.pk, morning.pk, closing.pk]
    assert lines[1]["time"] == "2026-03-10T07:00:00+08:00"
    following = bill(signed_api(tea_house_app), day=next_day).json()["lines"]
    assert [(line["out_trade_no"], line["type"]) for line in following] == [("NEXT01", "payment"),
                                                                            ("OPEN01", "refund")]


def test_a_reversed_payment_is_a_payment_on_its_day_and_a_reversal_on_the_day_of_the_reversal(signed_api,
                                                                                            tea_house_app):
    merchant = tea_house_app.merchant
    # 1 000 fen at 0.38 % → 3.8 → fee 4; the reversal gives the whole payment and the whole fee back.
    order = paid_order(merchant, "BAR001", amount=1_000, rate="0.0038", paid_at=at(21), product="wechat.barcode")
    reversed_at(order, at(0, 0, 30, day=DAY + dt.timedelta(days=1)))
    # Reversed before anyone paid: no money moved, no line.
    Order.objects.create(merchant=merchant, out_trade_no="BAR002", amount=800, product="wechat.barcode",
                         subject="tea", request_fingerprint="x" * 64, expires_at=at(22), state="reversed")
    api = signed_api(tea_house_app)

    paid_day = bill(api).json()
    assert [(line["type"], line["amount"], line["fee"], line["net"]) for line in paid_day["lines"]] == [
        ("payment", 1_000, 4, 996)]
    reversal_day = bill(api, day=DAY + dt.timedelta(days=1)).json()
    assert reversal_day["lines"] == [
        {"type": "reversal", "id": order.pk, "out_trade_no": "BAR001", "out_refund_no": None,
         "product": "wechat.barcode", "channel_trade_no": "42000BAR001", "channel_refund_no": None,
         "time": "2026-03-11T00:00:30+08:00", "amount": -1_000, "fee": -4, "net": -996}]
    assert reversal_day["summary"] == {"payment_count": 0, "payment_amount": 0, "payment_fee": 0, "refund_count": 1,
                                       "refund_amount": -1_000, "refund_fee": -4, "amount": -1_000, "fee": -4,
                                       "net": -996}


def test_a_day_is_available_only_once_it_has_closed_in_shanghai(tea_house_app):
    merchant = tea_house_app.merchant
    with pytest.raises(InvalidState) as refused:
        statement_get(merchant=merchant, day=DAY, now=at(23, 59, 59, 999_999))
    assert refused.value.code == "invalid_state"
    assert "2026-03-11T00:00:00+08:00" in refused.value.message
    # Midnight in Shanghai is 16:00 UTC the day before: the day has closed although UTC is still on it.
    assert statement_get(merchant=merchant, day=DAY, now=at(0, day=DAY + dt.timedelta(days=1))).lines == []


def test_today_and_later_days_answer_409_saying_when_they_will_be_available(local_midday, signed_api,
                                                                           tea_house_app):
    api = signed_api(tea_house_app)
    today = timezone.localdate(timezone.now(), SHANGHAI)
    for day in (today, today + dt.timedelta(days=1), dt.date(9999, 12, 31)):
        response = bill(api, day=day)
        assert response.status_code == 409, (day, response.content)
        error = response.json()["error"]
        assert error["code"] == "invalid_state" and error["param"] == "date"
        assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)
    message = bill(api, day=today).json()["error"]["message"]
    assert f"from {today + dt.timedelta(days=1)}T00:00:00+08:00" in message
    assert bill(api, day=today - dt.timedelta(days=1)).status_code == 200


# --- bad requests, scope, signature --------------------------------------------------------------------------
@pytest.mark.parametrize("day", ["2026-13-01", "2026-02-30", "20260310", "2026-3-10", "yesterday", "1999-12-31",
                                 "2026-03-10T00:00"])
def test_a_malformed_date_is_a_400_naming_the_date(signed_api, tea_house_app, day):
    response = bill(signed_api(tea_house_app), day=day)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "date")
    assert error["message"].startswith("date: ")


@pytest.mark.parametrize("fmt", ["xml", "CSV", ""])
def test_an_unknown_format_is_a_400_naming_the_format(signed_api, tea_house_app, fmt):
    response = bill(signed_api(tea_house_app), query=f"?format={fmt}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "format")


def test_an_app_without_the_payments_scope_is_refused(signed_api, tea_house):
    partner_only = MerchantAppFactory(merchant=tea_house, scopes=["onboarding"])
    response = bill(signed_api(partner_only))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("query", ["", "?format=csv"])
def test_the_statement_is_signed_over_its_exact_bytes(signed_api, tea_house_app, tea_house_day, query):
    response = bill(signed_api(tea_house_app), query=query)
    client = AggpayClient("http://testserver", tea_house_app.app_id, secret=tea_house_app.secret)
    assert client.verify(response.headers, response.content)
    assert not client.verify(response.headers, response.content.replace(b"9962", b"9963"))


def test_an_rsa_app_gets_its_csv_signed_with_the_platform_key(signed_api, tea_house_rsa_app, merchant_rsa_keypair,
                                                              tea_house_day):
    from aggpay.platform_keys import platform_key

    response = bill(signed_api(tea_house_rsa_app, private_key_pem=merchant_rsa_keypair[0]), query="?format=csv")
    assert response.status_code == 200
    assert signing.verify_response(response.headers, response.content,
                                   platform_public_key_pem=platform_key().public_key_pem)


# --- cost ---------------------------------------------------------------------------------------------------------
def _busy_day(merchant, count: int, *, day: dt.date = DAY) -> None:
    """``count`` payments; a third of them partly refunded, some others reversed, the same day."""
    for i in range(count):
        order = paid_order(merchant, f"BUSY{i:04d}", amount=1_000 + i, rate="0.006",
                           paid_at=at(9, i % 60, i // 60, day=day))
        if i % 3 == 0:
            refunded(order, f"RB{i:04d}", amount=100, succeeded_at=at(18, i % 60, day=day))
        elif i % 6 == 1:
            reversed_at(order, at(20, i % 60, day=day))


def test_the_statement_is_one_query_however_many_lines(tea_house_app, django_assert_num_queries):
    merchant = tea_house_app.merchant
    paid_order(merchant, "ALONE1", amount=100, rate="0.006", paid_at=at(8))
    with django_assert_num_queries(1):
        quiet = statement_get(merchant=merchant, day=DAY)
    _busy_day(merchant, 120)
    with django_assert_num_queries(1):
        busy = statement_get(merchant=merchant, day=DAY)
    assert len(quiet.lines) == 1
    assert len(busy.lines) == 1 + 120 + 40 + 20
    assert busy.summary.payment_count == 121 and busy.summary.refund_count == 60


def test_the_request_costs_the_same_number_of_queries_for_a_quiet_and_a_busy_day(signed_api, tea_house_app,
                                                                                django_assert_max_num_queries):
    api = signed_api(tea_house_app)
    merchant = tea_house_app.merchant
    quiet, busy = DAY, DAY + dt.timedelta(days=1)
    paid_order(merchant, "QUIET1", amount=100, rate="0.006", paid_at=at(10))
    _busy_day(merchant, 150, day=busy)

    def counted(day, query):
        bill(api, day=quiet)  # the front door remembers the app after its first request
        with CaptureQueriesContext(connection) as queries:
            response = bill(api, day=day, query=query)
        assert response.status_code == 200
        return len(queries.captured_queries)

    for query in ("", "?format=csv"):
        assert counted(quiet, query) == counted(busy, query)
    with django_assert_max_num_queries(4):
        assert len(bill(api, day=busy).json()["lines"]) == 150 + 50 + 25


# --- docs/api.md "Statements", run as written against a live server ----------------------------------------------
@pytest.fixture
def yesterday_in_shanghai(clear_of_midnight, tea_house_app):
    """Yesterday (China time), when Tea House was paid 10 000 fen at 0.38 % (fee 38) and refunded 2 500 (fee 10
    back): the day the documented examples ask for — the scripts read their own clock, so this one is not moved
    (local_midday) but kept clear of midnight."""
    yesterday = timezone.localdate(timezone.now(), SHANGHAI) - dt.timedelta(days=1)
    order = paid_order(tea_house_app.merchant, "DOC001", amount=10_000, rate="0.0038", paid_at=at(12, day=yesterday))
    refunded(order, "DOC-R1", amount=2_500, succeeded_at=at(13, day=yesterday))
    return yesterday


def _docs_env(live_server, app) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGGPAY_BASE_URL": live_server.url,
            "AGGPAY_APP_ID": app.app_id, "AGGPAY_APP_SECRET": app.secret}


def test_the_documented_curl_download_verifies_and_saves_the_csv(live_server, tea_house_app, yesterday_in_shanghai,
                                                                 tmp_path):
    result = run_shell(snippet("shell-statement"), _docs_env(live_server, tea_house_app), tmp_path)

    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.splitlines() == ["200", "response signature OK",
                                          "summary,1,10000,38,1,-2500,-10,7500,28,7472"]
    saved = (tmp_path / f"statement-{yesterday_in_shanghai}.csv").read_bytes()
    assert saved.startswith(b"type,id,out_trade_no,") and saved.count(b"\r\n") == 5


def test_the_documented_python_example_reads_both_formats(live_server, tea_house_app, yesterday_in_shanghai,
                                                          tmp_path):
    script = tmp_path / "statement.py"
    script.write_text(snippet("python-hmac") + "\n\n" + snippet("python-statement"))

    result = subprocess.run([sys.executable, str(script)], env=_docs_env(live_server, tea_house_app),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [f"{yesterday_in_shanghai} 2 lines amount 7500 fee 28 net 7472",
                                              "2 lines net 7472"]


def test_the_documented_download_refuses_a_statement_it_cannot_verify(live_server, tea_house_app,
                                                                     yesterday_in_shanghai, tmp_path):
    # The example's definitions and its download() alone, with a wrong secret: aggpay's answer (a 401 signed with
    # the app's real secret) must not verify.
    prelude = snippet("python-hmac").split("\nstatus, merchant = call(")[0]
    download = re.search(r"^def download\(.*?^    return response\.content$", snippet("python-statement"),
                         re.S | re.M).group(0)
    script = tmp_path / "download.py"
    script.write_text(f"{prelude}\n\n{download}\n\ndownload('/api/v1/bills/{yesterday_in_shanghai}?format=csv')\n")
    env = {**_docs_env(live_server, tea_house_app), "AGGPAY_APP_SECRET": "wrong-secret-0123456789"}

    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "response not signed by aggpay" in result.stderr

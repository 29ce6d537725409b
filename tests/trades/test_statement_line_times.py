"""Every statement line's ``time`` is to the whole second (merchant-api.md "Statements": RFC 3339, +08:00), a
reversal's too: it is dated by its order.reversed event, written with the database clock's microseconds, and was the
one line that showed them (2026-11-28T08:30:12.173646+08:00), in the JSON and in the CSV."""

from __future__ import annotations

import csv
import io

import pytest

from tests.trades.ledger import DAY, at, paid_order, reversed_at

pytestmark = pytest.mark.django_db


def test_a_reversal_is_dated_to_the_second_like_the_other_lines(signed_api, tea_house_app):
    order = paid_order(tea_house_app.merchant, "BAR001", amount=1_000, rate="0.0038", paid_at=at(8, 30),
                       product="wechat.barcode")
    reversed_at(order, at(8, 30, 12, 173_646))
    api = signed_api(tea_house_app)

    lines = api.get(f"/api/v1/bills/{DAY}").json()["lines"]
    assert [(line["type"], line["time"]) for line in lines] == [
        ("payment", "2026-03-10T08:30:00+08:00"), ("reversal", "2026-03-10T08:30:12+08:00")]
    rows = list(csv.DictReader(io.StringIO(api.get(f"/api/v1/bills/{DAY}?format=csv").content.decode())))
    assert [row["time"] for row in rows if row["type"] != "summary"] == [
        "2026-03-10T08:30:00+08:00", "2026-03-10T08:30:12+08:00"]


def test_a_reversal_in_the_last_second_of_the_day_stays_on_that_day(signed_api, tea_house_app):
    order = paid_order(tea_house_app.merchant, "BAR002", amount=1_000, rate="0.0038", paid_at=at(23),
                       product="wechat.barcode")
    reversed_at(order, at(23, 59, 59, 999_999))

    lines = signed_api(tea_house_app).get(f"/api/v1/bills/{DAY}").json()["lines"]

    assert [(line["type"], line["time"]) for line in lines] == [
        ("payment", "2026-03-10T23:00:00+08:00"), ("reversal", "2026-03-10T23:59:59+08:00")]

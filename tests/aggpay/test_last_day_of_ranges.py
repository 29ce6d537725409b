"""Every staff list filtered by a date range takes the last day a date field accepts as its end (9999-12-31): the
day after it does not exist, and adding one to it was an OverflowError — a 500 — on several lists. And the first day
(0001-01-01) as its start: its local midnight is in the year 0 in UTC, the same OverflowError (a security trial)."""

from __future__ import annotations

import datetime as dt

import pytest

from aggpay.days import on_days
from aggpay.models import AuditLog

pytestmark = pytest.mark.django_db

LISTS = [
    "/staff/channels/security/callbacks/",
    "/staff/channels/security/answers/",
    "/staff/channels/callbacks/unprocessed/",
    "/staff/risk/notices/",
    "/staff/trades/",
    "/staff/admin/audit/",
]


@pytest.mark.parametrize("url", LISTS)
def test_a_range_ending_on_the_last_day_there_is_lists_up_to_now(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 16))

    response = client.get(url, {"date_from": "2026-01-01", "date_to": "9999-12-31"})

    assert response.status_code == 200


@pytest.mark.parametrize("url", LISTS)
def test_a_range_starting_on_the_first_day_there_is_lists_everything_up_to_its_end(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 16))

    response = client.get(url, {"date_from": "0001-01-01", "date_to": "0001-01-01"})
    assert response.status_code == 200
    response = client.get(url, {"date_from": "0001-01-01"})
    assert response.status_code == 200


def test_the_first_day_there_is_sets_no_lower_bound():
    # The demo's SQLite stores datetimes as UTC text: converting 0001-01-01 00:00 Asia/Shanghai to UTC is the
    # OverflowError the trial's 500 came from (PostgreSQL takes the aware value as it is, so the page tests above
    # pass on it either way); with no lower bound there is nothing to convert.
    queryset = on_days(AuditLog.objects.all(), "created_at", date_from=dt.date.min, date_to=dt.date(2026, 1, 1))
    assert [type(child).__name__ for child in queryset.query.where.children] == ["LessThan"]

"""Every staff list filtered by a date range takes the last day a date field accepts as its end (9999-12-31): the
day after it does not exist, and adding one to it was an OverflowError — a 500 — on several lists."""

from __future__ import annotations

import pytest

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

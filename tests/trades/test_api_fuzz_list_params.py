"""The list parameters of merchant-api.md "Conventions" (`created_gte`, `created_lt`) on the orders and events lists:
a time that cannot be placed on the calendar is `400 invalid_request` naming the parameter, never a 500.

Bug: a time without an offset is read in aggpay's time zone (+08:00); in the first hours of year 1
(`created_gte=0001-01-01T00:00:00`) that moment is before the first day Python can hold in UTC, and DRF's check of
the converted time raised OverflowError — a 500 with `internal_error`. A time with an offset was already refused
("Datetime value out of range").
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/orders", "/api/v1/events"])
@pytest.mark.parametrize("param", ["created_gte", "created_lt"])
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00", "0001-01-01T07:59:59.999999"])
def test_a_creation_time_before_the_calendar_begins_is_refused_naming_it(signed_api, tea_house_app, path, param,
                                                                          value):
    response = signed_api(tea_house_app).get(f"{path}?{param}={value}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param), error

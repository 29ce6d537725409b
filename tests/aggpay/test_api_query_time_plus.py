"""A time's offset sent with a bare '+' in a query string arrives as a space (application/x-www-form-urlencoded), and
the 400 says so (docs/api.md "Errors"). Bug: DRF's "Datetime has wrong format. Use one of these formats instead:
…[+HH:MM|-HH:MM|Z]" described exactly what the developer believed they had sent."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["error"]


@pytest.mark.parametrize("name", ["created_gte", "created_lt"])
def test_a_plus_sent_unescaped_in_a_time_is_told_to_be_sent_as_2b(signed_api, tea_house_app, name):
    error = _error(signed_api(tea_house_app).get(f"/api/v1/orders?{name}=2026-11-26T00:00:00+08:00"))
    assert error["param"] == name
    assert "a '+' in a query string must be sent as %2B" in error["message"]


def test_the_same_time_with_its_plus_escaped_is_taken(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/orders?created_gte=2026-11-26T00:00:00%2B08:00")
    assert response.status_code == 200, response.content


def test_a_time_that_is_simply_wrong_keeps_the_usual_message(signed_api, tea_house_app):
    error = _error(signed_api(tea_house_app).get("/api/v1/orders?created_gte=yesterday"))
    assert error["param"] == "created_gte"
    assert "%2B" not in error["message"]

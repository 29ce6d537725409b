"""Content negotiation honours ``q=0`` (RFC 9110 §12.4.2, §12.5.1): docs/api.md "Errors" answers `400
invalid_request` when `Accept` excludes JSON, and a weight of 0 is how a client excludes it. Bug: DRF ignores the
weights, so `Accept: application/json;q=0, text/html` was answered 200 in JSON."""

from __future__ import annotations

import pytest

from aggpay.api import signing

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("accept", [
    "application/json;q=0, text/html",
    "application/json; q=0.000",
    "*/*, application/json;q=0",  # the most specific range that matches decides
    "text/html, application/*;q=0",
    "*/*;q=0",
])
def test_an_accept_header_that_gives_json_weight_zero_is_refused_with_a_signed_400(signed_api, tea_house_app,
                                                                                       accept):
    response = signed_api(tea_house_app).get("/api/v1/merchant", headers={"Accept": accept})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", None)
    assert "application/json" in error["message"]
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


@pytest.mark.parametrize("accept", [
    "application/json;q=0.1, text/html",
    "application/*;q=0, application/json",  # the more specific range wins
    "*/*;q=0, application/json",
    "text/html;q=0, */*",
    "application/json;q=oops",  # not a weight: read as none, as before
    "*/*",
])
def test_an_accept_header_that_lets_json_through_is_answered_in_json(signed_api, tea_house_app, accept):
    response = signed_api(tea_house_app).get("/api/v1/merchant", headers={"Accept": accept})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"


def test_the_refusal_waits_for_authentication(signed_api, tea_house_app):
    # As for any Accept without JSON: an unsigned request learns only that it is unsigned.
    response = signed_api(tea_house_app).get("/api/v1/merchant", authorization="",
                                              headers={"Accept": "application/json;q=0"})
    assert response.status_code == 401

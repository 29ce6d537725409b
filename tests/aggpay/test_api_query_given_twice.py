"""A query parameter given twice is refused naming it (``400 invalid_request``, ``param``), as a body field given
twice is: Django's QueryDict answered the last value silently, so ``?state=succeeded&state=failed`` listed failed
orders and ``?limit=5&limit=50`` fifty — while the merchant's own tools or a gateway may have read the first
(found by a security trial and a till developer's trial)."""

from __future__ import annotations

import pytest

from aggpay.api import signing

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("path", "param"), [
    ("/api/v1/orders?state=succeeded&state=failed", "state"),
    ("/api/v1/orders?limit=5&limit=50", "limit"),
    ("/api/v1/events?limit=1&type=order.succeeded&type=order.failed", "type"),
    ("/api/v1/merchant?x=1&x=2", "x"),
])
def test_a_query_parameter_given_twice_is_refused_naming_it(tea_house_app, signed_api, path, param):
    response = signed_api(tea_house_app).get(path)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param), error
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_each_parameter_once_is_still_taken(tea_house_app, signed_api):
    response = signed_api(tea_house_app).get("/api/v1/orders?state=succeeded&limit=5")
    assert response.status_code == 200, response.content

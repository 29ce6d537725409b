"""merchant-api.md "Errors": 429 `rate_limited` — each app may make AGGPAY_API_RATE_LIMIT_PER_SECOND signed calls a
second; the counter shares the nonce's Redis round trip (aggpay.api.credentials.nonce_claim).

The tests fill an app's counters for the coming seconds the way its own calls would, rather than racing the
clock with real calls."""

from __future__ import annotations

import time

import pytest
from django.core.cache import caches
from django.test import override_settings

from aggpay.api import credentials
from aggpay.api.authentication import rate_cache_key
from aggpay.api.signing import verify_response
from tests.factories import MerchantAppFactory

LIMIT = 5


@pytest.fixture(autouse=True)
def spent_counters():
    """The counters a test filled, removed afterwards: the next test's calls fall in the same seconds."""
    keys = []
    yield keys
    caches["default"].delete_many(keys)


@pytest.fixture
def spend_allowance(spent_counters):
    def spend(app, calls=LIMIT):
        """As if ``app`` had already made ``calls`` calls in each of the next few seconds."""
        now = int(time.time())
        for second in range(now - 1, now + 5):
            spent_counters.append(rate_cache_key(app.app_id, second))
            caches["default"].set(spent_counters[-1], calls, timeout=10)

    return spend


@override_settings(AGGPAY_API_RATE_LIMIT_PER_SECOND=LIMIT)
def test_a_call_over_the_apps_limit_is_429_rate_limited_with_retry_after(signed_api, tea_house_app, spend_allowance):
    spend_allowance(tea_house_app)
    response = signed_api(tea_house_app).get("/api/v1/merchant")
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limited"
    assert response["Retry-After"] == "1"


@override_settings(AGGPAY_API_RATE_LIMIT_PER_SECOND=LIMIT)
def test_the_429_is_signed_for_the_app_like_any_answer(signed_api, tea_house_app, spend_allowance):
    spend_allowance(tea_house_app)
    response = signed_api(tea_house_app).get("/api/v1/merchant")
    assert response.status_code == 429
    assert verify_response(dict(response.headers), response.content, secret=tea_house_app.secret)


@override_settings(AGGPAY_API_RATE_LIMIT_PER_SECOND=LIMIT)
def test_a_call_within_the_limit_goes_through_and_is_counted(signed_api, tea_house_app, spend_allowance):
    spend_allowance(tea_house_app, calls=LIMIT - 1)
    assert signed_api(tea_house_app).get("/api/v1/merchant").status_code == 200
    now = int(time.time())
    counted = [caches["default"].get(rate_cache_key(tea_house_app.app_id, s)) for s in (now - 1, now)]
    assert LIMIT in counted  # this call was the LIMIT-th of its second


@override_settings(AGGPAY_API_RATE_LIMIT_PER_SECOND=LIMIT)
def test_one_apps_calls_do_not_spend_another_apps_allowance(signed_api, tea_house_app, spend_allowance):
    other = MerchantAppFactory(merchant=tea_house_app.merchant)
    spend_allowance(tea_house_app)
    assert signed_api(other).get("/api/v1/merchant").status_code == 200


@override_settings(AGGPAY_API_RATE_LIMIT_PER_SECOND=LIMIT)
def test_an_unsigned_caller_cannot_spend_an_apps_allowance(signed_api, tea_house_app, spent_counters):
    now = int(time.time())
    spent_counters.extend(rate_cache_key(tea_house_app.app_id, s) for s in range(now - 1, now + 30))
    for _ in range(LIMIT + 2):
        forged = signed_api(tea_house_app, secret="not-the-secret").get("/api/v1/merchant")
        assert forged.status_code == 401
    assert signed_api(tea_house_app).get("/api/v1/merchant").status_code == 200


@override_settings(AGGPAY_API_RATE_LIMIT_PER_SECOND=0)
def test_a_limit_of_zero_turns_the_limit_off(signed_api, tea_house_app, spend_allowance):
    spend_allowance(tea_house_app, calls=10**6)
    assert signed_api(tea_house_app).get("/api/v1/merchant").status_code == 200


@pytest.mark.parametrize("backend", ["django.core.cache.backends.locmem.LocMemCache"])
def test_the_in_process_cache_of_the_demo_counts_calls_too(backend):
    with override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": "rate-test"}}):
        counts = [credentials.nonce_claim(f"n{i}", 60, count_key="aggpay:api-rate:app:1")[2] for i in range(3)]
        claimed, _, _ = credentials.nonce_claim("n0", 60)
    assert counts == [1, 2, 3]
    assert not claimed

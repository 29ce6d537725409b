"""The staff pages' middleware is skipped for /api/ (aggpay/staff/outside_api.py): the merchant API authenticates
each call by its signature (merchant-api.md "Authentication and signing"), so a browser's staff cookies mean nothing
there, while the API keeps what it needs (X-Request-Id, the error envelope, signed answers) and staff pages keep
their session, CSRF check and NUL guard."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from aggpay.api import signing
from merchants.models import Merchant

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_browser(client, staff_member):
    """A browser signed in to the workbench, with a CSRF cookie that is not one of ours (stale or tampered)."""
    client.force_login(staff_member("support_agent"))
    client.cookies["csrftoken"] = "not-a-token"
    return client


def test_an_api_answer_never_sets_a_cookie_whatever_cookies_the_caller_sends(staff_browser, signed_api,
                                                                            tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/merchant")

    assert response.status_code == 200
    assert not response.cookies
    assert "Set-Cookie" not in response and "Cookie" not in response.get("Vary", "")


def test_an_api_answer_to_a_browser_with_staff_cookies_keeps_its_request_id_and_signature(staff_browser, signed_api,
                                                                                         tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/merchant", headers={"X-Request-Id": "lb-1234567890"})

    assert response.status_code == 200 and response["X-Request-Id"] == "lb-1234567890"
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_the_health_probe_from_a_browser_with_staff_cookies_neither_reads_nor_renews_the_session(staff_browser):
    # A probe has no user or form: the staff middleware is skipped, so a signed-in browser's session is not loaded,
    # saved or renewed (SESSION_SAVE_EVERY_REQUEST) by it, and `make bench` measures a signed call against a probe
    # that pays no more middleware than the API does.
    response = staff_browser.get("/healthz")

    assert response.status_code == 200
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_a_staff_session_does_not_authenticate_an_api_call(staff_browser):
    response = staff_browser.get("/api/v1/merchant")

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_signature" and error["request_id"] == response["X-Request-Id"]


def test_a_staff_post_without_its_csrf_token_is_still_refused(risk_zhao, tea_house):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(risk_zhao)

    response = browser.post(f"/staff/merchants/{tea_house.merchant_no}/freeze/", {"reason": "fraud report"})

    assert response.status_code == 403
    assert Merchant.objects.get(pk=tea_house.pk).state == tea_house.state


def test_a_staff_page_still_reads_its_session_and_refuses_a_nul(staff_browser):
    assert staff_browser.get("/staff/support/").status_code == 200
    response = staff_browser.get("/staff/trades/", {"q": "ord_\x00"})
    assert response.status_code == 400 and "“q”" in response.content.decode()


def test_the_admin_still_finds_the_session_auth_and_messages_middleware_it_needs():
    call_command("check", fail_level="ERROR")  # admin.E408–E410 look for these classes (or subclasses)

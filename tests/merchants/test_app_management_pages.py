"""The "API apps" card of the staff merchant page and the app pages, end to end over the real merchant API: what a
clerk issues, rotates, replaces or deactivates there is what the API front door accepts on the merchant's next call —
even in a process that remembered the app (aggpay.api.credentials)."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from aggpay.api import credentials, signing
from aggpay.api.client import AggpayClient
from aggpay.models import AuditLog
from aggpay.platform_keys import platform_key
from merchants.models import MerchantApp
from tests.conftest import SignedApi
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _staff(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api(app, **kwargs) -> SignedApi:
    return SignedApi(Client(), app, **kwargs)  # a client of its own: no staff session on API calls


def _page_secret(response) -> str:
    found = re.search(r'id="app-secret">([^<]+)<', response.content.decode())
    assert found, "the secret page shows the secret"
    return html.unescape(found.group(1))


def _shown_platform_key(response) -> str:
    found = re.search(r'<pre[^>]*id="platform-public-key"[^>]*>([^<]+)</pre>', response.content.decode())
    assert found, "the page shows the platform public key"
    return html.unescape(found.group(1))


def _code(response) -> str:
    return response.json()["error"]["code"]


def _detail(merchant) -> str:
    return f"/staff/merchants/{merchant.merchant_no}/"


def _app_path(app, suffix: str = "") -> str:
    return f"/staff/merchants/{app.merchant.merchant_no}/apps/{app.app_id}/{suffix}"


# --- the card --------------------------------------------------------------------------------------------------
def test_the_card_lists_every_app_with_what_a_clerk_may_do(tea_house, tea_house_app, tea_house_rsa_app, clerk_wang):
    MerchantApp.objects.filter(pk=tea_house_app.pk).update(active=False)
    page = _staff(clerk_wang).get(_detail(tea_house)).content.decode()
    card = page[page.index('id="apps"'):]
    for app in (tea_house_app, tea_house_rsa_app):
        assert f'data-app="{app.app_id}"' in card and f'id="manage-{app.app_id}"' in card
    assert f'data-app="{tea_house_app.app_id}" data-active="false"' in card
    assert "http://127.0.0.1:9/notify" in card and "AGGPAY-SHA256-RSA2048" in card
    assert 'id="issue-app"' in card
    assert _shown_platform_key(_staff(clerk_wang).get(_detail(tea_house))) == platform_key().public_key_pem
    assert 'id="partner-form"' not in card  # not a clerk's decision


def test_risk_officers_see_the_apps_but_no_buttons_and_every_change_is_403(tea_house, tea_house_app, tea_house_rsa_app,
                                                                          risk_zhao, merchant_rsa_keypair):
    risk = _staff(risk_zhao)
    page = risk.get(_detail(tea_house)).content.decode()
    assert f'data-app="{tea_house_app.app_id}"' in page
    for button in ('id="issue-app"', "id=\"manage-", 'id="reveal-'):
        assert button not in page
    assert 'id="partner-form"' in page  # risk designates partners (aggpay.roles), tests/aggpay/test_demo_partner.py
    app_page = risk.get(_app_path(tea_house_app))
    assert app_page.status_code == 200 and 'id="rotate-form"' not in app_page.content.decode()
    assert risk.get(f"/staff/merchants/{tea_house.merchant_no}/apps/new/").status_code == 403
    for path, data in [
        (f"/staff/merchants/{tea_house.merchant_no}/apps/new/", {"name": "x", "scopes": "payments",
                                                                 "sign_type": "hmac"}),
        (_app_path(tea_house_app, "rotate/"), {}),
        (_app_path(tea_house_app, "notify-url/"), {"notify_url": "https://evil.example.com/"}),
        (_app_path(tea_house_rsa_app, "public-key/"), {"public_key_pem": merchant_rsa_keypair[1]}),
        (_app_path(tea_house_app, "deactivate/"), {}),
        (_app_path(tea_house_app, "reactivate/"), {}),
    ]:
        assert risk.post(path, data).status_code == 403, path
    assert not AuditLog.objects.filter(action__startswith="merchants.app.").exists()
    assert MerchantApp.objects.get(pk=tea_house_app.pk).notify_url == "http://127.0.0.1:9/notify"


def test_other_roles_do_not_reach_the_app_pages(tea_house_app, staff_member):
    support = _staff(staff_member("support_agent"))
    assert support.get(_app_path(tea_house_app)).status_code == 403
    assert support.get(_app_path(tea_house_app, "platform-public-key.pem")).status_code == 403


# --- HMAC: issue, rotate --------------------------------------------------------------------------------------
def test_a_secret_issued_on_the_page_works_and_a_rotated_one_replaces_it_on_the_next_call(tea_house, clerk_wang):
    clerk = _staff(clerk_wang)
    issued = clerk.post(f"/staff/merchants/{tea_house.merchant_no}/apps/new/", {
        "name": "shop backend", "scopes": ["payments"], "sign_type": "hmac",
        "notify_url": "https://shop.example.com/aggpay/notify"})
    assert issued.status_code == 200 and issued["Cache-Control"] == "private, no-store"
    app = MerchantApp.objects.get(merchant=tea_house, name="shop backend")
    first_secret = _page_secret(issued)
    assert first_secret == app.secret

    api = _api(app, secret=first_secret)
    assert api.get("/api/v1/merchant").status_code == 200
    assert credentials.app_remembered(app.app_id) is not None  # this process now remembers the app and its key

    rotated = clerk.post(_app_path(app, "rotate/"), {"reason": "the developer left"})
    assert rotated.status_code == 200 and rotated["Cache-Control"] == "private, no-store"
    new_secret = _page_secret(rotated)
    assert new_secret != first_secret

    # The remembered copy still holds the old secret: the generation token is what makes the next call re-read.
    assert credentials.app_remembered(app.app_id)[1].secret == first_secret
    refused = api.get("/api/v1/merchant")
    assert refused.status_code == 401 and _code(refused) == "invalid_signature"
    answered = _api(app, secret=new_secret).get("/api/v1/merchant")
    assert answered.status_code == 200
    assert signing.verify_response(answered.headers, answered.content, secret=new_secret)

    # Shown once: the card offers no second look, only rotation.
    page = clerk.get(_detail(tea_house)).content.decode()
    assert new_secret not in page and f'id="reveal-{app.app_id}"' not in page
    assert AuditLog.objects.filter(action="merchants.app.secret_rotated", actor=clerk_wang,
                                   reason="the developer left").count() == 1


def test_an_rsa_app_cannot_be_rotated_from_the_page(tea_house_rsa_app, clerk_wang):
    response = _staff(clerk_wang).post(_app_path(tea_house_rsa_app, "rotate/"), follow=True)
    assert "replace its public key" in response.content.decode()
    assert not AuditLog.objects.filter(action="merchants.app.secret_rotated").exists()


# --- RSA: issue by pasting a key, the platform key, replacing the key ------------------------------------------
def test_an_rsa_app_registered_on_the_page_calls_the_api_and_verifies_with_the_shown_platform_key(
        tea_house, clerk_wang, merchant_rsa_keypair, fresh_platform_key):
    clerk = _staff(clerk_wang)
    response = clerk.post(f"/staff/merchants/{tea_house.merchant_no}/apps/new/", {
        "name": "pos", "scopes": ["payments"], "sign_type": "rsa",
        "public_key_pem": merchant_rsa_keypair[1].replace("\n", "\r\n")}, follow=True)
    app = MerchantApp.objects.get(merchant=tea_house, name="pos")
    assert response.redirect_chain[-1][0] == _app_path(app)
    shown = _shown_platform_key(response)
    assert shown == platform_key().public_key_pem

    download = clerk.get(_app_path(app, "platform-public-key.pem"))
    assert download.status_code == 200 and download.content.decode() == shown
    assert download["Content-Disposition"].startswith("attachment;")

    answered = _api(app, private_key_pem=merchant_rsa_keypair[0]).get("/api/v1/merchant")
    assert answered.status_code == 200
    assert answered.json()["app"]["platform_public_key"] == shown
    assert signing.verify_response(answered.headers, answered.content, platform_public_key_pem=shown)


def test_an_rsa_app_from_the_page_works_over_real_http(live_server, tea_house, clerk_wang, merchant_rsa_keypair,
                                                      fresh_platform_key):
    """The same through the Python client and a live server: the client refuses any answer it cannot verify with
    the key the page showed."""
    response = _staff(clerk_wang).post(f"/staff/merchants/{tea_house.merchant_no}/apps/new/", {
        "name": "pos", "scopes": ["payments"], "sign_type": "rsa", "public_key_pem": merchant_rsa_keypair[1]},
        follow=True)
    app = MerchantApp.objects.get(merchant=tea_house, name="pos")
    client = AggpayClient(live_server.url, app.app_id, private_key_pem=merchant_rsa_keypair[0],
                          platform_public_key_pem=_shown_platform_key(response))
    status, _, data = client.request("GET", "/api/v1/merchant")
    assert status == 200 and data["app"]["app_id"] == app.app_id


def test_a_replaced_key_refuses_the_old_private_key_on_the_next_call(tea_house_rsa_app, clerk_wang,
                                                                     merchant_rsa_keypair):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_private = new_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    new_public = new_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    old = _api(tea_house_rsa_app, private_key_pem=merchant_rsa_keypair[0])
    assert old.get("/api/v1/merchant").status_code == 200

    response = _staff(clerk_wang).post(_app_path(tea_house_rsa_app, "public-key/"),
                                       {"public_key_pem": new_public, "reason": "yearly change"})
    assert response.status_code == 302
    refused = old.get("/api/v1/merchant")
    assert refused.status_code == 401 and _code(refused) == "invalid_signature"
    assert _api(tea_house_rsa_app, private_key_pem=new_private).get("/api/v1/merchant").status_code == 200


def test_a_bad_key_on_the_page_is_shown_on_its_field_and_changes_nothing(tea_house, tea_house_rsa_app, clerk_wang,
                                                                        merchant_rsa_keypair):
    clerk = _staff(clerk_wang)
    issued = clerk.post(f"/staff/merchants/{tea_house.merchant_no}/apps/new/", {
        "name": "pos", "scopes": ["payments"], "sign_type": "rsa", "public_key_pem": "hello"})
    assert issued.status_code == 400
    assert re.search(r'data-field="public_key_pem".*?is not a PEM public key', issued.content.decode(), re.S)
    replaced = clerk.post(_app_path(tea_house_rsa_app, "public-key/"), {"public_key_pem": "hello"})
    assert replaced.status_code == 400
    assert re.search(r'data-field="public_key_pem".*?is not a PEM public key', replaced.content.decode(), re.S)
    assert MerchantApp.objects.filter(merchant=tea_house).count() == 1
    assert MerchantApp.objects.get(pk=tea_house_rsa_app.pk).public_key_pem == merchant_rsa_keypair[1]
    assert not AuditLog.objects.filter(action__startswith="merchants.app.").exists()


# --- notify URL, deactivate / reactivate ---------------------------------------------------------------------
def test_the_notify_url_is_changed_on_the_page_and_the_api_reports_it(tea_house_app, clerk_wang):
    clerk = _staff(clerk_wang)
    bad = clerk.post(_app_path(tea_house_app, "notify-url/"), {"notify_url": "ftp://tea.example.com/"})
    assert bad.status_code == 400
    assert re.search(r'data-field="notify_url".*?must be an http or https URL', bad.content.decode(), re.S)
    assert MerchantApp.objects.get(pk=tea_house_app.pk).notify_url == "http://127.0.0.1:9/notify"

    assert clerk.post(_app_path(tea_house_app, "notify-url/"),
                      {"notify_url": "https://tea.example.com/aggpay"}).status_code == 302
    answered = _api(tea_house_app).get("/api/v1/merchant")
    assert answered.json()["app"]["notify_url"] == "https://tea.example.com/aggpay"


def test_a_deactivated_app_gets_401_on_its_next_call_and_works_again_once_reactivated(tea_house_app, clerk_wang):
    api = _api(tea_house_app)
    assert api.get("/api/v1/merchant").status_code == 200  # remembered by this process from here on
    clerk = _staff(clerk_wang)
    assert clerk.post(_app_path(tea_house_app, "deactivate/"), {"reason": "merchant asked"}).status_code == 302
    refused = api.get("/api/v1/merchant")
    assert refused.status_code == 401 and _code(refused) == "unknown_app"
    page = clerk.get(_app_path(tea_house_app)).content.decode()
    assert 'id="reactivate-app"' in page and "Inactive" in page

    twice = clerk.post(_app_path(tea_house_app, "deactivate/"))
    assert twice.status_code == 409 and "already inactive" in twice.content.decode()
    assert clerk.post(_app_path(tea_house_app, "reactivate/")).status_code == 302
    assert api.get("/api/v1/merchant").status_code == 200


# --- partners --------------------------------------------------------------------------------------------------
def test_a_superuser_makes_a_partner_and_a_clerk_then_issues_it_an_onboarding_app(tea_house, clerk_wang):
    root = _staff(UserFactory(username="root.admin", is_superuser=True))
    clerk = _staff(clerk_wang)
    form = clerk.get(f"/staff/merchants/{tea_house.merchant_no}/apps/new/").content.decode()
    assert 'value="onboarding"' not in form
    assert clerk.post(f"/staff/merchants/{tea_house.merchant_no}/partner/",
                      {"is_partner": "on", "reason": "A-17"}).status_code == 403

    no_reason = root.post(f"/staff/merchants/{tea_house.merchant_no}/partner/", {"is_partner": "on"}, follow=True)
    assert "A reason is required" in no_reason.content.decode()
    assert 'id="partner-form"' in root.get(_detail(tea_house)).content.decode()
    root.post(f"/staff/merchants/{tea_house.merchant_no}/partner/", {"is_partner": "on", "reason": "A-17"})
    tea_house.refresh_from_db()
    assert tea_house.is_partner

    issued = clerk.post(f"/staff/merchants/{tea_house.merchant_no}/apps/new/", {
        "name": "agent", "scopes": ["onboarding"], "sign_type": "hmac"})
    app = MerchantApp.objects.get(merchant=tea_house, name="agent")
    assert app.scopes == ["onboarding"]
    partner_api = _api(app, secret=_page_secret(issued))
    assert partner_api.get("/api/v1/merchants").status_code == 200

    root.post(f"/staff/merchants/{tea_house.merchant_no}/partner/", {"is_partner": "", "reason": "agreement ended"})
    refused = partner_api.get("/api/v1/merchants")
    assert refused.status_code == 403 and _code(refused) == "forbidden"

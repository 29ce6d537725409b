"""Django admin: secrets never shown, the audit log read-only, merchant state moved only through services."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction

from aggpay.audit import audit_log
from aggpay.models import AuditLog, PlatformKey
from merchants.models import Merchant, MerchantState
from merchants.services.merchants import merchant_activate
from tests.factories import MerchantAppFactory, MerchantFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/merchants/merchant/"


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 12))
    return client


def test_the_admin_site_is_branded(superuser_client):
    assert b"aggpay back office" in superuser_client.get("/admin/").content


def test_merchant_app_secrets_are_masked_everywhere_in_the_admin(superuser_client):
    app = MerchantAppFactory(secret="s3cret-value-never-shown-0123456789")
    pages = [
        "/admin/merchants/merchantapp/",
        f"/admin/merchants/merchantapp/{app.pk}/change/",
        f"/admin/merchants/merchant/{app.merchant.pk}/change/",  # the apps inline
    ]
    for page in pages:
        response = superuser_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert "s3cret-value-never-shown" not in html, page
        assert "•••••• (set)" in html, page


def test_the_platform_private_key_is_never_rendered(superuser_client):
    key = PlatformKey.objects.create(key_id="pk_test_1", private_key_pem="-----BEGIN PRIVATE KEY-----\nSECRETBITS",
                                     public_key_pem="-----BEGIN PUBLIC KEY-----\nPUBLICBITS")
    for page in ("/admin/aggpay/platformkey/", f"/admin/aggpay/platformkey/{key.pk}/change/"):
        html = superuser_client.get(page).content.decode()
        assert "SECRETBITS" not in html
        assert "encrypted at rest, never shown" in html
    assert "PUBLICBITS" in superuser_client.get(f"/admin/aggpay/platformkey/{key.pk}/change/").content.decode()
    assert superuser_client.get("/admin/aggpay/platformkey/add/").status_code == 403


def test_nobody_adds_changes_or_deletes_audit_rows_in_the_admin(superuser_client):
    with transaction.atomic():
        entry = audit_log(actor=None, action="merchants.merchant.created", reason="from a test")
    assert superuser_client.get("/admin/aggpay/auditlog/add/").status_code == 403
    assert superuser_client.get(f"/admin/aggpay/auditlog/{entry.pk}/delete/").status_code == 403
    view = superuser_client.get(f"/admin/aggpay/auditlog/{entry.pk}/change/")
    assert view.status_code == 200
    assert b'name="_save"' not in view.content
    listing = superuser_client.get("/admin/aggpay/auditlog/", {"q": "from a test"})
    assert b"merchants.merchant.created" in listing.content
    assert b"delete_selected" not in listing.content


def test_admins_read_the_audit_log_in_the_admin_but_clerks_do_not(client, staff_member):
    client.force_login(staff_member("admin"))
    assert client.get("/admin/aggpay/auditlog/").status_code == 200
    client.force_login(staff_member("onboarding_clerk"))
    assert client.get("/admin/aggpay/auditlog/").status_code == 403
    assert client.get(CHANGELIST).status_code == 200


def freeze_post(client, merchants, **extra):
    data = {"action": "freeze", ACTION_CHECKBOX_NAME: [m.pk for m in merchants], **extra}
    return client.post(CHANGELIST, data)


def test_freezing_from_the_admin_asks_for_a_reason_then_calls_the_service(client, staff_member):
    merchants = [MerchantFactory(), MerchantFactory()]
    for m in merchants:
        merchant_activate(merchant_id=m.pk, actor=None, reason="test")
    officer = staff_member("risk_officer")
    client.force_login(officer)

    ask = freeze_post(client, merchants)
    assert ask.status_code == 200
    assert b'name="reason"' in ask.content
    assert Merchant.objects.filter(state=MerchantState.FROZEN).count() == 0

    done = freeze_post(client, merchants, apply="1", reason="chargeback spike")
    assert done.status_code == 302
    assert Merchant.objects.filter(state=MerchantState.FROZEN).count() == 2
    rows = AuditLog.objects.filter(action="merchants.merchant.freeze")
    assert rows.count() == 2
    assert {(r.actor_id, r.reason) for r in rows} == {(officer.pk, "chargeback spike")}
    messages = [str(m) for m in client.get(CHANGELIST).context["messages"]]
    assert "Freeze: 2 done." in messages


def test_an_empty_reason_changes_nothing(client, staff_member):
    merchant = MerchantFactory()
    merchant_activate(merchant_id=merchant.pk, actor=None, reason="test")
    client.force_login(staff_member("risk_officer"))
    response = freeze_post(client, [merchant], apply="1", reason="   ")
    assert response.status_code == 200
    assert b"A reason is required." in response.content or b"This field is required." in response.content
    merchant.refresh_from_db()
    assert merchant.state == MerchantState.ACTIVE
    assert not AuditLog.objects.filter(action="merchants.merchant.freeze").exists()


def test_merchants_that_cannot_move_are_counted_as_skipped(client, staff_member):
    active, onboarding = MerchantFactory(), MerchantFactory()
    merchant_activate(merchant_id=active.pk, actor=None, reason="test")
    client.force_login(staff_member("risk_officer"))
    freeze_post(client, [active, onboarding], apply="1", reason="risk review")
    messages = [str(m) for m in client.get(CHANGELIST).context["messages"]]
    assert "Freeze: 1 done." in messages
    assert any(m.startswith("Freeze: 1 skipped") and onboarding.merchant_no in m for m in messages)
    assert AuditLog.objects.filter(action="merchants.merchant.freeze").count() == 1


def test_clerks_do_not_get_the_risk_actions(client, staff_member):
    merchant = MerchantFactory()
    merchant_activate(merchant_id=merchant.pk, actor=None, reason="test")
    client.force_login(staff_member("onboarding_clerk"))
    listing = client.get(CHANGELIST)
    assert b'value="freeze"' not in listing.content
    freeze_post(client, [merchant], apply="1", reason="trying")
    merchant.refresh_from_db()
    assert merchant.state == MerchantState.ACTIVE


def test_adding_a_merchant_in_the_admin_goes_through_the_service(client, staff_member):
    clerk = staff_member("onboarding_clerk")
    client.force_login(clerk)
    response = client.post("/admin/merchants/merchant/add/",
                           {"merchant_no": "", "legal_name": "Hangzhou Plum Co., Ltd.", "short_name": "Plum"})
    assert response.status_code == 302
    merchant = Merchant.objects.get(short_name="Plum")
    assert merchant.merchant_no.startswith("M")
    assert merchant.state == MerchantState.ONBOARDING
    row = AuditLog.objects.get(action="merchants.merchant.created")
    assert (row.actor_id, row.target_id) == (clerk.pk, str(merchant.pk))


def test_merchant_state_is_not_an_editable_field(superuser_client):
    merchant = MerchantFactory()
    page = superuser_client.get(f"/admin/merchants/merchant/{merchant.pk}/change/")
    assert page.status_code == 200
    assert b'name="state"' not in page.content
    superuser_client.post(f"/admin/merchants/merchant/{merchant.pk}/change/",
                          {"merchant_no": merchant.merchant_no, "legal_name": "x", "short_name": "y",
                           "state": "active"})
    merchant.refresh_from_db()
    assert merchant.state == MerchantState.ONBOARDING
    assert merchant.short_name != "y"

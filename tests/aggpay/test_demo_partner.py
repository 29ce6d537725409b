"""The demo has a partner a partner developer can start from (docs/api.md "Partner onboarding"): seed_demo makes one,
with an app of the ``onboarding`` scope, through the services and idempotently; demo_credentials prints it, README.md
and docs/api.md state it; and a staff role — risk, whose merchant page holds the "make partner" form — may make
one."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from aggpay.errors import Forbidden
from aggpay.management import demo
from aggpay.models import AuditLog
from merchants.models import Merchant, MerchantApp
from merchants.services.apps import merchant_partner_set

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def _seed(*extra: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-channels", "--skip-onboarding", *extra,
                 stdout=out)
    return out.getvalue()


def test_the_seed_makes_a_partner_whose_app_may_call_the_partner_api(signed_api):
    _seed()

    partner = Merchant.objects.get(merchant_no=demo.DEMO_PARTNER_NO)
    app = MerchantApp.objects.get(app_id=demo.DEMO_PARTNER_APP_ID)
    assert partner.is_partner and partner.state == "active"
    assert (app.merchant, app.scopes, app.secret) == (partner, ["onboarding"], demo.DEMO_PARTNER_APP_SECRET)
    response = signed_api(app).get("/api/v1/merchants")
    assert response.status_code == 200, response.json()
    assert response.json()["data"] == []


def test_the_partner_is_made_through_the_services_and_audited_as_the_seed():
    _seed()
    partner = Merchant.objects.get(merchant_no=demo.DEMO_PARTNER_NO)
    actions = set(AuditLog.objects.filter(actor_label=demo.SEED_ACTOR, target_id=str(partner.pk))
                  .values_list("action", flat=True))
    assert {"merchants.merchant.created", "merchants.merchant.partner_set"} <= actions


def test_seeding_again_adds_no_partner_app_or_audit_row():
    _seed()
    counts = (Merchant.objects.count(), MerchantApp.objects.count(), AuditLog.objects.count())
    output = _seed()
    assert (Merchant.objects.count(), MerchantApp.objects.count(), AuditLog.objects.count()) == counts
    assert f"exists  partner {demo.DEMO_PARTNER_NO}" in output
    assert "created" not in output


def test_a_refused_seed_makes_no_partner(settings):
    settings.DEBUG = False
    settings.AGGPAY_SIMULATORS = False
    with pytest.raises(CommandError):
        call_command("seed_demo", "--skip-channels", stdout=io.StringIO())
    assert not Merchant.objects.filter(is_partner=True).exists()


def test_demo_credentials_print_the_partner_app():
    out = io.StringIO()
    call_command("demo_credentials", "--json", stdout=out)
    assert json.loads(out.getvalue())["partner"]["seeded"] is False
    _seed()
    out = io.StringIO()
    call_command("demo_credentials", "--json", stdout=out)
    partner = json.loads(out.getvalue())["partner"]
    assert partner["seeded"] is True
    assert (partner["merchant_no"], partner["app"]["app_id"], partner["app"]["secret"], partner["app"]["scopes"]) == (
        demo.DEMO_PARTNER_NO, demo.DEMO_PARTNER_APP_ID, demo.DEMO_PARTNER_APP_SECRET, ["onboarding"])
    text = io.StringIO()
    call_command("demo_credentials", stdout=text)
    assert demo.DEMO_PARTNER_APP_ID in text.getvalue() and demo.DEMO_PARTNER_APP_SECRET in text.getvalue()


@pytest.mark.parametrize("document", ["README.md", "docs/api.md"])
def test_the_docs_state_the_demo_partner_app(document):
    text = (REPO / document).read_text()
    for value in (demo.DEMO_PARTNER_NO, demo.DEMO_PARTNER_APP_ID, demo.DEMO_PARTNER_APP_SECRET):
        assert f"`{value}`" in text, f"{document} does not state {value!r}"
    assert "The demo seeds no partner" not in text


def test_a_risk_officer_makes_a_merchant_a_partner(staff_member, tea_house):
    risk = staff_member("risk_officer", username="risk.partner")
    merchant_partner_set(merchant_id=tea_house.pk, actor=risk, is_partner=True, reason="agent agreement A-19")
    assert Merchant.objects.get(pk=tea_house.pk).is_partner


def test_a_clerk_still_may_not(staff_member, tea_house):
    clerk = staff_member("onboarding_clerk", username="clerk.partner")
    with pytest.raises(Forbidden):
        merchant_partner_set(merchant_id=tea_house.pk, actor=clerk, is_partner=True, reason="agent agreement A-20")
    assert not Merchant.objects.get(pk=tea_house.pk).is_partner


def test_the_risk_officer_reaches_the_make_partner_form_on_the_merchant_page(client, staff_member, tea_house):
    risk = staff_member("risk_officer", username="risk.page")
    client.force_login(risk)
    response = client.post(f"/staff/merchants/{tea_house.merchant_no}/partner/",
                           {"is_partner": "on", "reason": "agent agreement A-21"})
    assert response.status_code == 302
    assert Merchant.objects.get(pk=tea_house.pk).is_partner

"""Freezing and unfreezing from the merchant page: only risk decides, a reason is required, every change is audited,
and a frozen merchant's next order is refused by the merchant API."""

from __future__ import annotations

import pytest

from aggpay.models import AuditLog
from merchants.models import MerchantState
from merchants.services.merchants import merchant_freeze

pytestmark = pytest.mark.django_db


def page(merchant):
    return f"/staff/merchants/{merchant.merchant_no}/"


def freeze_url(merchant):
    return f"/staff/merchants/{merchant.merchant_no}/freeze/"


def unfreeze_url(merchant):
    return f"/staff/merchants/{merchant.merchant_no}/unfreeze/"


def state_of(merchant):
    merchant.refresh_from_db()
    return merchant.state


def audit_rows(action):
    return AuditLog.objects.filter(action=f"merchants.merchant.{action}")


def order(api, out_trade_no):
    return api.post("/api/v1/orders", json={"product": "wechat.native", "out_trade_no": out_trade_no,
                                            "amount": 100, "subject": "Longjing tea"})


def test_a_risk_officer_sees_the_freeze_form_with_its_warning(client, risk_zhao, tea_house):
    client.force_login(risk_zhao)
    html = client.get(page(tea_house)).content.decode()
    assert 'id="freeze-form"' in html and 'name="reason"' in html
    assert "Payments stop at once" in html and "merchant not active" in html
    assert 'id="unfreeze-form"' not in html


def test_a_risk_officer_freezes_an_active_merchant_and_its_next_order_is_refused(
        client, risk_zhao, tea_house_app, signed_api):
    merchant = tea_house_app.merchant
    client.force_login(risk_zhao)
    response = client.post(freeze_url(merchant), {"reason": "  chargeback spike  "}, follow=True)

    assert response.redirect_chain == [(page(merchant), 302)]
    assert "frozen: its payments are refused from now on" in response.content.decode()
    assert state_of(merchant) == MerchantState.FROZEN
    row = audit_rows("freeze").get()
    assert row.actor == risk_zhao and row.reason == "chargeback spike"
    assert row.target_id == str(merchant.pk) and row.data == {"from": "active", "to": "frozen"}

    refused = order(signed_api(tea_house_app), "T-freeze-page-1")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "merchant not active" in refused.json()["error"]["message"]


def test_the_frozen_page_says_why_and_offers_unfreeze_instead_of_freeze(client, risk_zhao, tea_house):
    client.force_login(risk_zhao)
    client.post(freeze_url(tea_house), {"reason": "chargeback spike"})
    html = client.get(page(tea_house)).content.decode()
    assert 'id="frozen-notice"' in html and "chargeback spike" in html and risk_zhao.username in html
    assert 'id="unfreeze-form"' in html and 'id="freeze-form"' not in html


@pytest.mark.parametrize("reason", ["", "   "])
def test_freezing_without_a_reason_names_the_reason_and_changes_nothing(client, risk_zhao, tea_house, reason):
    client.force_login(risk_zhao)
    response = client.post(freeze_url(tea_house), {"reason": reason})

    assert response.status_code == 400
    html = response.content.decode()
    assert "Not frozen: a reason is required to freeze a merchant" in html
    assert 'class="field-errors" role="alert">a reason is required' in html
    assert state_of(tea_house) == MerchantState.ACTIVE
    assert not audit_rows("freeze").exists()


def test_freezing_a_merchant_that_is_already_frozen_says_so_and_changes_nothing(client, risk_zhao, tea_house):
    merchant_freeze(merchant_id=tea_house.pk, actor=risk_zhao, reason="first")
    client.force_login(risk_zhao)
    response = client.post(freeze_url(tea_house), {"reason": "second"})

    assert response.status_code == 409
    assert f"Not frozen: merchant {tea_house.merchant_no} is frozen; cannot freeze" in response.content.decode()
    assert audit_rows("freeze").count() == 1


def test_a_risk_officer_unfreezes_with_a_reason_and_it_is_audited(client, risk_zhao, tea_house_app, signed_api):
    merchant = tea_house_app.merchant
    merchant_freeze(merchant_id=merchant.pk, actor=risk_zhao, reason="chargeback spike")
    client.force_login(risk_zhao)
    response = client.post(unfreeze_url(merchant), {"reason": "merchant explained the refunds"})

    assert response.status_code == 302 and response["Location"] == page(merchant)
    assert state_of(merchant) == MerchantState.ACTIVE
    row = audit_rows("unfreeze").get()
    assert row.actor == risk_zhao and row.reason == "merchant explained the refunds"
    assert row.data == {"from": "frozen", "to": "active"}
    assert order(signed_api(tea_house_app), "T-unfreeze-page-1").status_code != 403


def test_unfreezing_without_a_reason_names_the_reason_and_changes_nothing(client, risk_zhao, tea_house):
    merchant_freeze(merchant_id=tea_house.pk, actor=risk_zhao, reason="chargeback spike")
    client.force_login(risk_zhao)
    response = client.post(unfreeze_url(tea_house), {"reason": ""})

    assert response.status_code == 400
    assert "Not unfrozen: a reason is required to unfreeze a merchant" in response.content.decode()
    assert state_of(tea_house) == MerchantState.FROZEN
    assert not audit_rows("unfreeze").exists()


@pytest.mark.parametrize("role", ["support_agent", "onboarding_clerk", "operations", "finance", "admin"])
def test_staff_outside_risk_get_403_on_freeze_and_unfreeze(client, staff_member, tea_house, role):
    client.force_login(staff_member(role))
    assert client.post(freeze_url(tea_house), {"reason": "trying"}).status_code == 403
    assert state_of(tea_house) == MerchantState.ACTIVE
    merchant_freeze(merchant_id=tea_house.pk, actor=None, reason="risk froze it")
    assert client.post(unfreeze_url(tea_house), {"reason": "trying"}).status_code == 403
    assert state_of(tea_house) == MerchantState.FROZEN
    assert not AuditLog.objects.filter(actor__username=f"{role}-user").exists()


def test_a_clerk_sees_neither_form_and_a_support_agent_not_the_page(client, clerk_wang, staff_member, tea_house):
    client.force_login(clerk_wang)
    html = client.get(page(tea_house)).content.decode()
    assert 'id="freeze-form"' not in html and "/freeze/" not in html
    merchant_freeze(merchant_id=tea_house.pk, actor=None, reason="risk froze it")
    html = client.get(page(tea_house)).content.decode()
    assert 'id="frozen-notice"' in html  # the clerk learns why the merchant cannot trade…
    assert 'id="unfreeze-form"' not in html and "/unfreeze/" not in html  # …but cannot lift it
    assert "risk froze it" not in html  # the risk reason stays with risk

    client.force_login(staff_member("support_agent"))
    assert client.get(page(tea_house)).status_code == 403


def test_a_get_to_the_freeze_urls_changes_nothing(client, risk_zhao, tea_house):
    client.force_login(risk_zhao)
    assert client.get(freeze_url(tea_house), {"reason": "by link"}).status_code == 405
    assert state_of(tea_house) == MerchantState.ACTIVE
    merchant_freeze(merchant_id=tea_house.pk, actor=risk_zhao, reason="chargeback spike")
    assert client.get(unfreeze_url(tea_house), {"reason": "by link"}).status_code == 405
    assert state_of(tea_house) == MerchantState.FROZEN
    assert audit_rows("freeze").count() == 1 and not audit_rows("unfreeze").exists()


def test_the_post_needs_the_csrf_token(risk_zhao, tea_house):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(risk_zhao)
    assert client.post(freeze_url(tea_house), {"reason": "no token"}).status_code == 403
    assert state_of(tea_house) == MerchantState.ACTIVE


def test_the_risk_page_links_each_frozen_merchant_to_its_page(client, risk_zhao, tea_house):
    merchant_freeze(merchant_id=tea_house.pk, actor=risk_zhao, reason="chargeback spike")
    client.force_login(risk_zhao)
    html = client.get("/staff/risk/").content.decode()
    frozen = html[html.index('id="frozen"'):]
    assert f'href="{page(tea_house)}"' in frozen


def test_freezing_is_a_permission_of_its_own_checked_by_the_service_too(tea_house, staff_member):
    from aggpay.errors import Forbidden
    from merchants.services.merchants import merchant_freeze, merchant_unfreeze

    officer, clerk = staff_member("risk_officer"), staff_member("onboarding_clerk")
    assert officer.has_perm("merchants.freeze_merchant") and officer.has_perm("merchants.unfreeze_merchant")
    assert not clerk.has_perm("merchants.freeze_merchant")  # carved out of the clerks' merchants.*
    with pytest.raises(Forbidden):
        merchant_freeze(merchant_id=tea_house.pk, actor=clerk, reason="not mine to decide")
    merchant_freeze(merchant_id=tea_house.pk, actor=officer, reason="chargebacks")
    with pytest.raises(Forbidden):
        merchant_unfreeze(merchant_id=tea_house.pk, actor=clerk, reason="not mine either")

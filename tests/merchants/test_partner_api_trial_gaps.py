"""What a partner developer's trial of the partner onboarding API found (docs/api.md "Partner onboarding"): a record
WeChat Pay cannot take is refused at submission, naming the field, not rejected by the channel after approval when
the partner can no longer correct it; the merchant's own apps are shown; the same products in another order replay
a create; an earlier round's return is not shown as this round's; a refused settlement change names its field; the
schema requires what the record check requires."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from channels.adapters.base import OnboardingState
from merchants.models import Merchant, OnboardingApplication
from merchants.services.onboarding import (
    application_return,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from tests.merchants.records import png, record
from tests.merchants.test_partner_api import ALL_DOCUMENTS, _approve, _channel_says, document, submitted

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


@pytest.fixture
def risk_officer(staff_member):
    return staff_member("risk_officer", username="zhao.risk")


def _error(response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["param"]


# --- 1. a field a channel requires ------------------------------------------------------------------------------------
def test_a_create_submitted_without_an_email_for_wechat_pay_is_refused_naming_contact_email(partner,
                                                                                          onboarding_accounts):
    response = partner.post("/api/v1/merchants", json={
        **record(contact_email=None), "documents": [document(t) for t in ALL_DOCUMENTS], "submit": True})

    assert _error(response) == (400, "invalid_request", "contact_email")
    assert "WeChat Pay" in response.json()["error"]["message"]
    assert not Merchant.objects.filter(partner__isnull=False).exists()  # nothing created


def test_a_patch_removing_the_email_and_submitting_is_refused_and_the_draft_stays_a_draft(partner,
                                                                                          onboarding_accounts):
    created = partner.post("/api/v1/merchants", json={**record(), "documents": [document(t) for t in ALL_DOCUMENTS]})
    merchant_no = created.json()["merchant_no"]

    response = partner.request("PATCH", f"/api/v1/merchants/{merchant_no}", json={"contact_email": None,
                                                                                   "submit": True})

    assert _error(response) == (400, "invalid_request", "contact_email")
    body = partner.get(f"/api/v1/merchants/{merchant_no}").json()
    assert body["application"]["state"] == "draft"
    assert body["contact_email"] != ""  # the whole PATCH was undone, not only the submission


def test_without_wechat_pay_among_the_channels_the_email_stays_optional(partner, onboarding_accounts):
    response = partner.post("/api/v1/merchants", json={
        **record(contact_email=None, requested_products=["alipay.qr"]),
        "documents": [document(t) for t in ALL_DOCUMENTS], "submit": True})

    assert response.status_code == 201, response.json()
    assert response.json()["application"]["state"] == "submitted"


def test_a_clerk_submitting_the_same_record_is_refused_the_same_way(onboarding_accounts):
    from aggpay.errors import InvalidRequest

    application = merchant_onboard_draft(actor="clerk", data=record(contact_email=""))
    for doc_type in ALL_DOCUMENTS:
        document_add(merchant_id=application.merchant_id, actor="clerk", doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    with pytest.raises(InvalidRequest) as refused:
        application_submit(application_id=application.pk, actor="clerk")
    assert refused.value.param == "contact_email"
    assert OnboardingApplication.objects.get(pk=application.pk).state == "draft"


def test_the_required_fields_table_names_record_fields_the_channel_adapter_needs():
    from merchants.models import Merchant as Model
    from merchants.services.onboarding import CHANNEL_REQUIRED_FIELDS

    for fields in CHANNEL_REQUIRED_FIELDS.values():
        for field in fields:
            Model._meta.get_field(field)  # a real record field, or this raises
    assert "contact_email" in CHANNEL_REQUIRED_FIELDS["wechatpay"]


# --- 3. the merchant's own apps ---------------------------------------------------------------------------------------
def test_once_active_the_partner_sees_the_merchants_payments_app_but_never_its_secret(partner, risk_officer,
                                                                                     onboarding_accounts):
    merchant_no = submitted(partner)["merchant_no"]
    assert partner.get(f"/api/v1/merchants/{merchant_no}").json()["apps"] == []
    contracts = _approve(merchant_no, risk_officer)
    _channel_says(contracts["bank-a"], OnboardingState.FINISHED, application_id="B7", sub_mchid="BANKA000007")

    response = partner.get(f"/api/v1/merchants/{merchant_no}")

    app = Merchant.objects.get(merchant_no=merchant_no).apps.get()
    [shown] = response.json()["apps"]
    assert (shown["app_id"], shown["scopes"], shown["active"]) == (app.app_id, ["payments"], True)
    assert shown["created_at"]
    assert app.secret not in response.content.decode()
    assert "secret" not in json.dumps(response.json()["apps"])


# --- 4. smaller -------------------------------------------------------------------------------------------------------
def test_the_same_products_in_another_order_replay_the_create(partner):
    first = partner.post("/api/v1/merchants", json={
        **record(requested_products=["wechat.native", "alipay.qr"]), "partner_reference": "WL-ORDER-1"})
    assert first.status_code == 201, first.json()

    again = partner.post("/api/v1/merchants", json={
        **record(requested_products=["alipay.qr", "wechat.native"]), "partner_reference": "WL-ORDER-1"})

    assert again.status_code == 200, again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["merchant_no"] == first.json()["merchant_no"]


def test_other_products_under_the_same_reference_still_conflict(partner):
    partner.post("/api/v1/merchants", json={**record(requested_products=["wechat.native"]),
                                            "partner_reference": "WL-ORDER-2"})
    again = partner.post("/api/v1/merchants", json={**record(requested_products=["alipay.qr"]),
                                                    "partner_reference": "WL-ORDER-2"})
    assert _error(again) == (409, "idempotency_conflict", "partner_reference")


def test_after_a_resubmission_the_earlier_return_is_not_shown_as_this_rounds(partner, risk_officer,
                                                                            onboarding_accounts):
    merchant_no = submitted(partner)["merchant_no"]
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    application_review_start(application_id=application.pk, actor=risk_officer)
    application_return(application_id=application.pk, actor=risk_officer,
                       reasons=[{"field": "short_name", "reason": "简称与招牌不符"}])
    returned = partner.get(f"/api/v1/merchants/{merchant_no}").json()["application"]
    assert returned["returned_reasons"] == [{"field": "short_name", "reason": "简称与招牌不符"}]
    assert returned["decided_at"] is not None

    response = partner.request("PATCH", f"/api/v1/merchants/{merchant_no}", json={"short_name": "西湖茶馆龙井店",
                                                                                   "submit": True})

    assert response.status_code == 200, response.json()
    resubmitted = response.json()["application"]
    assert (resubmitted["state"], resubmitted["returned_reasons"], resubmitted["decided_at"]) == ("submitted", [],
                                                                                                 None)


def test_a_settlement_change_asked_again_while_pending_names_settlement_account(partner, risk_officer,
                                                                              onboarding_accounts):
    merchant_no = submitted(partner)["merchant_no"]
    contracts = _approve(merchant_no, risk_officer)
    _channel_says(contracts["bank-a"], OnboardingState.FINISHED, application_id="B8", sub_mchid="BANKA000008")
    change = {"settlement_account": {"bank_name": "工商银行", "account_number": "6222020200112233445"}}
    assert partner.request("PATCH", f"/api/v1/merchants/{merchant_no}", json=change).status_code == 200

    again = partner.request("PATCH", f"/api/v1/merchants/{merchant_no}", json=change)

    assert _error(again) == (409, "invalid_state", "settlement_account")
    assert "already in progress" in again.json()["error"]["message"]


def test_the_schema_requires_the_registered_address_as_the_record_check_does():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    assert "registered_address" in components["PartnerMerchantCreateInputRequest"]["required"]
    assert "apps" in components["PartnerMerchantOutput"]["properties"]

"""The partner onboarding API (merchant-api.md "Partner onboarding", issue 4 "Partner onboarding API"): a partner
submits, documents, corrects and follows its own merchants — never another partner's — and is told of each step by
signed ``merchant.*`` events."""

from __future__ import annotations

import base64
import json

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aggpay.api import signing
from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.models import Contract, Document, Merchant, OnboardingApplication
from merchants.services.contracts import contract_apply_result
from merchants.services.onboarding import (
    application_approve,
    application_reject,
    application_return,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from tests.factories import MerchantAppFactory, MerchantFactory, UserFactory
from tests.merchants.records import ID_NUMBER, licence_no, pdf_bytes, png, png_bytes, record
from trades.models import Event
from trades.services.events import delivery_attempt

pytestmark = pytest.mark.django_db

ALL_DOCUMENTS = ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside")


def document(doc_type: str, content: bytes | None = None, filename: str | None = None) -> dict:
    content = content if content is not None else png_bytes(doc_type)
    return {"doc_type": doc_type, "filename": filename or f"{doc_type}.png",
            "content_base64": base64.b64encode(content).decode()}


def patch(api, target, body):
    return api.request("PATCH", target, json=body)


@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


@pytest.fixture
def risk_officer(db):
    user = UserFactory(username="zhao.risk")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="merchants",
                                                     codename="review_application"))
    return type(user).objects.get(pk=user.pk)


def create(partner, **changes) -> dict:
    response = partner.post("/api/v1/merchants", json=record(**changes))
    assert response.status_code == 201, response.json()
    return response.json()


def submitted(partner) -> dict:
    response = partner.post("/api/v1/merchants", json={
        **record(), "documents": [document(t) for t in ALL_DOCUMENTS], "submit": True})
    assert response.status_code == 201, response.json()
    return response.json()


# --- creating ---------------------------------------------------------------------------------------------------------
def test_a_partner_creates_a_draft_merchant_and_sees_it_with_pii_masked(partner, westlake_app):
    response = partner.post("/api/v1/merchants", json=record())
    assert response.status_code == 201
    assert signing.verify_response(response.headers, response.content, secret=westlake_app.secret)
    body = response.json()
    merchant = Merchant.objects.get(merchant_no=body["merchant_no"])
    assert merchant.partner == westlake_app.merchant
    assert (body["state"], body["application"]["state"]) == ("onboarding", "draft")
    assert body["legal_name"] == "杭州西湖茶馆有限公司"
    assert body["legal_person_id_number"] == "110105********002X"
    assert body["legal_person_name"] == "张*"
    assert body["contact_phone"] == "138****8000"
    assert body["settlement_account"]["account_number"] == "***********0123"
    assert body["missing_documents"] == sorted(ALL_DOCUMENTS)
    assert body["contracts"] == [] and body["documents"] == []
    for secret in (ID_NUMBER, "13800138000", "571234567890123"):
        assert secret.encode() not in response.content
    audit = AuditLog.objects.get(action="merchants.application.drafted")
    assert audit.actor_label == "api:app_westlake0001"


def test_documents_can_come_along_and_submit_sends_it_for_review_and_tells_the_partner(
        partner, westlake_app, callback_receiver, django_capture_on_commit_callbacks):
    westlake_app.notify_url = callback_receiver.url
    westlake_app.save()
    with django_capture_on_commit_callbacks(execute=True):  # the request's commit: Celery (eager) delivers
        body = submitted(partner)

    assert body["application"]["state"] == "submitted" and body["missing_documents"] == []
    assert sorted(d["doc_type"] for d in body["documents"]) == sorted(ALL_DOCUMENTS)
    [request] = callback_receiver.requests
    assert signing.verify_response(request["headers"], request["body"], secret=westlake_app.secret)
    event = json.loads(request["body"])
    assert (event["type"], event["sequence"]) == ("merchant.submitted", 1)
    assert event["data"]["object"] == body  # the merchant as the API returns it


def test_submitting_without_the_documents_is_a_400_and_creates_nothing(partner):
    response = partner.post("/api/v1/merchants", json={**record(), "documents": [document("licence")],
                                                       "submit": True})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "documents"
    assert "id_front" in response.json()["error"]["message"]
    assert not Merchant.objects.filter(partner__isnull=False).exists()
    assert not Document.objects.exists() and not Event.objects.exists()


@pytest.mark.parametrize("body, param", [
    (record(licence_no="91330106MA2B00000X"), "licence_no"),  # check character
    (record(legal_person_id_number="110105194912310021"), "legal_person_id_number"),
    (record(contact_phone="12345"), "contact_phone"),
    (record(legal_name={"zh": "茶馆"}), "legal_name"),  # not text
    (record(legal_name=None), "legal_name"),
    (record(requested_products=["wechat.cash"]), "requested_products[0]"),
    (record(requested_products=[]), "requested_products"),
    (record(scenarios=[{"type": "spaceship", "name": "x"}]), "scenarios[0].type"),
    (record(scenarios=[{"type": "website", "name": "shop", "url": "ftp://x"}]), "scenarios[0].url"),
    (record(stores=[]), "stores"),
    (record(settlement_account={**record()["settlement_account"], "account_number": "12AB"}),
     "settlement_account.account_number"),
    (record(settlement_account={**record()["settlement_account"], "account_type": "personal"}),
     "settlement_account.account_type"),
    (record(settlement_account={**record()["settlement_account"], "iban": "X"}), "settlement_account.iban"),
    (record(legal_person_id_valid_from="01/05/2015"), "legal_person_id_valid_from"),
    (record(licence_valid_until="2001-01-01"), "licence_valid_until"),
    (record(licence_no_typo="x"), "licence_no_typo"),  # an unknown field is never silently dropped
    ({**record(), "documents": [document("licence", content=b"GIF89a")]}, "documents[0].content_base64"),
    ({**record(), "documents": [{**document("licence"), "content_base64": "***"}]}, "documents[0].content_base64"),
    ({**record(), "submit": "perhaps"}, "submit"),
])
def test_bad_records_are_400s_naming_the_field(partner, body, param):
    response = partner.post("/api/v1/merchants", json=body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert not Merchant.objects.filter(partner__isnull=False).exists()


def test_a_body_that_is_not_an_object_is_a_400(partner):
    response = partner.request("POST", "/api/v1/merchants", body=b"[1, 2]")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


# --- a retried create (partner_reference) ---------------------------------------------------------------------------
def test_a_retried_create_with_its_partner_reference_answers_the_same_merchant_and_makes_no_other(partner,
                                                                                                  westlake_app):
    body = {**record(), "partner_reference": "WL-0001", "documents": [document(t) for t in ALL_DOCUMENTS],
            "submit": True}
    first = partner.post("/api/v1/merchants", json=body)
    assert first.status_code == 201, first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert first.json()["partner_reference"] == "WL-0001"

    again = partner.post("/api/v1/merchants", json=body)  # the answer was lost; the partner sends it again

    assert again.status_code == 200, again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert signing.verify_response(again.headers, again.content, secret=westlake_app.secret)
    assert again.json() == first.json()
    assert Merchant.objects.filter(partner=westlake_app.merchant).count() == 1
    assert Document.objects.count() == len(ALL_DOCUMENTS)
    assert Event.objects.filter(type="merchant.submitted").count() == 1


def test_a_replay_shows_the_merchant_as_it_is_now(partner):
    body = {**record(), "partner_reference": "WL-0002"}
    merchant_no = partner.post("/api/v1/merchants", json=body).json()["merchant_no"]
    patch(partner, f"/api/v1/merchants/{merchant_no}", {"short_name": "西湖茶馆龙井店"})
    again = partner.post("/api/v1/merchants", json=body)
    assert again.status_code == 200 and again.json()["merchant_no"] == merchant_no
    assert again.json()["short_name"] == "西湖茶馆龙井店"


@pytest.mark.parametrize("changes", [
    {"short_name": "另一家茶馆"},
    {"submit": True, "documents": [document(t) for t in ALL_DOCUMENTS]},
])
def test_the_same_partner_reference_with_other_content_is_a_409_naming_it(partner, changes):
    merchant_no = create(partner, partner_reference="WL-0003")["merchant_no"]
    response = partner.post("/api/v1/merchants", json={**record(partner_reference="WL-0003"), **changes})
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("idempotency_conflict", "partner_reference")
    assert Merchant.objects.filter(partner__isnull=False).count() == 1
    assert Merchant.objects.get(merchant_no=merchant_no).short_name == "西湖茶馆"
    assert not Document.objects.exists()


def test_without_a_partner_reference_a_second_create_makes_a_second_merchant(partner):
    first, second = create(partner), create(partner, licence_no=licence_no(1), short_name="另一家茶馆")
    assert first["merchant_no"] != second["merchant_no"]
    assert first["partner_reference"] is None


def test_partner_references_are_per_partner(partner, rival):
    mine = create(partner, partner_reference="SHOP-1")
    response = rival.post("/api/v1/merchants", json=record(partner_reference="SHOP-1", short_name="钱塘面馆",
                                                           licence_no=licence_no(1)))
    assert response.status_code == 201, response.json()
    assert response.json()["merchant_no"] != mine["merchant_no"]
    assert partner.get("/api/v1/merchants?partner_reference=SHOP-1").json()["data"] == [mine]


@pytest.mark.parametrize("reference", ["", "has space", "x" * 65, "订单1", 12345, None])
def test_a_malformed_partner_reference_is_a_400_naming_it(partner, reference):
    response = partner.post("/api/v1/merchants", json=record(partner_reference=reference))
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == "partner_reference"
    assert not Merchant.objects.filter(partner__isnull=False).exists()


def test_the_partner_reference_cannot_be_patched(partner):
    merchant_no = create(partner, partner_reference="WL-0004")["merchant_no"]
    response = patch(partner, f"/api/v1/merchants/{merchant_no}", {"partner_reference": "WL-9999"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "partner_reference"
    assert Merchant.objects.get(merchant_no=merchant_no).partner_reference == "WL-0004"


def test_the_list_filters_by_partner_reference(partner):
    create(partner, partner_reference="WL-0005")
    wanted = create(partner, partner_reference="WL-0006", short_name="茶馆6", licence_no=licence_no(6))
    create(partner, licence_no=licence_no(7))
    assert [m["merchant_no"] for m in partner.get("/api/v1/merchants?partner_reference=WL-0006").json()["data"]] \
        == [wanted["merchant_no"]]
    assert partner.get("/api/v1/merchants?partner_reference=WL-0404").json()["data"] == []
    response = partner.get("/api/v1/merchants?partner_reference=not%20valid")
    assert response.status_code == 400 and response.json()["error"]["param"] == "partner_reference"


# --- who may ----------------------------------------------------------------------------------------------------------
def test_apps_without_the_onboarding_scope_or_of_a_non_partner_are_forbidden(signed_api, westlake_agency,
                                                                            tea_house_app):
    payments_app = MerchantAppFactory(merchant=westlake_agency, scopes=["payments"])
    not_a_partner = MerchantAppFactory(merchant=tea_house_app.merchant, scopes=["onboarding"])
    for app in (payments_app, not_a_partner, tea_house_app):
        for method, target in (("GET", "/api/v1/merchants"), ("POST", "/api/v1/merchants"),
                               ("GET", "/api/v1/merchants/M1"), ("PATCH", "/api/v1/merchants/M1"),
                               ("POST", "/api/v1/merchants/M1/documents")):
            response = signed_api(app).request(method, target, json=record() if method != "GET" else None)
            assert response.status_code == 403, (app.app_id, method, target)
            assert response.json()["error"]["code"] == "forbidden"
    assert not Merchant.objects.filter(partner__isnull=False).exists()


@pytest.fixture
def rival(signed_api):
    """Another partner, 'Qiantang Agency', with its own onboarding app."""
    agency = MerchantFactory(short_name="Qiantang Agency", is_partner=True)
    return signed_api(MerchantAppFactory(merchant=agency, scopes=["onboarding"]))


def test_a_partner_can_never_see_or_change_another_partners_merchants(partner, rival):
    mine = create(partner)["merchant_no"]
    theirs = create(rival, short_name="钱塘面馆", licence_no=licence_no(1))["merchant_no"]
    clerk_made = MerchantFactory().merchant_no  # onboarded by a clerk, no partner

    assert [m["merchant_no"] for m in partner.get("/api/v1/merchants").json()["data"]] == [mine]
    for merchant_no in (theirs, clerk_made):
        assert partner.get(f"/api/v1/merchants/{merchant_no}").status_code == 404
        assert patch(partner, f"/api/v1/merchants/{merchant_no}", {"short_name": "hijacked"}).status_code == 404
        assert partner.post(f"/api/v1/merchants/{merchant_no}/documents",
                            json=document("licence")).status_code == 404
    assert Merchant.objects.get(merchant_no=theirs).short_name == "钱塘面馆"
    assert not Document.objects.exists()
    response = partner.get(f"/api/v1/merchants?starting_after={theirs}")
    assert response.status_code == 400 and response.json()["error"]["param"] == "starting_after"


def test_the_list_pages_newest_first_and_filters_by_state(partner):
    numbers = [create(partner, short_name=f"茶馆{i}", licence_no=licence_no(i))["merchant_no"] for i in range(3)]
    page1 = partner.get("/api/v1/merchants?limit=2").json()
    assert [m["merchant_no"] for m in page1["data"]] == numbers[::-1][:2] and page1["has_more"]
    page2 = partner.get(f"/api/v1/merchants?limit=2&starting_after={numbers[1]}").json()
    assert [m["merchant_no"] for m in page2["data"]] == [numbers[0]] and not page2["has_more"]
    assert partner.get("/api/v1/merchants?state=active").json()["data"] == []
    assert partner.get("/api/v1/merchants?state=dormant").json()["error"]["param"] == "state"


# --- documents -------------------------------------------------------------------------------------------------------
def test_a_document_is_stored_with_its_detected_type_and_hash(partner):
    merchant_no = create(partner)["merchant_no"]
    pdf = pdf_bytes("licence")
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents",
                            json=document("licence", content=pdf, filename="营业执照 (scan).pdf"))
    assert response.status_code == 201, response.json()
    body = response.json()
    stored = Document.objects.get(merchant__merchant_no=merchant_no)
    assert (body["doc_type"], body["content_type"], body["size"]) == ("licence", "application/pdf", len(pdf))
    assert body["sha256"] == stored.sha256 and stored.uploaded_by == "api:app_westlake0001"
    assert stored.file.read() == pdf
    assert "licence" not in partner.get(f"/api/v1/merchants/{merchant_no}").json()["missing_documents"]


@pytest.mark.parametrize("body, param", [
    ({"doc_type": "selfie", "filename": "a.png", "content_base64": "iVBORw=="}, "doc_type"),
    (document("licence", content=b""), "content_base64"),
    (document("licence", content=b"<html>not a picture</html>"), "content_base64"),
    ({**document("licence"), "content_base64": "not base64!"}, "content_base64"),
    (document("licence", filename="../../etc/passwd"), "filename"),
    (document("licence", filename=".."), "filename"),
    ({**document("licence"), "colour": "blue"}, "colour"),
    ({"doc_type": "licence", "filename": "a.png"}, "content_base64"),
])
def test_bad_documents_are_400s_naming_the_field(partner, body, param):
    merchant_no = create(partner)["merchant_no"]
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents", json=body)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    assert not Document.objects.exists()


def test_a_document_over_5_mb_is_refused_by_its_size(partner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024  # let the body through to the document check
    merchant_no = create(partner)["merchant_no"]
    big = png_bytes("licence", size=5 * 1024 * 1024 + 1)
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents", json=document("licence", content=big))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "content_base64" and "5 MB" in response.json()["error"]["message"]


def test_documents_cannot_be_added_while_the_application_is_under_review(partner):
    merchant_no = submitted(partner)["merchant_no"]
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents", json=document("other"))
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"


# --- corrections ------------------------------------------------------------------------------------------------------
def test_a_patch_changes_only_what_it_sends(partner):
    merchant_no = create(partner)["merchant_no"]
    response = patch(partner, f"/api/v1/merchants/{merchant_no}",
                     {"contact_phone": "13900139000", "contact_email": None,
                      "settlement_account": {"bank_branch": "杭州龙井支行"}})
    assert response.status_code == 200, response.json()
    merchant = Merchant.objects.get(merchant_no=merchant_no)
    assert (merchant.contact_phone, merchant.contact_email) == ("13900139000", "")
    assert merchant.legal_person_id_number == ID_NUMBER  # untouched fields keep their clear values
    account = merchant.settlement_accounts.get(current=True)
    assert (account.bank_branch, account.account_number) == ("杭州龙井支行", "571234567890123")
    assert response.json()["contact_phone"] == "139****9000"


@pytest.mark.parametrize("body, param", [
    ({"contact_phone": "call me"}, "contact_phone"),
    ({"legal_name": None}, "legal_name"),  # required: cannot be removed
    ({"stores": [{"store_no": "S1", "name": "x", "area_code": "999999", "address": "y"}]}, "stores[0].area_code"),
    ({"nickname": "x"}, "nickname"),
])
def test_bad_patches_are_400s_naming_the_field_and_change_nothing(partner, body, param):
    merchant_no = create(partner)["merchant_no"]
    response = patch(partner, f"/api/v1/merchants/{merchant_no}", body)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    merchant = Merchant.objects.get(merchant_no=merchant_no)
    assert (merchant.legal_name, merchant.contact_phone) == ("杭州西湖茶馆有限公司", "13800138000")


def test_a_returned_application_is_corrected_and_resubmitted_and_the_partner_follows_each_step(
        partner, risk_officer):
    merchant_no = submitted(partner)["merchant_no"]
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    application_review_start(application_id=application.pk, actor=risk_officer)
    application_return(application_id=application.pk, actor=risk_officer,
                       reasons=[{"field": "short_name", "reason": "门头名称与照片不符"}])

    shown = partner.get(f"/api/v1/merchants/{merchant_no}").json()
    assert shown["application"]["state"] == "returned"
    assert shown["application"]["returned_reasons"] == [{"field": "short_name", "reason": "门头名称与照片不符"}]
    response = patch(partner, f"/api/v1/merchants/{merchant_no}", {"short_name": "西湖茶馆龙井店", "submit": True})
    assert response.status_code == 200, response.json()
    assert response.json()["application"]["state"] == "submitted"
    assert response.json()["short_name"] == "西湖茶馆龙井店"

    events = list(Event.objects.filter(object_id=merchant_no).order_by("sequence"))
    assert [(e.type, e.sequence) for e in events] == [
        ("merchant.submitted", 1), ("merchant.returned", 2), ("merchant.submitted", 3)]
    assert events[1].data["application"]["returned_reasons"][0]["reason"] == "门头名称与照片不符"
    assert all(e.merchant.merchant_no == partner.app.merchant.merchant_no for e in events)


def test_a_record_under_review_cannot_be_patched(partner):
    merchant_no = submitted(partner)["merchant_no"]
    response = patch(partner, f"/api/v1/merchants/{merchant_no}", {"short_name": "改名"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    assert Merchant.objects.get(merchant_no=merchant_no).short_name == "西湖茶馆"


def test_a_rejected_application_tells_the_partner_with_the_reason(partner, westlake_app, risk_officer,
                                                                   callback_receiver):
    westlake_app.notify_url = callback_receiver.url
    westlake_app.save()
    merchant_no = submitted(partner)["merchant_no"]
    assert partner.get(f"/api/v1/merchants/{merchant_no}").json()["application"]["rejection_reason"] is None
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    application_review_start(application_id=application.pk, actor=risk_officer)
    application_reject(application_id=application.pk, actor=risk_officer, reason="经营场所与执照地址不符")

    shown = partner.get(f"/api/v1/merchants/{merchant_no}").json()
    assert shown["application"]["state"] == "rejected"
    assert shown["application"]["rejection_reason"] == "经营场所与执照地址不符"
    events = list(Event.objects.filter(object_id=merchant_no).order_by("sequence"))
    assert [(e.type, e.sequence) for e in events] == [("merchant.submitted", 1), ("merchant.rejected", 2)]
    assert events[1].data == shown  # the merchant as the API returns it, reason included
    pulled = partner.get("/api/v1/events?type=merchant.rejected").json()["data"]
    assert [e["data"]["object"]["merchant_no"] for e in pulled] == [merchant_no]

    for event in events:
        delivery_attempt(delivery_id=event.deliveries.get().pk)
    rejected = json.loads(callback_receiver.requests[-1]["body"])
    assert rejected["type"] == "merchant.rejected"
    assert rejected["data"]["object"]["application"]["rejection_reason"] == "经营场所与执照地址不符"
    assert signing.verify_response(callback_receiver.requests[-1]["headers"], callback_receiver.requests[-1]["body"],
                                   secret=westlake_app.secret)


def test_a_rejection_that_fails_tells_the_partner_nothing(partner, risk_officer):
    merchant_no = submitted(partner)["merchant_no"]
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    with pytest.raises(InvalidState):  # not under review yet
        application_reject(application_id=application.pk, actor=risk_officer, reason="照片模糊")
    application_review_start(application_id=application.pk, actor=risk_officer)
    with pytest.raises(InvalidRequest):  # no reason
        application_reject(application_id=application.pk, actor=risk_officer, reason="")
    assert list(Event.objects.values_list("type", flat=True)) == ["merchant.submitted"]


# --- contracts, activation and what the partner sees ---------------------------------------------------------------
def _approve(merchant_no: str, risk_officer) -> dict[str, Contract]:
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    application_review_start(application_id=application.pk, actor=risk_officer)
    application_approve(application_id=application.pk, actor=risk_officer)
    return {c.channel_account.code: c for c in Contract.objects.filter(merchant__merchant_no=merchant_no)}


def _channel_says(contract: Contract, state: str, **fields) -> None:
    contract.refresh_from_db()
    contract_apply_result(contract_id=contract.pk, result=OnboardingResult(state=state, **fields), source="channel",
                          submitting=contract.state == "pending")


def test_the_partner_follows_each_contract_to_active_with_reasons_sign_urls_and_sub_merchant_ids(
        partner, westlake_app, risk_officer, onboarding_accounts):
    merchant_no = submitted(partner)["merchant_no"]
    contracts = _approve(merchant_no, risk_officer)
    _channel_says(contracts["wechatpay-isv"], OnboardingState.SUBMITTED, application_id="2000001")
    _channel_says(contracts["wechatpay-isv"], OnboardingState.REJECTED,
                  rejections=[{"field": "license_copy", "reason": "营业执照照片模糊"}])
    _channel_says(contracts["alipay-isv"], OnboardingState.SUBMITTED, application_id="A1")
    _channel_says(contracts["alipay-isv"], OnboardingState.TO_BE_SIGNED, sign_url="https://sign.example/abc")

    shown = {c["channel_account"]: c for c in partner.get(f"/api/v1/merchants/{merchant_no}").json()["contracts"]}
    assert shown["wechatpay-isv"]["state"] == "rejected"
    assert shown["wechatpay-isv"]["rejection_reasons"] == [{"field": "license_copy", "reason": "营业执照照片模糊"}]
    assert shown["alipay-isv"]["sign_url"] == "https://sign.example/abc"
    assert shown["bank-a"]["state"] == "pending" and shown["bank-a"]["sub_merchant_id"] is None

    _channel_says(contracts["bank-a"], OnboardingState.FINISHED, application_id="B1", sub_mchid="BANKA000123")
    body = partner.get(f"/api/v1/merchants/{merchant_no}").json()
    assert body["state"] == "active" and body["application"]["state"] == "completed"
    bank = next(c for c in body["contracts"] if c["channel_account"] == "bank-a")
    assert (bank["channel"], bank["state"], bank["sub_merchant_id"]) == ("bank", "active", "BANKA000123")
    assert {p["product"] for p in bank["products"]} == {"wechat.native", "alipay.qr", "unionpay.qr"}

    pulled = partner.get("/api/v1/events?limit=100").json()["data"]
    mine = sorted((e for e in pulled if e["data"]["object"]["merchant_no"] == merchant_no),
                  key=lambda e: e["sequence"])
    assert [e["type"] for e in mine] == [
        "merchant.submitted",
        "merchant.contract_updated", "merchant.contract_updated",  # wechat submitted, rejected
        "merchant.contract_updated", "merchant.contract_updated",  # alipay submitted, to be signed
        "merchant.contract_updated", "merchant.activated",  # bank active → the merchant is active
    ]
    assert [e["sequence"] for e in mine] == list(range(1, 8))
    assert mine[-1]["data"]["object"]["state"] == "active"
    assert mine[2]["data"]["object"]["contracts"][0]["state"] == "rejected"


def test_merchant_events_are_delivered_signed_to_the_partners_notify_url(partner, westlake_app, callback_receiver,
                                                                        risk_officer):
    westlake_app.notify_url = callback_receiver.url
    westlake_app.save()
    merchant_no = submitted(partner)["merchant_no"]
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    application_review_start(application_id=application.pk, actor=risk_officer)
    application_return(application_id=application.pk, actor=risk_officer, reasons=[{"reason": "照片模糊"}])
    for event in Event.objects.filter(object_id=merchant_no).order_by("sequence"):
        delivery_attempt(delivery_id=event.deliveries.get().pk)
    assert [json.loads(r["body"])["type"] for r in callback_receiver.requests] == ["merchant.submitted",
                                                                                    "merchant.returned"]
    for request in callback_receiver.requests:
        assert signing.verify_response(request["headers"], request["body"], secret=westlake_app.secret)


def test_merchants_onboarded_by_clerks_emit_no_partner_events(risk_officer, onboarding_accounts):
    application = merchant_onboard_draft(actor="clerk", data=record())
    for doc_type in ALL_DOCUMENTS:
        document_add(merchant_id=application.merchant_id, actor="clerk", doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor="clerk")
    contracts = _approve(application.merchant.merchant_no, risk_officer)
    _channel_says(contracts["bank-a"], OnboardingState.FINISHED, application_id="B9", sub_mchid="BANKA009")
    assert Merchant.objects.get(pk=application.merchant_id).state == "active"
    rejected = merchant_onboard_draft(actor="clerk", data=record(short_name="另一家", licence_no=licence_no(1)))
    for doc_type in ALL_DOCUMENTS:
        document_add(merchant_id=rejected.merchant_id, actor="clerk", doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=rejected.pk, actor="clerk")
    application_review_start(application_id=rejected.pk, actor=risk_officer)
    assert application_reject(application_id=rejected.pk, actor=risk_officer, reason="虚假商户").state == "rejected"
    assert not Event.objects.exists()


# --- after activation ---------------------------------------------------------------------------------------------------
@pytest.fixture
def active_merchant_no(partner, risk_officer, onboarding_accounts):
    merchant_no = submitted(partner)["merchant_no"]
    contracts = _approve(merchant_no, risk_officer)
    _channel_says(contracts["bank-a"], OnboardingState.FINISHED, application_id="B2", sub_mchid="BANKA000777")
    return merchant_no


def test_once_active_only_the_settlement_account_may_change(partner, active_merchant_no):
    response = patch(partner, f"/api/v1/merchants/{active_merchant_no}", {"short_name": "新名字"})
    assert response.status_code == 409
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_state", "short_name")
    assert Merchant.objects.get(merchant_no=active_merchant_no).short_name == "西湖茶馆"


def test_an_active_merchants_settlement_account_change_is_asked_of_its_channels(partner, active_merchant_no):
    response = patch(partner, f"/api/v1/merchants/{active_merchant_no}",
                     {"settlement_account": {"bank_name": "工商银行", "account_number": "6222020200112233445"}})
    assert response.status_code == 200, response.json()
    body = response.json()
    # Asynchronous at every channel: the record keeps the old account until all of them accept the new one, and a
    # channel still deciding pays to the old one.
    assert body["settlement_account"]["account_number"].endswith("0123")
    change = body["settlement_change"]
    assert (change["state"], change["bank_name"], change["account_number"]) == ("pending", "工商银行",
                                                                                "***************3445")
    assert [(c["channel_account"], c["pays_to"]["account_number"]) for c in change["channels"]] == [
        ("bank-a", "***********0123")]


def test_a_bad_settlement_account_for_an_active_merchant_names_the_field(partner, active_merchant_no):
    response = patch(partner, f"/api/v1/merchants/{active_merchant_no}",
                     {"settlement_account": {"account_holder": "别人"}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "settlement_account.account_holder"


def test_the_list_costs_the_same_queries_for_one_merchant_or_many(partner):
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert partner.get("/api/v1/merchants?limit=100").status_code == 200
        return len(captured.captured_queries)

    create(partner)
    one = queries_for_list()
    for i in range(4):
        create(partner, short_name=f"分店{i}", licence_no=licence_no(i + 1))
    assert queries_for_list() == one
    assert one <= 12

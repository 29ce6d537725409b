"""The merchant record form: a clerk fills it in, uploads documents with it, and sees every error beside its field —
including the service's nested ones — while bad input writes nothing (design §5 rule 12)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.errors import InvalidRequest
from merchants.forms import RecordForms
from merchants.models import Document, Merchant, OnboardingApplication
from merchants.services.onboarding import (
    application_return,
    application_review_start,
    application_submit,
)
from tests.merchants.records import ID_NUMBER, LICENCE_NO, png, png_bytes

pytestmark = pytest.mark.django_db

ACCOUNT_NUMBER = "571234567890123"
PHONE = "13800138000"


def form_data(**changes) -> dict:
    """The Tea House record as the browser posts the form."""
    data = {
        "subject_type": "enterprise", "legal_name": "杭州西湖茶馆有限公司", "short_name": "西湖茶馆", "mcc": "5814",
        "industry": "餐饮", "service_phone": "0571-88888888", "registered_address": "浙江省杭州市西湖区龙井路1号",
        "licence_no": LICENCE_NO, "licence_valid_from": "2020-01-01", "licence_valid_until": "",
        "legal_person_name": "张三", "legal_person_id_type": "id_card", "legal_person_id_number": ID_NUMBER,
        "legal_person_id_valid_from": "2015-05-01", "legal_person_id_valid_until": "2035-05-01",
        "contact_name": "李四", "contact_phone": PHONE, "contact_email": "li.si@example.com",
        "requested_products": ["wechat.native", "unionpay.qr"],
        "scenarios-TOTAL_FORMS": "2", "scenarios-INITIAL_FORMS": "0",
        "scenarios-0-type": "store", "scenarios-0-name": "龙井路店",
        "stores-TOTAL_FORMS": "2", "stores-INITIAL_FORMS": "0",
        "stores-0-store_no": "S001", "stores-0-name": "龙井路店", "stores-0-area_code": "330106",
        "stores-0-address": "龙井路1号",
        "settlement_account-account_type": "corporate", "settlement_account-bank_name": "招商银行",
        "settlement_account-bank_branch": "杭州西湖支行", "settlement_account-bank_branch_code": "308331012345",
        "settlement_account-account_number": ACCOUNT_NUMBER,
        "settlement_account-account_holder": "杭州西湖茶馆有限公司",
    }
    data.update(changes)
    return data


def stored_files() -> set[str]:
    root = settings.MEDIA_ROOT
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def test_a_clerk_creates_a_merchant_with_its_documents(client, clerk_wang):
    client.force_login(clerk_wang)
    data = form_data(**{f"doc-{t}": png(f"{t}.png") for t in ("licence", "id_front", "id_back", "bank_card")})
    response = client.post("/staff/merchants/new/", data)

    merchant = Merchant.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/staff/merchants/{merchant.merchant_no}/"
    assert merchant.legal_person_id_number == ID_NUMBER and merchant.contact_phone == PHONE
    assert merchant.settlement_accounts.get(current=True).account_number == ACCOUNT_NUMBER
    assert list(merchant.stores.values_list("store_no", "area_code")) == [("S001", "330106")]
    assert merchant.scenarios == [{"type": "store", "name": "龙井路店"}]
    assert sorted(merchant.documents.values_list("doc_type", flat=True)) == ["bank_card", "id_back", "id_front",
                                                                             "licence"]
    assert merchant.applications.get().state == "draft"
    page = client.get(response["Location"]).content.decode()
    assert "Store front" in page and "Store inside" in page  # named as still missing


def test_field_errors_are_shown_beside_their_fields_and_nothing_is_written(client, clerk_wang):
    client.force_login(clerk_wang)
    before = stored_files()
    response = client.post("/staff/merchants/new/", form_data(**{
        "contact_phone": "12345", "licence_no": "91330106MA2B00000X", "stores-0-area_code": "33",
        "settlement_account-account_number": "12ab", "doc-licence": png("licence.png")}))

    assert response.status_code == 200
    forms = response.context["forms"]
    assert "mainland mobile" in forms.record.errors["contact_phone"][0]
    assert "check character" in forms.record.errors["licence_no"][0]
    assert "6 digits" in forms.stores.forms[0].errors["area_code"][0]
    assert "8 to 30 digits" in forms.settlement.errors["account_number"][0]
    assert Merchant.objects.count() == 0 and OnboardingApplication.objects.count() == 0
    assert Document.objects.count() == 0 and stored_files() == before


@pytest.mark.parametrize(("changes", "where", "field", "words"), [
    # Checks only the service makes (across fields), mapped back through the error's `param`.
    ({"settlement_account-account_holder": "张三"}, "settlement", "account_holder", "must be the legal name"),
    ({"settlement_account-account_type": "personal"}, "settlement", "account_type", "corporate account"),
    ({"licence_valid_until": "2019-01-01"}, "record", "licence_valid_until", "after licence_valid_from"),
    ({"legal_person_id_valid_until": "2020-01-01"}, "record", "legal_person_id_valid_until", "expired"),
    ({"scenarios-0-type": "website", "scenarios-0-name": "shop", "scenarios-0-url": "shop.example"}, "scenarios",
     "url", "must start with http"),
])
def test_service_errors_land_on_the_field_their_param_names(client, clerk_wang, changes, where, field, words):
    client.force_login(clerk_wang)
    response = client.post("/staff/merchants/new/", form_data(**changes))
    assert response.status_code == 200
    forms = response.context["forms"]
    errors = forms.scenarios.forms[0].errors if where == "scenarios" else getattr(forms, where).errors
    assert words in " ".join(errors[field])
    assert Merchant.objects.count() == 0


def test_a_service_error_on_a_list_row_lands_on_the_row_the_clerk_filled(clerk_wang):
    # Row 0 left empty, row 1 filled: the service's stores[0] is the form's second row.
    forms = RecordForms(form_data(**{
        "stores-0-store_no": "", "stores-0-name": "", "stores-0-area_code": "", "stores-0-address": "",
        "stores-1-store_no": "S002", "stores-1-name": "湖滨店", "stores-1-area_code": "330102",
        "stores-1-address": "湖滨路2号"}))
    assert forms.is_valid()
    assert forms.to_record()["stores"][0]["store_no"] == "S002"
    forms.apply_error(InvalidRequest("stores[0].area_code: not served", param="stores[0].area_code"))
    forms.apply_error(InvalidRequest("settlement_account.bank_name is required", param="settlement_account.bank_name"))
    forms.apply_error(InvalidRequest("stores: store_no must be unique", param="stores"))
    assert forms.stores.forms[1].errors["area_code"] == ["Not served"]
    assert not forms.stores.forms[0].errors
    assert forms.settlement.errors["bank_name"] == ["Bank name is required"]
    assert forms.section_errors["stores"] == ["Store_no must be unique"]


def test_a_refused_document_undoes_the_whole_save_and_leaves_no_file(client, clerk_wang):
    client.force_login(clerk_wang)
    before = stored_files()
    response = client.post("/staff/merchants/new/", form_data(**{
        "doc-licence": png("licence.png"),
        "doc-id_front": SimpleUploadedFile("id.png", b"<html>not a picture</html>", content_type="image/png")}))
    assert response.status_code == 200
    assert "JPEG, PNG or PDF" in response.context["forms"].documents.errors["id_front"][0]
    assert Merchant.objects.count() == 0 and Document.objects.count() == 0
    assert stored_files() == before  # the licence written before the refusal was removed again


def test_the_form_never_echoes_pii_back_even_after_an_error(client, clerk_wang):
    client.force_login(clerk_wang)
    html = client.post("/staff/merchants/new/", form_data(short_name="")).content.decode()
    assert "Short name is required" in html or "This field is required" in html
    for secret in (ID_NUMBER, PHONE, ACCOUNT_NUMBER, "li.si@example.com"):
        assert secret not in html


def test_editing_keeps_stored_pii_when_left_empty_and_masks_it_in_the_form(client, clerk_wang, drafted_tea_house):
    merchant = drafted_tea_house.merchant
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{merchant.merchant_no}/edit/").content.decode()
    for secret in (ID_NUMBER, PHONE, ACCOUNT_NUMBER, "li.si@example.com"):
        assert secret not in page
    assert "110105********002X — leave empty to keep" in page

    data = form_data(short_name="西湖茶馆 总店", legal_person_id_number="", contact_phone="", contact_email="",
                     **{"settlement_account-account_number": "", "stores-INITIAL_FORMS": "1",
                        "scenarios-INITIAL_FORMS": "1"})
    response = client.post(f"/staff/merchants/{merchant.merchant_no}/edit/", data)
    assert response.status_code == 302
    merchant.refresh_from_db()
    assert merchant.short_name == "西湖茶馆 总店"
    assert merchant.legal_person_id_number == ID_NUMBER and merchant.contact_phone == PHONE
    assert merchant.contact_email == "li.si@example.com"
    assert merchant.settlement_accounts.get(current=True).account_number == ACCOUNT_NUMBER


def test_a_returned_application_shows_the_flagged_fields_and_reopens_when_corrected(
        client, clerk_wang, risk_zhao, drafted_tea_house):
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    application_return(application_id=drafted_tea_house.pk, actor=risk_zhao, reasons=[
        {"field": "registered_address", "reason": "does not match the licence"},
        {"field": "documents.store_front", "reason": "the sign is not readable"}])
    merchant = drafted_tea_house.merchant
    client.force_login(clerk_wang)

    page = client.get(f"/staff/merchants/{merchant.merchant_no}/edit/")
    flagged = {f.name: f.flag for f in page.context["forms"].record if getattr(f, "flag", "")}
    assert flagged == {"registered_address": "does not match the licence"}
    assert page.context["forms"].documents["store_front"].flag == "the sign is not readable"
    assert "Risk asks: does not match the licence" in page.content.decode()

    data = form_data(registered_address="浙江省杭州市西湖区龙井路1号（一楼）", **{
        "doc-store_front": SimpleUploadedFile("front.png", png_bytes("sharper"), content_type="image/png"),
        "stores-INITIAL_FORMS": "1", "scenarios-INITIAL_FORMS": "1"})
    assert client.post(f"/staff/merchants/{merchant.merchant_no}/edit/", data).status_code == 302
    drafted_tea_house.refresh_from_db()
    assert drafted_tea_house.state == "draft"
    assert merchant.documents.filter(doc_type="store_front").count() == 2


def test_an_application_under_review_cannot_be_edited(client, clerk_wang, drafted_tea_house):
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    client.force_login(clerk_wang)
    path = f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/edit/"
    response = client.post(path, form_data(short_name="changed"))
    assert response.status_code == 302
    assert Merchant.objects.get().short_name == "西湖茶馆"

"""Documents go to an application that can still use them (issue 4; docs/api.md "Partner onboarding"): a draft or a
returned one. Risk's rejection is final — the application cannot be corrected or resubmitted — so a document is not
added to it: ``document_add`` refuses with a reason that says so and stores nothing, the merchant page offers no
upload form, and the partner API answers 409."""

from __future__ import annotations

import base64

import pytest

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from merchants.models import Document
from merchants.services.onboarding import (
    application_reject,
    application_return,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from tests.merchants.records import png, png_bytes, record
from tests.merchants.test_workbench_form import stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed_tea_house(drafted_tea_house, clerk_wang, risk_zhao):
    """The Tea House, submitted with every document and taken for review by Zhao."""
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    return drafted_tea_house


@pytest.fixture
def rejected_tea_house(reviewed_tea_house, risk_zhao):
    return application_reject(application_id=reviewed_tea_house.pk, actor=risk_zhao, reason="虚假商户")


@pytest.fixture
def returned_tea_house(reviewed_tea_house, risk_zhao):
    return application_return(application_id=reviewed_tea_house.pk, actor=risk_zhao,
                              reasons=[{"field": "licence", "reason": "执照照片模糊"}])


def page(client, merchant) -> str:
    return client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()


def upload_form_shown(html: str, merchant) -> bool:
    return f'action="/staff/merchants/{merchant.merchant_no}/documents/"' in html


def test_a_document_for_a_risk_rejected_application_is_refused_and_nothing_is_stored(rejected_tea_house, clerk_wang):
    merchant = rejected_tea_house.merchant
    documents, files = Document.objects.count(), stored_files()

    with pytest.raises(InvalidState) as refused:
        document_add(merchant_id=merchant.pk, actor=clerk_wang, doc_type="licence", uploaded_file=png("new.png"))

    assert "rejected by risk, which is final" in refused.value.message
    assert "cannot be corrected or resubmitted" in refused.value.message
    assert Document.objects.count() == documents and stored_files() == files
    assert not AuditLog.objects.filter(action="merchants.document.added", created_at__gt=rejected_tea_house.decided_at)


def test_the_merchant_page_of_a_rejected_application_has_no_upload_form_and_refuses_a_posted_one(
        client, rejected_tea_house, clerk_wang):
    merchant = rejected_tea_house.merchant
    client.force_login(clerk_wang)
    html = page(client, merchant)
    assert not upload_form_shown(html, merchant) and 'name="doc_type"' not in html
    documents, files = Document.objects.count(), stored_files()

    response = client.post(f"/staff/merchants/{merchant.merchant_no}/documents/",
                           {"doc_type": "licence", "file": png("new.png")}, follow=True)

    assert "Not uploaded: the application was rejected by risk, which is final" in response.content.decode()
    assert Document.objects.count() == documents and stored_files() == files


def test_the_partner_cannot_add_a_document_to_its_rejected_merchant(signed_api, westlake_app, westlake_agency,
                                                                    clerk_wang, risk_zhao):
    application = merchant_onboard_draft(actor=clerk_wang, data=record(), partner=westlake_agency)
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        document_add(merchant_id=application.merchant_id, actor=clerk_wang, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor=clerk_wang)
    application_review_start(application_id=application.pk, actor=risk_zhao)
    application_reject(application_id=application.pk, actor=risk_zhao, reason="虚假商户")

    response = signed_api(westlake_app).post(
        f"/api/v1/merchants/{application.merchant.merchant_no}/documents",
        json={"doc_type": "licence", "filename": "licence.png",
              "content_base64": base64.b64encode(png_bytes("again")).decode()})

    assert response.status_code == 409, response.json()
    assert response.json()["error"]["code"] == "invalid_state"
    assert "final" in response.json()["error"]["message"]
    assert Document.objects.filter(merchant=application.merchant).count() == 6


def test_a_returned_application_still_takes_documents_on_its_page(client, returned_tea_house, clerk_wang):
    merchant = returned_tea_house.merchant
    client.force_login(clerk_wang)
    assert upload_form_shown(page(client, merchant), merchant)

    response = client.post(f"/staff/merchants/{merchant.merchant_no}/documents/",
                           {"doc_type": "licence", "file": png("sharper-licence.png")}, follow=True)

    assert "Business licence uploaded." in response.content.decode()
    assert merchant.documents.filter(doc_type="licence").count() == 2


def test_a_draft_takes_documents_and_one_under_review_does_not(client, drafted_tea_house, clerk_wang, risk_zhao):
    merchant = drafted_tea_house.merchant
    client.force_login(clerk_wang)
    assert upload_form_shown(page(client, merchant), merchant)
    document_add(merchant_id=merchant.pk, actor=clerk_wang, doc_type="other", uploaded_file=png("other.png"))

    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    assert not upload_form_shown(page(client, merchant), merchant)
    with pytest.raises(InvalidState) as refused:
        document_add(merchant_id=merchant.pk, actor=clerk_wang, doc_type="other", uploaded_file=png("late.png"))
    assert refused.value.message.startswith("the application is submitted")

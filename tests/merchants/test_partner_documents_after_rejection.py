"""A partner uploading a corrected document after a channel rejected one of its merchant's contracts gets what a
clerk gets on the merchant page (merchants.services.onboarding ``document_add``, ``resubmission_warning``;
docs/api.md "Partner onboarding"): a 400 naming ``content_base64`` when no waiting channel can take the file, and a
201 with a ``warning`` naming the channels that cannot take it when it is kept for one that can — not silence, and
then a resubmission that never goes out."""

from __future__ import annotations

import base64

import pytest

from merchants.models import Document, Merchant
from tests.merchants.records import pdf_bytes, png_bytes
from tests.merchants.test_resubmit_document_formats import approved, reject  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def partners_approved(approved, westlake_agency):  # noqa: F811 - the fixture imported above
    """The approved Tea House, onboarded through the West Lake agency (its partner)."""
    merchant = approved["bank-a"].merchant
    Merchant.objects.filter(pk=merchant.pk).update(partner=westlake_agency, partner_reference="TEA-1")
    return approved


def _upload(signed_api, app, merchant, filename: str, content: bytes):
    return signed_api(app).post(f"/api/v1/merchants/{merchant.merchant_no}/documents", json={
        "doc_type": "licence", "filename": filename, "content_base64": base64.b64encode(content).decode()})


def test_a_pdf_only_wechat_pay_waits_for_is_refused_naming_the_field(signed_api, westlake_app, partners_approved):
    reject(partners_approved["wechatpay-isv"])
    merchant = partners_approved["wechatpay-isv"].merchant
    before = Document.objects.filter(merchant=merchant).count()

    response = _upload(signed_api, westlake_app, merchant, "licence.pdf", pdf_bytes("scan"))

    error = response.json()["error"]
    assert (response.status_code, error["code"], error["param"]) == (400, "invalid_request", "content_base64")
    assert "Wechatpay Isv takes only JPEG or PNG pictures" in error["message"]
    assert Document.objects.filter(merchant=merchant).count() == before


def test_a_pdf_kept_for_the_bank_comes_back_with_a_warning_about_wechat_pay(signed_api, westlake_app,
                                                                           partners_approved):
    reject(partners_approved["wechatpay-isv"], partners_approved["bank-a"])
    merchant = partners_approved["bank-a"].merchant

    response = _upload(signed_api, westlake_app, merchant, "licence.pdf", pdf_bytes("scan"))

    assert response.status_code == 201, response.json()
    assert response.json()["content_type"] == "application/pdf"
    assert response.json()["warning"].startswith("licence is a PDF: Wechatpay Isv takes only JPEG or PNG pictures")
    assert "kept for Bank A" in response.json()["warning"]


def test_a_photo_every_waiting_channel_takes_has_no_warning(signed_api, westlake_app, partners_approved):
    reject(partners_approved["wechatpay-isv"], partners_approved["bank-a"])

    response = _upload(signed_api, westlake_app, partners_approved["bank-a"].merchant, "licence.png",
                       png_bytes("sharper licence"))

    assert response.status_code == 201 and response.json()["warning"] is None, response.json()

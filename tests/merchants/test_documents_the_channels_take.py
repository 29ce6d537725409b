"""A submission is refused, naming the document, when a channel that will onboard the merchant cannot take one of
its documents: WeChat Pay's media upload takes JPEG/PNG/BMP up to 2 MB, Alipay's image upload no PDF (the adapters'
``accepted_documents``). Before, the clerk learnt it after risk approved, from the channel's refusal of the
contract ("image_type不支持"). The bank takes PDFs, so a merchant only a bank onboards may send one."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.errors import InvalidRequest
from merchants.models import ApplicationState, Document, Merchant
from merchants.services.onboarding import application_submit, document_add, merchant_onboard_draft
from tests.merchants.records import pdf_bytes, png, png_bytes, record
from tests.merchants.test_partner_api import ALL_DOCUMENTS, document

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


def _draft(clerk, *, licence: SimpleUploadedFile, **changes):
    """Wang's Tea House draft with every document, the licence as given."""
    application = merchant_onboard_draft(actor=clerk, data=record(**changes))
    document_add(merchant_id=application.merchant_id, actor=clerk, doc_type="licence", uploaded_file=licence)
    for doc_type in ALL_DOCUMENTS[1:]:
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    return application


def _pdf_licence() -> SimpleUploadedFile:
    return SimpleUploadedFile("licence.pdf", pdf_bytes("licence"), content_type="application/pdf")


def test_a_pdf_licence_is_refused_at_submission_naming_it_and_the_wallets_that_take_only_pictures(
        clerk_wang, onboarding_accounts):
    application = _draft(clerk_wang, licence=_pdf_licence())
    with pytest.raises(InvalidRequest) as refused:
        application_submit(application_id=application.pk, actor=clerk_wang)
    assert refused.value.param == "documents"
    assert refused.value.message == (
        "documents the channels cannot take: licence is a PDF: Alipay Isv and Wechatpay Isv take only JPEG or PNG "
        "pictures; upload a photo or an image of the scan")
    application.refresh_from_db()
    assert application.state == ApplicationState.DRAFT


def test_a_photo_over_2_mb_is_refused_naming_the_channels_that_take_2_mb(clerk_wang, onboarding_accounts):
    application = _draft(clerk_wang, licence=SimpleUploadedFile("licence.png", png_bytes("licence", size=3 * MiB)))
    with pytest.raises(InvalidRequest) as refused:
        application_submit(application_id=application.pk, actor=clerk_wang)
    assert refused.value.param == "documents"
    assert (f"licence is {3 * MiB} bytes: Bank A and Wechatpay Isv take pictures up to 2 MB ({2 * MiB} bytes); "
            "upload a smaller PNG") in refused.value.message
    assert "Alipay" not in refused.value.message  # Alipay takes up to 10 MB


def test_a_pdf_licence_is_fine_when_only_the_bank_onboards(clerk_wang, onboarding_accounts):
    application = _draft(clerk_wang, licence=_pdf_licence(), requested_products=["unionpay.qr"])
    application = application_submit(application_id=application.pk, actor=clerk_wang)
    assert application.state == ApplicationState.SUBMITTED


def test_a_photo_uploaded_over_the_pdf_is_what_the_channels_get(clerk_wang, onboarding_accounts):
    application = _draft(clerk_wang, licence=_pdf_licence())
    document_add(merchant_id=application.merchant_id, actor=clerk_wang, doc_type="licence",
                 uploaded_file=png("licence-photo.png"))
    assert application_submit(application_id=application.pk, actor=clerk_wang).state == ApplicationState.SUBMITTED


def test_the_merchant_page_names_the_pdf_where_it_names_missing_documents(client, clerk_wang, onboarding_accounts):
    application = _draft(clerk_wang, licence=_pdf_licence())
    client.force_login(clerk_wang)
    merchant_no = application.merchant.merchant_no
    page = client.get(f"/staff/merchants/{merchant_no}/").content.decode()
    assert "Upload the missing documents first: licence is a PDF: Alipay Isv and Wechatpay Isv take only" in page

    response = client.post(f"/staff/merchants/{merchant_no}/submit/", follow=True)
    assert "Not submitted: documents the channels cannot take: licence is a PDF" in response.content.decode()


def test_a_partners_create_and_submit_with_a_pdf_licence_is_a_400_naming_it_and_creates_nothing(
        signed_api, westlake_app, onboarding_accounts):
    documents = [document("licence", content=pdf_bytes("licence"), filename="licence.pdf")]
    documents += [document(doc_type) for doc_type in ALL_DOCUMENTS[1:]]
    response = signed_api(westlake_app).post("/api/v1/merchants", json={**record(), "documents": documents,
                                                                          "submit": True})
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["param"] == "documents"
    assert "licence is a PDF: Alipay Isv and Wechatpay Isv take only JPEG or PNG pictures" in error["message"]
    assert not Merchant.objects.filter(partner__isnull=False).exists() and not Document.objects.exists()


def test_channels_with_the_same_rule_are_named_together_and_a_taken_document_passes():
    from merchants.documents import channel_refusal

    wechat = {"image/jpeg": 2 * MiB, "image/png": 2 * MiB}
    alipay = {"image/jpeg": 10 * MiB, "image/png": 10 * MiB}
    channels = {"WeChat Pay": wechat, "Alipay": alipay}
    assert channel_refusal(doc_type="id_front", content_type="image/jpeg", size=MiB, channels=channels) is None
    assert channel_refusal(doc_type="licence", content_type="application/pdf", size=MiB, channels=channels) == (
        "licence is a PDF: WeChat Pay and Alipay take only JPEG or PNG pictures; upload a photo or an image of the "
        "scan")
    assert channel_refusal(doc_type="id_front", content_type="image/jpeg", size=11 * MiB, channels=channels) == (
        f"id_front is {11 * MiB} bytes: WeChat Pay takes pictures up to 2 MB ({2 * MiB} bytes); Alipay takes "
        f"pictures up to 10 MB ({10 * MiB} bytes); upload a smaller JPEG, e.g. a photo at a lower resolution")


def test_a_photo_over_2_mb_is_refused_when_only_the_bank_onboards(clerk_wang, onboarding_accounts):
    # The bank's upload takes JPEG, PNG or PDF of up to 2 MiB (docs/channels/bank.md §9.1).
    application = _draft(clerk_wang, licence=SimpleUploadedFile("licence.png", png_bytes("licence", size=3 * MiB)),
                         requested_products=["unionpay.qr"])
    with pytest.raises(InvalidRequest) as refused:
        application_submit(application_id=application.pk, actor=clerk_wang)
    assert refused.value.param == "documents" and "licence is" in refused.value.message
    assert "Bank" in refused.value.message

"""A clerk uploads a corrected document on the merchant page after a channel rejected a contract, in a real browser
(merchants.views ``document_upload``; merchants.services.onboarding ``document_add``, ``resubmission_warning``).
The Tea House was approved and submitted to WeChat Pay and Bank A at their simulators; WeChat Pay rejects its
licence photo. A PDF scan, which WeChat Pay cannot take (A.13), is refused saying why; once Bank A rejects the
contract too, the same PDF is kept for Bank A (the bank takes PDFs, bank.md §9.1) with a warning naming WeChat Pay."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from merchants.models import Document
from tests.browser.laptop import assert_fits_a_laptop
from tests.merchants.records import pdf_bytes
from tests.merchants.test_resubmit_document_formats import at_the_simulators, reject_at, submitted  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WECHAT_CANNOT = ("licence is a PDF: WeChat Pay ISV takes only JPEG or PNG pictures; upload a photo or an image of the "
                 "scan")


def _upload_pdf_licence(page) -> None:
    form = page.locator('#documents form[action$="/documents/"]')
    form.locator('select[name="doc_type"]').select_option("licence")
    form.locator('input[name="file"]').set_input_files(
        {"name": "licence-scan.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes("licence scan")})
    form.get_by_role("button", name="Upload").click()


def test_a_clerk_reads_why_a_pdf_licence_is_refused_and_then_kept_for_the_bank_only(
        at_the_simulators, submitted, sign_in, live_server, shots):  # noqa: F811
    wechat, bank = submitted["wechatpay"], submitted["bank"]
    merchant = wechat.merchant
    reject_at(at_the_simulators["root"], wechat)
    page = sign_in("wang.clerk")
    page.goto(f"{live_server.url}/staff/merchants/{merchant.merchant_no}/")
    licences = page.locator('#documents figure[data-doc-type="licence"]')
    expect(licences).to_have_count(1)

    _upload_pdf_licence(page)

    expect(page.locator(".message.error")).to_have_text(
        f"Not uploaded: {WECHAT_CANNOT} (it would go with the resubmission of the contract WeChat Pay ISV rejected)")
    expect(page.locator(".message.success")).to_have_count(0)
    expect(page.locator(".message.error")).to_be_in_viewport()  # not scrolled past to the documents
    expect(licences).to_have_count(1)  # still the photo
    assert not Document.objects.filter(merchant=merchant, content_type="application/pdf").exists()
    page.screenshot(path=str(shots / "clerk-pdf-refused.png"), full_page=True)

    reject_at(at_the_simulators["root"], bank)
    page.reload()
    _upload_pdf_licence(page)

    warning = page.locator(".message.warning")
    expect(warning).to_be_in_viewport()
    expect(warning).to_have_text(
        f"Business licence uploaded. But {WECHAT_CANNOT}. It is kept for Bank A, which can take it; WeChat Pay ISV's "
        f"contract is not resubmitted while it is the latest licence.")
    expect(page.locator(".message.success")).to_have_count(0)
    assert Document.objects.filter(merchant=merchant, doc_type="licence", content_type="application/pdf").count() == 1
    page.screenshot(path=str(shots / "clerk-pdf-kept-with-warning.png"), full_page=True)
    assert_fits_a_laptop(page)

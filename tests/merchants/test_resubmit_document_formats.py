"""A document uploaded after a channel rejected a contract is checked against that channel's formats (the adapters'
``accepted_documents``: WeChat Pay JPEG/PNG/BMP up to 2 MiB, A.13; the bank JPEG/PNG/PDF up to 2 MiB, bank.md
§9.1). Submission checks the documents once (``unusable_documents``); the corrected one the clerk uploads for a
resubmission went out unchecked — a PDF licence for WeChat Pay failed at its media upload and came back as another
rejection. Now ``contract_resubmit`` refuses it naming the document, with nothing sent, and ``document_add`` refuses
it at upload when no waiting channel can take it, or keeps it with a warning when one can."""

from __future__ import annotations

import hashlib

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from channels.adapters.base import OnboardingState
from channels.models import ChannelAccount
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from channels.simulators.wechatpay_merchant import NS_MEDIA
from merchants.models import ContractEvent, ContractState, Document
from merchants.services.contracts import _send, _submission_record, contract_poll, contract_resubmit
from merchants.services.onboarding import document_add, resubmission_warning
from tests.merchants.conftest import offer
from tests.merchants.records import pdf_bytes, png, png_bytes
from tests.merchants.test_record_corrections import answer, approve
from tests.merchants.test_workbench_form import stored_files

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
PDF_FOR_WECHAT = ("licence is a PDF: WeChat Pay ISV takes only JPEG or PNG pictures; upload a photo or an image of "
                  "the scan")


def pdf_licence() -> SimpleUploadedFile:
    return SimpleUploadedFile("licence-scan.pdf", pdf_bytes("licence scan"), content_type="application/pdf")


# --- against the simulators: what is sent, and what is not ----------------------------------------------------


@pytest.fixture
def at_the_simulators(simulator_server):
    """WeChat Pay ISV and Bank A at the simulators, onboarding wechat.native and unionpay.qr."""
    root = simulator_server.base_url
    wechat = ChannelAccount.objects.create(code="wechatpay-isv", kind="wechatpay", name="WeChat Pay ISV",
                                           base_url=f"{root}/wechatpay", enabled=True,
                                           config=wechat_sim.provision(root, name="resubmit-formats-wechat"))
    bank = ChannelAccount.objects.create(code="bank-a", kind="bank", name="Bank A", base_url=f"{root}/bank",
                                         enabled=True, config=bank_sim.provision(
                                             root, name="resubmit-formats-bank", settings={"auto_review": None}))
    offer(wechat, "wechat.native", "0.0038")
    offer(bank, "unionpay.qr", "0.0020")
    return {"wechat": wechat, "bank": bank, "root": root, "sim": simulator_server.app.apps["wechatpay"]}


@pytest.fixture
def submitted(at_the_simulators, clerk_wang, risk_zhao, drafted_tea_house, django_capture_on_commit_callbacks):
    """The Tea House approved; Celery (eager) has submitted it to WeChat Pay and Bank A. Contracts by kind."""
    with django_capture_on_commit_callbacks(execute=True):
        application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    return {c.channel_account.kind: c for c in application.contracts.select_related("channel_account", "merchant")}


def reject_at(root: str, contract) -> None:
    """The channel rejects the application (its simulator's control API) and the poll brings the verdict home."""
    kind = contract.channel_account.kind
    requests.post(f"{root}/{kind}/_control/applications/{contract.channel_application_id}", timeout=5,
                  json={"action": "reject", "reasons": [{"field": "licence", "reason": "营业执照照片不清晰"}]}
                  ).raise_for_status()
    assert contract_poll(contract_id=contract.pk).state == ContractState.REJECTED


def media_uploaded_to(at_the_simulators) -> list[dict]:
    sp_mchid = at_the_simulators["wechat"].config["sp_mchid"]
    return [media for _, media in at_the_simulators["sim"].store.items(NS_MEDIA) if media["sp_mchid"] == sp_mchid]


def test_it_refuses_to_resubmit_a_pdf_licence_to_wechat_pay_naming_it_and_sends_nothing(
        at_the_simulators, submitted, clerk_wang):
    wechat, bank = submitted["wechatpay"], submitted["bank"]
    reject_at(at_the_simulators["root"], wechat)
    reject_at(at_the_simulators["root"], bank)
    # Kept, since Bank A takes PDFs (and warned about: see the document_add tests below).
    document_add(merchant_id=wechat.merchant_id, actor=clerk_wang, doc_type="licence", uploaded_file=pdf_licence())
    media, events = media_uploaded_to(at_the_simulators), ContractEvent.objects.filter(contract=wechat).count()

    with pytest.raises(InvalidRequest) as refused:
        contract_resubmit(contract_id=wechat.pk, actor=clerk_wang)

    assert refused.value.param == "documents.licence"
    assert refused.value.message == f"{PDF_FOR_WECHAT}, then resubmit"
    wechat.refresh_from_db()
    assert wechat.state == ContractState.REJECTED
    assert ContractEvent.objects.filter(contract=wechat).count() == events
    assert not AuditLog.objects.filter(action="merchants.contract.resubmit_requested").exists()
    assert media_uploaded_to(at_the_simulators) == media  # nothing reached WeChat Pay's media upload


def test_it_resubmits_to_wechat_pay_once_a_png_replaces_the_pdf(at_the_simulators, submitted, clerk_wang):
    wechat, bank = submitted["wechatpay"], submitted["bank"]
    reject_at(at_the_simulators["root"], wechat)
    reject_at(at_the_simulators["root"], bank)
    document_add(merchant_id=wechat.merchant_id, actor=clerk_wang, doc_type="licence", uploaded_file=pdf_licence())
    photo = png_bytes("licence photo")
    document_add(merchant_id=wechat.merchant_id, actor=clerk_wang, doc_type="licence",
                 uploaded_file=SimpleUploadedFile("licence-photo.png", photo, content_type="image/png"))
    uploaded_before = len(media_uploaded_to(at_the_simulators))

    wechat = contract_resubmit(contract_id=wechat.pk, actor=clerk_wang)

    assert wechat.state in (ContractState.SUBMITTED, ContractState.AUDITING), wechat.rejection_reasons
    assert hashlib.sha256(photo).hexdigest() in wechat.media_ids  # the photo is what WeChat Pay got
    assert len(media_uploaded_to(at_the_simulators)) == uploaded_before + 1


def test_it_resubmits_a_pdf_licence_to_the_bank_when_only_the_bank_rejected(at_the_simulators, submitted, clerk_wang):
    wechat, bank = submitted["wechatpay"], submitted["bank"]
    reject_at(at_the_simulators["root"], bank)  # WeChat Pay is still reviewing the photos it has

    document = document_add(merchant_id=bank.merchant_id, actor=clerk_wang, doc_type="licence",
                            uploaded_file=pdf_licence())
    assert resubmission_warning(document) is None
    bank = contract_resubmit(contract_id=bank.pk, actor=clerk_wang)

    assert bank.state in (ContractState.SUBMITTED, ContractState.AUDITING), bank.rejection_reasons
    assert document.sha256 in bank.media_ids  # the bank's file upload (§9.1) took the PDF
    wechat.refresh_from_db()
    assert wechat.state in (ContractState.SUBMITTED, ContractState.AUDITING)


def test_it_sends_no_pdf_uploaded_while_a_resubmission_to_wechat_pay_is_under_way(
        at_the_simulators, submitted, clerk_wang):
    """Clerk A resubmits to WeChat Pay while clerk B uploads a PDF licence for the bank (both rejected it).
    ``contract_resubmit`` checks, records the submission, then sends the latest documents with no lock held: the
    PDF uploaded in between was stored without a word (WeChat Pay's contract was no longer rejected) and went to
    WeChat Pay, back as another rejection. Interleaved at the service's own steps, as the two clerks run."""
    wechat, bank = submitted["wechatpay"], submitted["bank"]
    reject_at(at_the_simulators["root"], wechat)
    reject_at(at_the_simulators["root"], bank)
    submission = _submission_record(wechat.pk, actor=clerk_wang, resubmission=True)  # A's check passed
    document_add(merchant_id=bank.merchant_id, actor=clerk_wang, doc_type="licence", uploaded_file=pdf_licence())
    media = media_uploaded_to(at_the_simulators)

    wechat = _send(wechat.pk, submission=submission, actor=clerk_wang)  # A's send

    assert media_uploaded_to(at_the_simulators) == media
    assert wechat.state == ContractState.REJECTED
    assert wechat.rejection_reasons == [{"field": "licence", "reason": f"not sent: {PDF_FOR_WECHAT}, then resubmit"}]


# --- document_add while contracts are rejected (no channel is called) -----------------------------------------


@pytest.fixture
def approved(clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts):
    """Tea House approved: contracts with Wechatpay Isv, Alipay Isv and Bank A, none sent yet (no Celery here)."""
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    return {c.channel_account.code: c for c in application.contracts.select_related("channel_account")}


def reject(*contracts) -> None:
    for contract in contracts:
        answer(contract, OnboardingState.REJECTED, application_id=f"A-{contract.pk}",
               rejections=[{"field": "licence", "reason": "营业执照照片不清晰"}])


def test_it_refuses_a_pdf_uploaded_while_only_wechat_pay_waits_for_it_and_stores_nothing(approved, clerk_wang):
    reject(approved["wechatpay-isv"])
    merchant = approved["wechatpay-isv"].merchant
    documents, files = Document.objects.count(), stored_files()

    with pytest.raises(InvalidRequest) as refused:
        document_add(merchant_id=merchant.pk, actor=clerk_wang, doc_type="licence", uploaded_file=pdf_licence())

    assert refused.value.param == "file"
    assert refused.value.message == (
        "licence is a PDF: Wechatpay Isv takes only JPEG or PNG pictures; upload a photo or an image of the scan "
        "(it would go with the resubmission of the contract Wechatpay Isv rejected)")
    assert Document.objects.count() == documents and stored_files() == files
    assert not AuditLog.objects.filter(action="merchants.document.added", data__size=len(pdf_bytes("licence scan")))


def test_it_refuses_a_photo_over_2_mb_when_every_waiting_channel_takes_2_mb(approved, clerk_wang):
    reject(approved["wechatpay-isv"], approved["bank-a"])
    big = SimpleUploadedFile("licence.png", png_bytes("licence", size=3 * MiB), content_type="image/png")

    with pytest.raises(InvalidRequest) as refused:
        document_add(merchant_id=approved["bank-a"].merchant_id, actor=clerk_wang, doc_type="licence",
                     uploaded_file=big)

    assert refused.value.message.startswith(
        f"licence is {3 * MiB} bytes: Bank A and Wechatpay Isv take pictures up to 2 MB ({2 * MiB} bytes)")
    assert refused.value.message.endswith("(it would go with the resubmission of the contracts Bank A and Wechatpay Isv "
                                          "rejected)")


def test_it_keeps_a_pdf_the_bank_can_take_and_warns_that_wechat_pay_cannot(approved, clerk_wang):
    reject(approved["wechatpay-isv"], approved["bank-a"])

    document = document_add(merchant_id=approved["bank-a"].merchant_id, actor=clerk_wang, doc_type="licence",
                            uploaded_file=pdf_licence())

    assert Document.objects.filter(pk=document.pk, content_type="application/pdf").exists()
    assert resubmission_warning(document) == (
        "licence is a PDF: Wechatpay Isv takes only JPEG or PNG pictures; upload a photo or an image of the scan. "
        "It is kept for Bank A, which can take it; Wechatpay Isv's contract is not resubmitted while it is the "
        "latest licence.")


def test_it_takes_a_photo_for_a_rejected_contract_without_a_warning(approved, clerk_wang):
    reject(approved["wechatpay-isv"], approved["bank-a"])
    document = document_add(merchant_id=approved["bank-a"].merchant_id, actor=clerk_wang, doc_type="licence",
                            uploaded_file=png("sharper-licence.png"))
    assert resubmission_warning(document) is None


# --- the merchant page ------------------------------------------------------------------------------------------


def upload(client, merchant, uploaded_file) -> str:
    response = client.post(f"/staff/merchants/{merchant.merchant_no}/documents/",
                           {"doc_type": "licence", "file": uploaded_file}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_the_merchant_page_says_why_a_pdf_for_wechat_pay_was_not_uploaded(client, approved, clerk_wang):
    reject(approved["wechatpay-isv"])
    merchant = approved["wechatpay-isv"].merchant
    client.force_login(clerk_wang)

    page = upload(client, merchant, pdf_licence())

    assert "Not uploaded: licence is a PDF: Wechatpay Isv takes only JPEG or PNG pictures" in page
    assert not merchant.documents.filter(content_type="application/pdf").exists()


def test_the_merchant_page_warns_that_a_pdf_kept_for_the_bank_will_not_go_to_wechat_pay(client, approved, clerk_wang):
    reject(approved["wechatpay-isv"], approved["bank-a"])
    merchant = approved["bank-a"].merchant
    client.force_login(clerk_wang)

    page = upload(client, merchant, pdf_licence())

    assert 'class="message warning"' in page
    assert ("Business licence uploaded. But licence is a PDF: Wechatpay Isv takes only JPEG or PNG pictures; upload "
            "a photo or an image of the scan. It is kept for Bank A, which can take it; Wechatpay Isv&#x27;s contract "
            "is not resubmitted while it is the latest licence.") in page


def test_the_resubmit_button_names_the_document_wechat_pay_cannot_take(client, approved, clerk_wang):
    wechat = approved["wechatpay-isv"]
    reject(wechat, approved["bank-a"])
    document_add(merchant_id=wechat.merchant_id, actor=clerk_wang, doc_type="licence", uploaded_file=pdf_licence())
    client.force_login(clerk_wang)

    response = client.post(f"/staff/merchants/{wechat.merchant.merchant_no}/contracts/{wechat.pk}/resubmit/",
                           follow=True)

    assert ("Not resubmitted: licence is a PDF: Wechatpay Isv takes only JPEG or PNG pictures; upload a photo or an "
            "image of the scan, then resubmit") in response.content.decode()
    wechat.refresh_from_db()
    assert wechat.state == ContractState.REJECTED

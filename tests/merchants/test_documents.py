"""A document must be a whole JPEG, PNG or PDF (merchants/documents.py): a file that starts right but was cut short
or is garbage after its first bytes is refused where it comes in — the merchant page, the partner API, the batch
import's documents ZIP — naming the field, and nothing of it is written. Before, only the first bytes were read, and
the failure showed only when a channel's media upload verified the picture (channel-protocols.md A.13)."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from merchants.batch import services as batch_services
from merchants.batch.examples import documents_zip, example_rows, sheet_bytes
from merchants.documents import document_content_type, one_colour_png
from merchants.models import Document, ImportJob, ImportJobState, Merchant
from merchants.services.onboarding import document_add
from tests.merchants.records import jpeg_bytes, pdf_bytes, png_bytes, record

pytestmark = pytest.mark.django_db

PNG = one_colour_png(7)  # 160 × 100, as the demo's documents
JPEG = jpeg_bytes("licence")
PDF = pdf_bytes("licence")
WHOLE = {"png": PNG, "jpg": JPEG, "pdf": PDF}
# Each format cut short where uploads break: in the middle, and just before the end (the end marker lost).
CUT = {
    "png-half": PNG[: len(PNG) // 2], "png-without-iend": PNG[:-12], "png-last-byte-lost": PNG[:-1],
    "jpg-half": JPEG[: len(JPEG) // 2], "jpg-without-eoi": JPEG[:-2], "jpg-last-byte-lost": JPEG[:-1],
    "pdf-half": PDF[: len(PDF) // 2], "pdf-without-eof": PDF[: PDF.rindex(b"%%EOF")],
}


def extension(case: str) -> str:
    return case.split("-", 1)[0]


# --- the check ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, content_type", [
    (PNG, "image/png"), (png_bytes("tagged"), "image/png"), (JPEG, "image/jpeg"), (PDF, "application/pdf")])
def test_it_accepts_whole_files_by_their_content(content, content_type):
    assert document_content_type(content) == content_type


@pytest.mark.parametrize("case", sorted(CUT))
def test_it_refuses_a_file_cut_short_saying_so(case):
    with pytest.raises(InvalidRequest) as refused:
        document_content_type(CUT[case], field="documents[2].file")
    assert refused.value.param == "documents[2].file"
    assert "cut short" in refused.value.message and "upload the whole file again" in refused.value.message


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "damaged PNG: it does not start with its IHDR header"),  # the old fixture
    (PNG[:16] + b"\xff" * 9 + PNG[25:], "damaged PNG: its IHDR header does not match its checksum"),
    # the JPEG the partner docs' tests used to send: its first segment claims 27,753 bytes ("li") of the 74 there are
    (b"\xff\xd8\xff\xe0" + b"licence" * 10, "JPEG cut short"),
    (b"\xff\xd8\xff" + b"licence" * 10, "damaged JPEG: byte 3 is not a marker"),
    (b"\xff\xd8" + JPEG[JPEG.index(b"\xff\xda"):], "damaged JPEG: picture data comes before the picture's header"),
    (b"%PDF-1.7\n" + b"0" * 100, "PDF cut short"),
])
def test_it_refuses_garbage_after_the_right_first_bytes(content, words):
    with pytest.raises(InvalidRequest) as refused:
        document_content_type(content)
    assert words in refused.value.message and refused.value.param == "file"


@pytest.mark.parametrize("width, height", [(0, 100), (160, 0), (70_000, 100)])
def test_a_png_whose_header_claims_no_or_an_absurd_size_is_refused(width, height):
    header = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    content = PNG[:8] + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header)) + PNG[33:]
    with pytest.raises(InvalidRequest) as refused:
        document_content_type(content)
    assert f"its header says {width} × {height} pixels" in refused.value.message


@pytest.mark.parametrize("after", [b"\x00" * 512, b"SEFHxxxxImage_UTC_Data1700000000000SEFT", JPEG])
def test_a_jpeg_with_data_after_its_end_marker_is_whole(after):
    """Phones put data after the picture's EOI: zero padding, Samsung's SEFH…SEFT trailer, a motion photo's video
    or an MPO's second picture. The picture before it is whole, so it is accepted (merchants/documents.py)."""
    assert document_content_type(JPEG + after) == "image/jpeg"


def test_a_stuffed_ff_or_a_restart_marker_in_the_picture_data_is_not_its_end():
    scan = JPEG.index(b"\xff\xda") + 2 + 8  # SOS: marker, length 8
    with_markers = JPEG[:scan] + b"\xff\x00\xff\xd0" + JPEG[scan:]
    assert document_content_type(with_markers) == "image/jpeg"
    with pytest.raises(InvalidRequest, match="cut short"):
        document_content_type(with_markers[:scan + 4])


# --- the merchant page (document_add, param "file") ---------------------------------------------------------------
@pytest.mark.parametrize("case", ["png-half", "jpg-without-eoi", "pdf-without-eof"])
def test_the_merchant_page_refuses_a_cut_file_naming_it_and_stores_nothing(client, clerk_wang, drafted_tea_house,
                                                                           case):
    merchant = drafted_tea_house.merchant
    documents = Document.objects.count()
    with pytest.raises(InvalidRequest) as refused:
        document_add(merchant_id=merchant.pk, actor=clerk_wang, doc_type="other",
                     uploaded_file=SimpleUploadedFile(f"other.{extension(case)}", CUT[case]))
    assert refused.value.param == "file" and "cut short" in refused.value.message

    client.force_login(clerk_wang)
    response = client.post(f"/staff/merchants/{merchant.merchant_no}/documents/", {
        "doc_type": "other", "file": SimpleUploadedFile(f"other.{extension(case)}", CUT[case])}, follow=True)

    assert "Not uploaded: the content is a " in response.content.decode()
    assert Document.objects.count() == documents
    assert not AuditLog.objects.filter(action="merchants.document.added", data__doc_type="other").exists()


@pytest.mark.parametrize("kind", sorted(WHOLE))
def test_the_merchant_page_still_takes_a_whole_file(client, clerk_wang, drafted_tea_house, kind):
    merchant = drafted_tea_house.merchant
    client.force_login(clerk_wang)
    response = client.post(f"/staff/merchants/{merchant.merchant_no}/documents/", {
        "doc_type": "other", "file": SimpleUploadedFile(f"other.{kind}", WHOLE[kind])}, follow=True)
    assert "Other uploaded." in response.content.decode()
    stored = merchant.documents.get(doc_type="other")
    assert stored.file.read() == WHOLE[kind] and stored.size == len(WHOLE[kind])


# --- the partner API ----------------------------------------------------------------------------------------------
def _document(doc_type: str, content: bytes, suffix: str = "png") -> dict:
    return {"doc_type": doc_type, "filename": f"{doc_type}.{suffix}",
            "content_base64": base64.b64encode(content).decode()}


@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


@pytest.mark.parametrize("case", ["png-without-iend", "jpg-half", "pdf-half"])
def test_a_partner_create_with_one_cut_document_of_three_names_it_and_writes_nothing(partner, case):
    documents = [_document("licence", png_bytes("licence")),
                 _document("id_front", CUT[case], extension(case)),
                 _document("id_back", jpeg_bytes("id_back"), "jpg")]

    response = partner.post("/api/v1/merchants", json={**record(), "documents": documents})

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["param"] == "documents[1].content_base64" and "cut short" in error["message"]
    assert not Merchant.objects.filter(partner__isnull=False).exists() and not Document.objects.exists()


def test_a_partner_create_with_whole_documents_of_each_type_stores_them(partner):
    documents = [_document("licence", PDF, "pdf"), _document("id_front", JPEG, "jpg"), _document("id_back", PNG)]
    response = partner.post("/api/v1/merchants", json={**record(), "documents": documents})
    assert response.status_code == 201, response.json()
    assert sorted(Document.objects.values_list("doc_type", "content_type")) == [
        ("id_back", "image/png"), ("id_front", "image/jpeg"), ("licence", "application/pdf")]


@pytest.mark.parametrize("case", ["png-last-byte-lost", "jpg-last-byte-lost", "pdf-without-eof"])
def test_a_partner_upload_of_a_cut_document_names_its_content(partner, case):
    merchant_no = partner.post("/api/v1/merchants", json=record()).json()["merchant_no"]
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents",
                            json=_document("licence", CUT[case], extension(case)))
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == "content_base64" and "cut short" in response.json()["error"]["message"]
    assert not Document.objects.exists()

    whole = partner.post(f"/api/v1/merchants/{merchant_no}/documents",
                         json=_document("licence", WHOLE[extension(case)], extension(case)))
    assert whole.status_code == 201, whole.json()


# --- the batch import's documents ZIP ----------------------------------------------------------------------------
def _replaced(content: bytes, member: str, name: str, data: bytes) -> bytes:
    """The ZIP with ``member`` replaced by ``name`` holding ``data``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.namelist():
            if entry == member:
                target.writestr(name, data)
            else:
                target.writestr(entry, source.read(entry))
    return out.getvalue()


@pytest.mark.parametrize("case", ["png-half", "jpg-without-eoi", "pdf-half"])
def test_a_cut_file_in_the_documents_zip_is_reported_on_its_row_and_that_row_is_not_imported(
        clerk_wang, django_capture_on_commit_callbacks, case):
    rows = example_rows(3)
    name = f"R002/licence.{extension(case)}"
    documents = _replaced(documents_zip(rows), "R002/licence.png", name, CUT[case])

    with django_capture_on_commit_callbacks(execute=True):
        job = batch_services.import_job_create(actor=clerk_wang,
                                               sheet=SimpleUploadedFile("batch.xlsx", sheet_bytes(rows)),
                                               documents=SimpleUploadedFile("documents.zip", documents))
    job = ImportJob.objects.get(pk=job.pk)

    assert job.state == ImportJobState.VALIDATED and job.invalid_rows == 1
    refused = [(row.row_number, error["column"], error["reason"])
               for row in job.rows.order_by("row_number") for error in row.errors]
    assert len(refused) == 1
    row_number, column, reason = refused[0]
    assert (row_number, column) == (3, "documents")
    assert reason.startswith(f"{name}: the content is a ") and "cut short" in reason

    with django_capture_on_commit_callbacks(execute=True):
        batch_services.import_job_confirm(job_id=job.pk, actor=clerk_wang, valid_only=True)

    assert sorted(Merchant.objects.values_list("legal_name", flat=True)) == sorted(
        r["legal_name"] for r in rows if r["ref"] != "R002")
    assert Document.objects.filter(merchant__legal_name=rows[1]["legal_name"]).count() == 0


def test_a_documents_zip_of_whole_jpeg_and_pdf_files_imports(clerk_wang, django_capture_on_commit_callbacks):
    rows = example_rows(1)
    documents = _replaced(documents_zip(rows), "R001/licence.png", "R001/licence.pdf", PDF)
    documents = _replaced(documents, "R001/id_front.png", "R001/id_front.jpg", JPEG)

    with django_capture_on_commit_callbacks(execute=True):
        job = batch_services.import_job_create(actor=clerk_wang,
                                               sheet=SimpleUploadedFile("batch.xlsx", sheet_bytes(rows)),
                                               documents=SimpleUploadedFile("documents.zip", documents))
        batch_services.import_job_confirm(job_id=job.pk, actor=clerk_wang)

    assert dict(Document.objects.filter(doc_type__in=["licence", "id_front"]).values_list("doc_type", "content_type")) \
        == {"licence": "application/pdf", "id_front": "image/jpeg"}


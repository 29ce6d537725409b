"""A damaged upload is the clerk's file to fix, not a server error: the batch upload refuses it with one message
naming the file (design §5 rule 12), and a damaged picture in the documents ZIP is reported on its row whatever way
its damage shows (issue 4 "Batch onboarding"). Workbooks and ZIPs are deflated, so most damage surfaces in zlib or
the XML parser, not as zipfile's own BadZipFile."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.errors import InvalidRequest
from merchants.batch import services
from merchants.batch.examples import documents_zip, example_rows, sheet_bytes
from merchants.models import ImportJob, ImportJobState

pytestmark = pytest.mark.django_db


def _rewrite(content: bytes, member: str, change) -> bytes:
    """The ZIP with ``member``'s content replaced by ``change(content)``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, change(data) if name == member else data)
    return out.getvalue()


def _directory_pointing_outside(content: bytes) -> bytes:
    """The ZIP with its end-of-central-directory record's directory offset pointing far past the file."""
    buffer = bytearray(content)
    end = content.rindex(b"PK\x05\x06")
    buffer[end + 16:end + 20] = struct.pack("<I", 0x7FFFFFFF)
    return bytes(buffer)


def _deflated_data_damaged(content: bytes, member: str) -> bytes:
    """The ZIP with the first byte of ``member``'s deflated data flipped: zlib, not the CRC check, finds it."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        info = archive.getinfo(member)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    buffer = bytearray(content)
    buffer[info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)] ^= 0xFF
    return bytes(buffer)


def _upload(clerk, sheet: bytes, documents: bytes | None = None):
    return services.import_job_create(
        actor=clerk, sheet=SimpleUploadedFile("batch.xlsx", sheet),
        documents=SimpleUploadedFile("documents.zip", documents) if documents is not None else None)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda c: _rewrite(c, "xl/worksheets/sheet1.xml", lambda d: d[:len(d) // 2]), id="sheet-cut-short"),
    pytest.param(lambda c: _rewrite(c, "xl/worksheets/sheet1.xml", lambda d: b"not xml"), id="sheet-not-xml"),
    pytest.param(lambda c: _rewrite(c, "xl/styles.xml", lambda d: b"<styleSheet"), id="styles-cut-short"),
    pytest.param(_directory_pointing_outside, id="directory-outside-the-file"),
    pytest.param(lambda c: _deflated_data_damaged(c, "xl/worksheets/sheet1.xml"), id="sheet-data-damaged"),
])
def test_a_damaged_workbook_is_refused_at_upload_naming_the_sheet(clerk_wang, damage):
    with pytest.raises(InvalidRequest) as refused:
        _upload(clerk_wang, damage(sheet_bytes(example_rows(2))))

    assert refused.value.param == "sheet"
    assert "not a readable Excel workbook" in refused.value.message
    assert not ImportJob.objects.exists()


def test_the_files_of_a_documents_zip_whose_directory_is_wrong_are_reported_damaged_on_their_rows(
        clerk_wang, django_capture_on_commit_callbacks):
    rows = example_rows(2)

    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(clerk_wang, sheet_bytes(rows), _directory_pointing_outside(documents_zip(rows)))

    job = ImportJob.objects.get(pk=job.pk)
    assert job.state == ImportJobState.VALIDATED and job.invalid_rows == 2
    for row in job.rows.all():
        assert row.errors and all(error["column"] == "documents" and "is damaged" in error["reason"]
                                  for error in row.errors)


def test_a_damaged_deflated_picture_is_reported_on_its_row(clerk_wang, django_capture_on_commit_callbacks):
    rows = example_rows(2)

    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(clerk_wang, sheet_bytes(rows), _deflated_data_damaged(documents_zip(rows), "R002/licence.png"))

    job = ImportJob.objects.get(pk=job.pk)
    assert job.state == ImportJobState.VALIDATED and job.invalid_rows == 1
    assert [(row.row_number, row.errors[0]["reason"]) for row in job.rows.order_by("row_number") if row.errors] == [
        (3, "R002/licence.png: the file is damaged and cannot be unpacked")]

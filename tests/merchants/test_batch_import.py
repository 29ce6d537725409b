"""Batch onboarding (批量进件) through its services: dry run, all-or-nothing or valid-only import, duplicates, the
documents ZIP, the job's state machine and progress, bulk submit (issue 4 "Batch onboarding")."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from merchants.batch import services
from merchants.batch.examples import documents_zip, example_rows, sheet_bytes
from merchants.models import (
    ApplicationState,
    Document,
    ImportJob,
    ImportJobState,
    ImportRow,
    Merchant,
    OnboardingApplication,
    RowOutcome,
)
from merchants.services.onboarding import merchant_onboard_draft
from tests.merchants.records import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk(staff_member):
    return staff_member("onboarding_clerk", username="wang.clerk")


@pytest.fixture
def batch(clerk, django_capture_on_commit_callbacks):
    """Upload and confirm as the clerk, running what is queued on commit (Celery is eager in tests)."""

    class Batch:
        @staticmethod
        def create(rows=None, *, sheet=None, documents=None):
            with django_capture_on_commit_callbacks(execute=True):
                job = services.import_job_create(actor=clerk, sheet=sheet or upload(rows), documents=documents)
            return ImportJob.objects.get(pk=job.pk)

        @staticmethod
        def confirm(job, **kwargs):
            with django_capture_on_commit_callbacks(execute=True):
                services.import_job_confirm(job_id=job.pk, actor=clerk, **kwargs)
            return ImportJob.objects.get(pk=job.pk)

    return Batch


def upload(rows, fmt="xlsx", name=None):
    return SimpleUploadedFile(name or f"batch.{fmt}", sheet_bytes(rows, fmt))


def zip_upload(content, name="documents.zip"):
    return SimpleUploadedFile(name, content)


def problems(job):
    """{row number: [(column label, reason, kind)]} of a job's report."""
    return {row.row_number: [(e["label"], e["reason"], e["kind"]) for e in row.errors]
            for row in job.rows.order_by("row_number") if row.errors}


def test_a_good_300_row_file_imports(clerk, batch):
    rows = example_rows(300)
    job = batch.create(rows)

    assert job.run_async  # more than 50 rows: a Celery job (eager in tests, same code path)
    assert job.state == ImportJobState.VALIDATED
    assert (job.total_rows, job.valid_rows, job.invalid_rows, job.processed_rows) == (300, 300, 0, 300)
    assert Merchant.objects.count() == 0  # the dry run writes nothing but its report

    job = batch.confirm(job)

    assert job.state == ImportJobState.DONE
    assert job.imported_rows == 300
    applications = OnboardingApplication.objects.filter(state=ApplicationState.DRAFT)
    assert applications.count() == 300
    assert set(Merchant.objects.values_list("licence_no", flat=True)) == {r["licence_no"] for r in rows}
    imported = job.rows.filter(outcome=RowOutcome.IMPORTED)
    assert imported.count() == 300 and not imported.filter(application__isnull=True).exists()
    first = job.rows.get(row_number=2).merchant
    assert first.short_name == rows[0]["short_name"]
    assert first.settlement_accounts.get().account_number == rows[0]["settlement_account_number"]
    assert first.stores.get().area_code == rows[0]["store_area_code"]
    done = AuditLog.objects.get(action="merchants.batch.imported", target_id=str(job.pk))
    assert done.actor == clerk and done.data["imported"] == 300 and done.data["rows"] == 300
    assert AuditLog.objects.filter(action="merchants.application.drafted").count() == 300


def _bad_rows():
    rows = example_rows(60)
    rows[3]["legal_person_id_number"] = rows[3]["legal_person_id_number"][:-1] + (
        "0" if rows[3]["legal_person_id_number"][-1] != "0" else "1")  # check digit off → Excel row 5
    rows[15]["settlement_account_number"] = "6222-ABC"  # Excel row 17
    rows[40]["short_name"] = ""  # Excel row 42
    rows[50]["licence_valid_from"] = "31/12/2020"  # Excel row 52
    return rows


def test_a_file_with_a_few_bad_rows_writes_nothing_and_reports_each_bad_row(clerk, batch):
    job = batch.create(_bad_rows())

    assert job.state == ImportJobState.VALIDATED
    assert (job.valid_rows, job.invalid_rows) == (56, 4)
    report = problems(job)
    assert sorted(report) == [5, 17, 42, 52]
    assert report[5] == [("法人证件号 ID number",
                          "“法人证件号 ID number”: the check digit does not match — a digit was mistyped", "invalid")]
    assert report[17][0][0] == "银行账号 Account number" and "8 to 30 digits" in report[17][0][1]
    assert report[42] == [("商户简称 Short name", "“商户简称 Short name” is required", "invalid")]
    assert report[52][0][0] == "执照起始日 Licence valid from" and "YYYY-MM-DD" in report[52][0][1]

    assert_confirm_refused_writing_nothing(job, clerk, invalid_rows=4)


def assert_confirm_refused_writing_nothing(job, clerk, *, invalid_rows: int) -> None:
    with pytest.raises(InvalidRequest) as refused:
        services.import_job_confirm(job_id=job.pk, actor=clerk)  # all-or-nothing, not ticked
    assert refused.value.param == "valid_only" and f"{invalid_rows} row(s) are invalid" in refused.value.message
    job.refresh_from_db()
    assert job.state == ImportJobState.VALIDATED
    assert Merchant.objects.count() == 0 and OnboardingApplication.objects.count() == 0


def _mistype_last(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def test_every_bad_cell_of_a_row_is_reported_in_one_pass_in_the_templates_column_order(clerk, batch):
    rows = example_rows(6)
    # Excel row 3: three bad cells (changed here out of the template's order).
    rows[1]["settlement_account_number"] = "6222-ABC"
    rows[1]["contact_phone"] = "12345"
    rows[1]["licence_no"] = _mistype_last(rows[1]["licence_no"])
    rows[3]["short_name"] = ""  # Excel row 5: one bad cell

    job = batch.create(rows)

    assert job.state == ImportJobState.VALIDATED
    assert (job.valid_rows, job.invalid_rows, job.duplicate_rows) == (4, 2, 0)
    report = problems(job)
    assert sorted(report) == [3, 5]
    assert [label for label, _reason, _kind in report[3]] == [
        "统一社会信用代码 Licence no. (USCC)", "联系人手机 Contact mobile", "银行账号 Account number"]
    reasons = [reason for _label, reason, _kind in report[3]]
    assert "the check character does not match" in reasons[0]
    assert "a mainland mobile number has 11 digits" in reasons[1]
    assert "8 to 30 digits" in reasons[2]
    assert report[5] == [("商户简称 Short name", "“商户简称 Short name” is required", "invalid")]
    # The job's stored row outcome keeps each problem with its column.
    stored = job.rows.get(row_number=3)
    assert stored.outcome == RowOutcome.INVALID
    assert [(e["column"], e["kind"]) for e in stored.errors] == [
        ("licence_no", "invalid"), ("contact_phone", "invalid"), ("settlement_account_number", "invalid")]

    assert_confirm_refused_writing_nothing(job, clerk, invalid_rows=2)


def test_a_duplicate_is_reported_beside_the_rows_other_problems(clerk, batch):
    rows = example_rows(4)
    merchant_onboard_draft(actor=clerk, data=record(licence_no=rows[2]["licence_no"]))
    existing = Merchant.objects.get()
    rows[2]["contact_phone"] = "12345"  # Excel row 4: already onboarded, and a bad mobile number
    rows[3]["legal_person_id_valid_from"] = "someday"  # Excel row 5: its licence is compared though the row is bad
    rows[3]["licence_no"] = rows[1]["licence_no"]

    job = batch.create(rows)

    report = problems(job)
    assert report[4] == [
        ("统一社会信用代码 Licence no. (USCC)",
         f"already onboarded: merchant {existing.merchant_no} has this licence number", "duplicate"),
        ("联系人手机 Contact mobile", "“联系人手机 Contact mobile”: a mainland mobile number has 11 digits starting with "
                                     "13–19", "invalid")]
    assert [(label, kind) for label, _reason, kind in report[5]] == [
        ("统一社会信用代码 Licence no. (USCC)", "duplicate"), ("证件起始日 ID valid from", "invalid")]
    assert report[5][0][1] == "same licence number as row 3"
    assert (job.invalid_rows, job.duplicate_rows) == (2, 2)


def test_a_cell_excel_has_damaged_is_reported_once(clerk, batch):
    rows = example_rows(2)
    rows[0]["settlement_account_number"] = 6222020200112233445.0  # a number cell: Excel kept 15 digits of it
    rows[0]["mcc"] = "58"

    job = batch.create(rows)

    report = problems(job)
    assert [label for label, _reason, _kind in report[2]] == ["MCC码 MCC", "银行账号 Account number"]
    assert "15 significant digits" in report[2][1][1]  # not also "is required": the cell is there, unreadable


def test_rows_that_became_invalid_since_the_dry_run_make_the_import_write_nothing(clerk, batch):
    rows = example_rows(8)
    job = batch.create(rows)
    assert job.invalid_rows == 0
    # Meanwhile someone onboards the merchant of row 7 by hand.
    merchant_onboard_draft(actor=clerk, data=record(licence_no=rows[5]["licence_no"]))

    job = batch.confirm(job)

    assert job.state == ImportJobState.FAILED
    assert "nothing was imported" in job.error
    assert Merchant.objects.count() == 1  # only the hand-made one
    assert list(problems(job)) == [7]
    assert problems(job)[7][0][2] == "duplicate" and "already onboarded" in problems(job)[7][0][1]
    assert job.rows.filter(outcome=RowOutcome.VALID).count() == 7
    failed = AuditLog.objects.get(action="merchants.batch.failed", target_id=str(job.pk))
    assert failed.data["invalid"] == 1 and failed.data["imported"] == 0


def test_ticking_import_only_the_valid_rows_imports_just_those(clerk, batch):
    job = batch.create(_bad_rows())

    job = batch.confirm(job, valid_only=True)

    assert job.state == ImportJobState.DONE
    assert job.valid_only and job.imported_rows == 56
    assert Merchant.objects.count() == 56
    skipped = job.rows.filter(outcome=RowOutcome.SKIPPED)
    assert sorted(skipped.values_list("row_number", flat=True)) == [5, 17, 42, 52]
    assert not skipped.filter(merchant__isnull=False).exists()
    audit = AuditLog.objects.get(action="merchants.batch.imported", target_id=str(job.pk))
    assert audit.data["valid_only"] is True and audit.data["skipped"] == 4 and audit.data["imported"] == 56


def test_duplicates_within_the_file_and_against_onboarded_merchants_are_reported(clerk, batch):
    rows = example_rows(12)
    merchant_onboard_draft(actor=clerk, data=record(licence_no=rows[1]["licence_no"]))
    existing = Merchant.objects.get()
    rows[6]["licence_no"] = rows[4]["licence_no"].lower()  # same licence, typed differently
    rows[10]["ref"] = rows[2]["ref"]
    micro = [i for i, row in enumerate(rows) if row["subject_type"] == "micro"]
    assert micro == [9]
    rows.append({**rows[9], "ref": "R999", "short_name": "又一家"})  # the same 小微 owner again

    job = batch.create(rows)

    report = problems(job)
    assert report[3] == [("统一社会信用代码 Licence no. (USCC)",
                          f"already onboarded: merchant {existing.merchant_no} has this licence number", "duplicate")]
    assert report[8] == [("统一社会信用代码 Licence no. (USCC)", "same licence number as row 6", "duplicate")]
    assert report[12][0][:1] == ("参考号 Ref",) and "also used by row 4" in report[12][0][1]
    assert report[14] == [("法人证件号 ID number", "same 小微 owner ID number as row 11", "duplicate")]
    assert job.duplicate_rows == 3 and job.invalid_rows == 4


def test_documents_in_the_zip_are_attached_to_their_rows(clerk, batch):
    rows = example_rows(5)
    content = documents_zip(rows)
    job = batch.create(rows, documents=zip_upload(content))
    assert job.rows.get(row_number=2).documents == ["bank_card", "id_back", "id_front", "licence", "store_front",
                                                    "store_inside"]

    job = batch.confirm(job)

    assert job.state == ImportJobState.DONE
    assert job.documents_attached == Document.objects.count() == 6 * 4 + 7  # R005 also has a website
    merchant = job.rows.get(row_number=6).merchant
    assert set(merchant.documents.values_list("doc_type", flat=True)) == {
        "bank_card", "id_back", "id_front", "licence", "store_front", "store_inside", "site_screenshot"}
    document = merchant.documents.get(doc_type="licence")
    assert document.content_type == "image/png" and len(document.sha256) == 64
    assert AuditLog.objects.filter(action="merchants.document.added").count() == job.documents_attached


def test_bad_files_in_the_zip_are_reported_on_their_rows(clerk, batch):
    import io
    import zipfile

    rows = example_rows(3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(documents_zip(rows))) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("R002/passport.png", source.read("R002/id_front.png"))
        target.writestr("R003/licence.jpg", b"GIF89a not a picture we accept")
        target.writestr("R404/licence.png", source.read("R001/licence.png"))
        target.writestr("stray.png", source.read("R001/licence.png"))

    job = batch.create(rows, documents=zip_upload(buffer.getvalue()))

    report = problems(job)
    assert sorted(report) == [3, 4]
    assert report[3][0][0] == "证件照片 Documents (ZIP)" and "“passport” is not a document type" in report[3][0][1]
    assert "R003/licence.jpg: the content is not a JPEG, PNG or PDF file" == report[4][0][1]
    assert any("folder “r404” matches no row" in warning for warning in job.warnings)
    assert any("stray.png is not inside a <ref>/ folder" in warning for warning in job.warnings)


def test_bulk_submit_submits_complete_drafts_and_refuses_the_others_with_their_reason(clerk, batch):
    rows = example_rows(4)
    content = documents_zip(rows, skip={"R002": {"bank_card", "licence"}})
    job = batch.create(rows, documents=zip_upload(content))
    job = batch.confirm(job)

    results = services.import_job_bulk_submit(job_id=job.pk, actor=clerk)

    outcome = {row.row_number: (row.submit_outcome, row.submit_message) for row in results}
    assert outcome == {2: ("submitted", ""), 3: ("refused", "documents missing: bank_card, licence"),
                       4: ("submitted", ""), 5: ("submitted", "")}
    states = dict(job.rows.values_list("row_number", "application__state"))
    assert states == {2: "submitted", 3: "draft", 4: "submitted", 5: "submitted"}
    audit = AuditLog.objects.get(action="merchants.batch.bulk_submitted")
    assert audit.data == {"selected": 4, "submitted": 3, "refused": 1, "all_drafts": True}
    # "All drafts" again only picks what is still a draft; chosen rows can be named.
    again = services.import_job_bulk_submit(job_id=job.pk, actor=clerk)
    assert [row.row_number for row in again] == [3]
    # A submitted row chosen again keeps its result: it went through, and a refusal would hide that.
    chosen = services.import_job_bulk_submit(job_id=job.pk, actor=clerk, row_ids=[job.rows.get(row_number=2).pk])
    assert (chosen[0].submit_outcome, chosen[0].submit_message) == ("submitted", "")
    assert job.rows.get(row_number=2).submit_outcome == "submitted"
    last = AuditLog.objects.filter(action="merchants.batch.bulk_submitted").latest("id")
    assert last.data == {"selected": 1, "submitted": 0, "refused": 0, "all_drafts": False, "already_submitted": 1}


def test_the_job_moves_through_its_states_with_progress_counters(clerk, django_capture_on_commit_callbacks, batch):
    rows = example_rows(60)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = services.import_job_create(actor=clerk, sheet=upload(rows))
        queued = ImportJob.objects.get(pk=job.pk)
        assert queued.state == ImportJobState.QUEUED and queued.processed_rows == 0
    assert len(callbacks) == 1  # the Celery job was enqueued on commit, and ran (eager)
    job.refresh_from_db()
    assert job.state == ImportJobState.VALIDATED and job.processed_rows == 60 and job.progress_percent == 100

    # A redelivered dry-run task finds the job validated and leaves it alone.
    assert services.import_job_validate(job_id=job.pk).state == ImportJobState.VALIDATED
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        importing = services.import_job_confirm(job_id=job.pk, actor=clerk)
    assert importing.state == ImportJobState.IMPORTING and importing.processed_rows == 0
    assert len(callbacks) == 1
    with pytest.raises(InvalidState):
        services.import_job_confirm(job_id=job.pk, actor=clerk)  # a second click changes nothing

    done = services.import_job_run(job_id=job.pk)
    assert done.state == ImportJobState.DONE and done.processed_rows == 60 and done.imported_rows == 60
    again = services.import_job_run(job_id=job.pk)  # a redelivered task
    assert again.state == ImportJobState.DONE and Merchant.objects.count() == 60
    actions = list(AuditLog.objects.filter(target_id=str(job.pk), target_type="merchants.importjob")
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["merchants.batch.uploaded", "merchants.batch.validated", "merchants.batch.confirmed",
                       "merchants.batch.imported"]


def test_a_csv_saved_by_a_chinese_excel_in_gbk_is_read(clerk, batch):
    rows = example_rows(3)
    content = sheet_bytes(rows, "csv").decode("utf-8-sig").encode("gb18030")
    job = batch.create(sheet=SimpleUploadedFile("batch.csv", content))
    assert job.sheet_format == "csv" and job.valid_rows == 3
    assert job.rows.get(row_number=2).legal_name == rows[0]["legal_name"]


@pytest.mark.parametrize(("content", "message"), [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old Excel 97–2003 (.xls) file"),
    ("商户简称 Short name,foo\n".encode(), "no header row found"),
    ("\ufeff参考号 Ref,商户全称 Legal name,商户简称 Short name\nR1,a,b\n".encode(), "lacks these template columns"),
])
def test_a_file_of_the_wrong_shape_is_refused_at_upload(clerk, content, message, batch):
    with pytest.raises(InvalidRequest) as refused:
        services.import_job_create(actor=clerk, sheet=SimpleUploadedFile("batch.csv", content))
    assert refused.value.param == "sheet" and message in refused.value.message
    assert not ImportJob.objects.exists()


def test_the_uploaded_files_are_kept_encrypted(clerk, batch):
    rows = example_rows(2)
    job = batch.create(rows, documents=zip_upload(documents_zip(rows)))
    with job.sheet.open("rb") as handle:
        stored = handle.read()
    assert stored.startswith(b"gAAAAA")  # a Fernet token, not the workbook
    assert rows[0]["legal_person_id_number"].encode() not in stored
    assert job.documents.name.endswith(".zip.enc")


def test_only_clerks_may_upload(staff_member):
    risk = staff_member("risk_officer")
    from aggpay.errors import Forbidden

    with pytest.raises(Forbidden):
        services.import_job_create(actor=risk, sheet=upload(example_rows(1)))
    assert not ImportRow.objects.exists()


def _damage(content: bytes, member: str) -> bytes:
    """The ZIP with one byte of ``member``'s data flipped (its CRC no longer matches)."""
    import zipfile as zf

    with zf.ZipFile(io.BytesIO(content)) as archive:
        info = archive.getinfo(member)
    buffer = bytearray(content)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    buffer[start + 40] ^= 0xFF
    return bytes(buffer)


def _stored_zip(rows) -> bytes:
    import zipfile as zf

    out = io.BytesIO()
    with zf.ZipFile(io.BytesIO(documents_zip(rows))) as source, zf.ZipFile(out, "w", zf.ZIP_STORED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    return out.getvalue()


def test_a_damaged_picture_is_reported_by_the_dry_run(batch):
    rows = example_rows(2)
    job = batch.create(rows, documents=zip_upload(_damage(_stored_zip(rows), "R002/licence.png")))
    assert problems(job) == {3: [("证件照片 Documents (ZIP)",
                                  "R002/licence.png: the file is damaged and cannot be unpacked", "invalid")]}


def test_a_picture_damaged_after_the_dry_run_is_caught_when_the_import_re_validates(batch):
    from merchants.batch.storage import store_encrypted

    rows = example_rows(3)
    job = batch.create(rows, documents=zip_upload(_stored_zip(rows)))
    assert job.invalid_rows == 0
    store_encrypted(job.documents, name="damaged.zip", content=_damage(_stored_zip(rows), "R003/licence.png"))
    job.save()

    job = batch.confirm(job)

    assert job.state == ImportJobState.FAILED and "nothing was imported" in job.error
    assert problems(job) == {4: [("证件照片 Documents (ZIP)",
                                  "R003/licence.png: the file is damaged and cannot be unpacked", "invalid")]}
    assert Merchant.objects.count() == 0 and Document.objects.count() == 0


def test_a_row_that_fails_unexpectedly_rolls_the_whole_import_back(batch, settings, tmp_path, caplog):
    settings.MEDIA_ROOT = tmp_path
    rows = example_rows(3)
    job = batch.create(rows, documents=zip_upload(documents_zip(rows)))
    assert job.invalid_rows == 0
    # The documents folder cannot be created (a disk or deployment fault): the first picture fails to save.
    (tmp_path / "documents").write_text("not a folder")

    job = batch.confirm(job)

    assert job.state == ImportJobState.FAILED
    assert job.error.startswith("row 2 hit an unexpected error (NotADirectoryError), so nothing was written")
    assert Merchant.objects.count() == 0 and OnboardingApplication.objects.count() == 0
    assert job.rows.filter(outcome=RowOutcome.VALID).count() == 3  # the report still says what was valid
    assert any(record.getMessage().startswith(f"batch {job.pk} row 2:") for record in caplog.records)


def test_dates_written_with_dashes_import_and_a_bad_branch_code_is_named_in_the_report(clerk, batch):
    rows = example_rows(3)
    rows[0]["licence_valid_from"], rows[0]["legal_person_id_valid_from"] = "2018-1-2", "2025-9-1"
    rows[1]["settlement_bank_branch_code"] = "10233010000"  # 11 digits
    rows[2]["legal_person_id_valid_from"] = "2025-9/1"

    report = problems(batch.create(rows))

    assert 2 not in report
    assert report[3] == [("联行号 Branch code (CNAPS)",
                          "“联行号 Branch code (CNAPS)”: a branch code (CNAPS, 联行号) has 12 digits", "invalid")]
    assert [label for label, _reason, _kind in report[4]] == ["证件起始日 ID valid from"]

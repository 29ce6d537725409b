"""Batch onboarding jobs (批量进件, issue 4): upload → dry run → confirm → import → bulk submit, and exports.

* ``import_job_create`` keeps the uploaded files (encrypted, in MEDIA_ROOT) and starts the dry run — in the request
  for small files, as a Celery job (``delay_on_commit``) past ``AGGPAY_BATCH_ASYNC_ROWS`` rows.
* ``import_job_validate`` runs the dry run: every row through ``MerchantRecordResource`` without writing, then one
  ``ImportRow`` per sheet row with its problems.
* ``import_job_confirm`` + ``import_job_run`` import for real, re-validating every row (the database may have
  changed since the dry run): all-or-nothing in one transaction (design §5 rule 12), or only the valid rows when
  the clerk ticked that. The job's ``done`` transition commits in the same transaction as the drafts.
* ``import_job_bulk_submit`` sends the batch's drafts to risk review through ``application_submit``, one by one,
  collecting each refusal's reason. ``import_job_bulk_submit_start`` is what the page calls: past
  ``AGGPAY_BATCH_ASYNC_ROWS`` drafts it queues ``import_job_bulk_submit_run`` as a Celery job (280 drafts took
  9.4 s in the request, 5,000 would time out partway) whose progress the batch page polls.

Each step is audited with its counts. A duplicate Celery delivery is harmless: every step starts and ends with a
transition under the job's row lock, and a pass that finds the job already moved on rolls itself back.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import tablib
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import audit_log
from aggpay.errors import ApplicationError, InvalidRequest, InvalidState, NotFound
from aggpay.permissions import require_perm
from merchants.batch import export
from merchants.batch.columns import COLUMNS_BY_KEY
from merchants.batch.documents import DocumentsZip
from merchants.batch.progress import ProgressReporter
from merchants.batch.reader import read_sheet, sheet_format
from merchants.batch.storage import read_encrypted, sha256, store_encrypted
from merchants.models import ApplicationState, ImportJob, ImportJobState, ImportRow, RowOutcome, SubmitOutcome
from merchants.models.batch import SubmitJobState
from merchants.resources import (
    ROW_NUMBER,
    ImportRowExportResource,
    MerchantExportResource,
    MerchantRecordResource,
    SheetRow,
)
from merchants.services.onboarding import application_submit

logger = logging.getLogger(__name__)
MB = 1024 * 1024


def async_threshold() -> int:
    """Files with more rows than this run as Celery jobs (issue 4: "large files run as a Celery job")."""
    return int(getattr(settings, "AGGPAY_BATCH_ASYNC_ROWS", 50))


def max_rows() -> int:
    return int(getattr(settings, "AGGPAY_BATCH_MAX_ROWS", 5000))


def max_sheet_bytes() -> int:
    return int(getattr(settings, "AGGPAY_BATCH_MAX_SHEET_BYTES", 10 * MB))


def max_zip_bytes() -> int:
    return int(getattr(settings, "AGGPAY_BATCH_MAX_ZIP_BYTES", 200 * MB))


def _read_upload(upload, *, limit: int, what: str, param: str) -> bytes:
    size = upload.size or 0
    if not size:
        raise InvalidRequest(f"the {what} is empty", param=param)
    if size > limit:
        raise InvalidRequest(f"the {what} is {size / MB:.1f} MB; the limit is {limit // MB} MB", param=param)
    upload.seek(0)
    return b"".join(upload.chunks())


def _locked(job_id: int) -> ImportJob:
    try:
        return ImportJob.objects.select_for_update().get(pk=job_id)
    except ImportJob.DoesNotExist:
        raise NotFound(f"no batch {job_id}")


def _counts(job: ImportJob) -> dict:
    return {"rows": job.total_rows, "valid": job.valid_rows, "invalid": job.invalid_rows,
            "duplicates": job.duplicate_rows, "imported": job.imported_rows, "documents": job.documents_attached}


# --- upload ------------------------------------------------------------------------------------------------------


def import_job_create(*, actor, sheet, documents=None) -> ImportJob:
    """Keep the uploaded sheet (and documents ZIP) and start the dry run. Shape problems are refused right here."""
    require_perm(actor, "merchants.add_merchant")
    content = _read_upload(sheet, limit=max_sheet_bytes(), what="sheet", param="sheet")
    fmt = sheet_format(sheet.name or "", content)
    parsed = read_sheet(content, fmt, max_rows=max_rows())
    zip_content, zip_files = None, 0
    if documents is not None:
        zip_content = _read_upload(documents, limit=max_zip_bytes(), what="documents ZIP", param="documents")
        index = DocumentsZip.from_bytes(zip_content)
        zip_files = sum(len(files) for files in index.by_ref.values())
    digest = sha256(content)
    job = ImportJob(created_by=actor, sheet_name=os.path.basename(sheet.name or f"batch.{fmt}")[:255],
                    sheet_format=fmt, sheet_sha256=digest, total_rows=len(parsed.rows),
                    run_async=len(parsed.rows) > async_threshold(),
                    documents_name=os.path.basename(documents.name or "documents.zip")[:255] if documents else "")
    with transaction.atomic():
        store_encrypted(job.sheet, name=f"batch-{digest[:16]}.{fmt}", content=content)
        if zip_content is not None:
            store_encrypted(job.documents, name=f"batch-{digest[:16]}-documents.zip", content=zip_content)
        job.save()
        audit_log(actor=actor, action="merchants.batch.uploaded", target=job,
                  data={"sheet": job.sheet_name, "format": fmt, "rows": job.total_rows, "sha256": digest,
                        "documents": job.documents_name or None, "document_files": zip_files,
                        "run_async": job.run_async})
        if job.run_async:
            from merchants import tasks_batch

            tasks_batch.validate_import_job.delay_on_commit(job.pk)
    if not job.run_async:
        import_job_validate(job_id=job.pk)
    return ImportJob.objects.get(pk=job.pk)


# --- one pass over the sheet -------------------------------------------------------------------------------------


@dataclass
class PassResult:
    rows: list[SheetRow]
    crashed: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> list[SheetRow]:
        return [row for row in self.rows if row.errors]


def _run_pass(job: ImportJob, *, dry_run: bool, actor=None, valid_only: bool = False) -> PassResult:
    sheet = read_sheet(read_encrypted(job.sheet), job.sheet_format, max_rows=max(job.total_rows, max_rows()))
    documents = DocumentsZip.from_bytes(read_encrypted(job.documents)) if job.documents else None
    dataset = tablib.Dataset(headers=[ROW_NUMBER, *(COLUMNS_BY_KEY[key].label for key in sheet.columns)])
    for number, values in sheet.rows:
        dataset.append([number, *(values[key] for key in sheet.columns)])
    with ProgressReporter(job_id=job.pk) as progress:
        resource = MerchantRecordResource(actor=actor, documents=documents, progress=progress)
        resource.import_data(dataset, dry_run=dry_run, use_transactions=True, raise_errors=False,
                             rollback_on_validation_errors=not valid_only)
        progress(resource.processed, force=True)
    rows = []
    for number, _values in sheet.rows:
        row = resource.rows.get(number)
        if row is None:  # the row raised before it could be checked
            row = SheetRow(number)
            row.add_error(None, "this row could not be read")
        rows.append(row)
    warnings = list(sheet.warnings)
    if documents is not None:
        warnings += documents.warnings(row.value("ref") for row in rows)
    return PassResult(rows=rows, crashed=resource.crashed, warnings=warnings)


def _summary(row: SheetRow) -> dict:
    def cut(key: str, length: int) -> str:
        value = row.value(key)
        return str(value)[:length] if value is not None else ""

    return {"ref": cut("ref", 64), "subject_type": cut("subject_type", 24), "legal_name": cut("legal_name", 128),
            "short_name": cut("short_name", 64), "licence_no": row.normalised_licence or cut("licence_no", 32),
            "errors": row.errors, "documents": [document.doc_type for document in row.documents]}


def _write_rows(job: ImportJob, rows: list[SheetRow], *, outcome_for, link_drafts: bool = False) -> None:
    """Create or refresh the job's ImportRow records from a pass (row numbers are stable: the file is ours).

    ``link_drafts``: the pass's drafts were committed (not rolled back), so the rows may point at them.
    """
    existing = {row.row_number: row for row in job.rows.all()}
    create, update = [], []
    for sheet_row in rows:
        record = existing.get(sheet_row.row_number)
        if record is None:
            record = ImportRow(job=job, row_number=sheet_row.row_number)
            create.append(record)
        else:
            update.append(record)
        for key, value in _summary(sheet_row).items():
            setattr(record, key, value)
        record.outcome = outcome_for(sheet_row)
        application = sheet_row.application if link_drafts else None
        if application is not None:
            record.application, record.merchant_id = application, application.merchant_id
    ImportRow.objects.bulk_create(create, batch_size=500)
    # One UPDATE per row: bulk_update's CASE over hundreds of rows costs more to build than the round trips.
    for record in update:
        record.save(update_fields=["ref", "subject_type", "legal_name", "short_name", "licence_no", "errors",
                                   "documents", "outcome", "application", "merchant"])


def _fail(job_id: int, message: str) -> ImportJob:
    with transaction.atomic():
        job = _locked(job_id)
        if can_proceed(job.fail):
            job.fail()
            job.error = message
            job.finished_at = timezone.now()
            job.save()
            audit_log(actor=job.confirmed_by or job.created_by, action="merchants.batch.failed", target=job,
                      reason=message, data=_counts(job))
    return job


def _crash_message(result: PassResult) -> str:
    number, error = result.crashed[0]
    return (f"row {number} hit an unexpected error ({type(error).__name__}), so nothing was written; "
            "the details are in the server log")


# --- dry run -----------------------------------------------------------------------------------------------------


def import_job_validate(*, job_id: int) -> ImportJob:
    """The dry run: check every row, write nothing but the job's row report."""
    with transaction.atomic():
        job = _locked(job_id)
        if not can_proceed(job.start_validation):
            return job  # a duplicate delivery of a job that has moved on
        job.start_validation()
        job.processed_rows = 0
        job.save()
    try:
        result = _run_pass(job, dry_run=True)
    except ApplicationError as exc:
        return _fail(job_id, exc.message)
    except Exception:
        logger.exception("batch %s: dry run failed", job_id)
        return _fail(job_id, "the file could not be checked because of an unexpected error; details are in the "
                             "server log")
    if result.crashed:
        for number, error in result.crashed:
            logger.error("batch %s row %s: %r", job_id, number, error)
        return _fail(job_id, _crash_message(result))
    with transaction.atomic():
        job = _locked(job_id)
        if job.state != ImportJobState.VALIDATING:
            return job
        _write_rows(job, result.rows, outcome_for=lambda row: RowOutcome.INVALID if row.errors else RowOutcome.VALID)
        job.warnings = result.warnings
        job.total_rows = job.processed_rows = len(result.rows)
        job.invalid_rows = len(result.invalid)
        job.valid_rows = job.total_rows - job.invalid_rows
        job.duplicate_rows = sum(1 for row in result.rows if any(e["kind"] == "duplicate" for e in row.errors))
        job.validated_at = timezone.now()
        job.finish_validation()
        job.save()
        audit_log(actor=job.created_by, action="merchants.batch.validated", target=job, data=_counts(job))
    return job


# --- confirm and import ------------------------------------------------------------------------------------------


def import_job_confirm(*, job_id: int, actor, valid_only: bool = False) -> ImportJob:
    """The clerk confirms a validated batch: all-or-nothing, or (ticked) only the valid rows."""
    require_perm(actor, "merchants.add_merchant")
    with transaction.atomic():
        job = _locked(job_id)
        if not can_proceed(job.start_import):
            raise InvalidState(f"the batch is {job.get_state_display().lower()}; only a validated batch can be "
                               "imported")
        if job.valid_rows == 0:
            raise InvalidRequest("the batch has no valid row to import", param="valid_only")
        if job.invalid_rows and not valid_only:
            raise InvalidRequest(
                f"{job.invalid_rows} row(s) are invalid, and an all-or-nothing import would write nothing: correct "
                "the file and upload it again, or tick “import only the valid rows”", param="valid_only")
        job.start_import()
        job.valid_only = valid_only
        job.confirmed_by = actor
        job.confirmed_at = timezone.now()
        job.processed_rows = 0
        job.save()
        audit_log(actor=actor, action="merchants.batch.confirmed", target=job,
                  data={"valid_only": valid_only, **_counts(job)})
        if job.run_async:
            from merchants import tasks_batch

            tasks_batch.run_import_job.delay_on_commit(job.pk)
    if not job.run_async:
        import_job_run(job_id=job.pk)
    return ImportJob.objects.get(pk=job.pk)


class _Superseded(Exception):
    """Another run of the same job committed first (a duplicate delivery): this run must roll back."""


class _Crashed(Exception):
    """A row raised something other than a row problem: the whole run rolls back and the job fails."""

    def __init__(self, result: PassResult):
        super().__init__("a row crashed")
        self.result = result


def import_job_run(*, job_id: int) -> ImportJob:
    """Import a confirmed batch in one transaction, re-validating every row."""
    job = ImportJob.objects.select_related("confirmed_by").get(pk=job_id)
    if job.state != ImportJobState.IMPORTING:
        return job
    actor = job.confirmed_by
    try:
        with transaction.atomic():
            before = transaction.savepoint()
            result = _run_pass(job, dry_run=False, actor=actor, valid_only=job.valid_only)
            if result.crashed:
                raise _Crashed(result)  # nothing of this run may stay; the failure is recorded below
            all_or_nothing_failed = bool(result.invalid) and not job.valid_only
            if all_or_nothing_failed:
                # import-export has rolled the rows back already (rollback_on_validation_errors); make it certain.
                transaction.savepoint_rollback(before)
            locked = _locked(job_id)
            if locked.state != ImportJobState.IMPORTING:
                raise _Superseded
            if all_or_nothing_failed:
                _write_rows(locked, result.rows,
                            outcome_for=lambda row: RowOutcome.INVALID if row.errors else RowOutcome.VALID)
            else:
                _write_rows(locked, result.rows, link_drafts=True,
                            outcome_for=lambda row: RowOutcome.SKIPPED if row.errors else RowOutcome.IMPORTED)
            imported = [row for row in result.rows if not row.errors]
            locked.processed_rows = len(result.rows)
            locked.invalid_rows = len(result.invalid)
            locked.valid_rows = len(result.rows) - len(result.invalid)
            locked.duplicate_rows = sum(1 for row in result.rows if any(e["kind"] == "duplicate" for e in row.errors))
            locked.warnings = result.warnings
            locked.finished_at = timezone.now()
            if all_or_nothing_failed:
                locked.imported_rows = locked.documents_attached = 0
                locked.error = (f"{len(result.invalid)} row(s) were invalid when the import ran (the data changed "
                                "since the dry run), so nothing was imported. The rows below say why.")
                locked.fail()
                action = "merchants.batch.failed"
            else:
                locked.imported_rows = len(imported)
                locked.documents_attached = sum(len(row.documents) for row in imported)
                locked.finish_import()
                action = "merchants.batch.imported"
            locked.save()
            audit_log(actor=actor, action=action, target=locked, reason=locked.error,
                      data={"valid_only": locked.valid_only, **_counts(locked),
                            "skipped": len(result.invalid) if locked.valid_only else 0})
    except _Superseded:
        return ImportJob.objects.get(pk=job_id)
    except _Crashed as crash:
        for number, error in crash.result.crashed:
            logger.error("batch %s row %s: %r", job_id, number, error)
        return _fail(job_id, _crash_message(crash.result))
    except Exception:
        logger.exception("batch %s: import failed", job_id)
        return _fail(job_id, "the import stopped on an unexpected error, so nothing was written; details are in "
                             "the server log")
    return ImportJob.objects.get(pk=job_id)


# --- after the import --------------------------------------------------------------------------------------------


def _chosen_rows(job: ImportJob, row_ids: list[int] | None) -> list[int]:
    """The batch's rows to submit (``row_ids`` = the chosen rows; None = every draft of the batch), by row order."""
    rows = job.rows.filter(application__isnull=False)
    if row_ids is None:
        rows = rows.filter(application__state=ApplicationState.DRAFT)
    else:
        rows = rows.filter(pk__in=row_ids)
    chosen = list(rows.order_by("row_number").values_list("pk", flat=True))
    if not chosen:
        raise InvalidRequest("no draft of this batch was selected", param="rows")
    return chosen


def _refuse_while_submitting(job: ImportJob) -> None:
    if job.is_submitting:
        raise InvalidState(f"a bulk submit of this batch is already running ({job.submit_processed} of "
                           f"{job.submit_total} drafts); wait for it to finish")


def _submit_one(row_pk: int, *, actor, now) -> tuple[ImportRow, bool]:
    """Submit one row's draft in its own transaction; (the row, whether it had been submitted already)."""
    with transaction.atomic():
        # Locked and read again: a row submitted meanwhile — by this clerk pressing again, or by another clerk
        # submitting the same rows at the same moment — keeps its result. Submitting it again could only be
        # refused ("the application is submitted"), and that refusal would hide that it went through.
        row = ImportRow.objects.select_for_update(of=("self",)).select_related("application", "merchant").get(pk=row_pk)
        if row.submit_outcome == SubmitOutcome.SUBMITTED:
            return row, True
        try:
            with transaction.atomic():  # a savepoint: whatever the submission raised, the row's result is written
                application_submit(application_id=row.application_id, actor=actor)
        except ApplicationError as exc:
            row.submit_outcome, row.submit_message = SubmitOutcome.REFUSED, exc.message
        except Exception:
            # One draft's unexpected error must not stop the others (nor leave a job running forever).
            logger.exception("batch %s row %s: bulk submit failed", row.job_id, row.row_number)
            row.submit_outcome = SubmitOutcome.REFUSED
            row.submit_message = "not submitted because of an unexpected error; details are in the server log"
        else:
            row.submit_outcome, row.submit_message = SubmitOutcome.SUBMITTED, ""
        row.submit_at = now
        row.save(update_fields=["submit_outcome", "submit_message", "submit_at"])
        return row, False


def _submit_audit_data(done: list[ImportRow], already: int, *, all_drafts: bool) -> dict:
    submitted = sum(1 for row in done if row.submit_outcome == SubmitOutcome.SUBMITTED) - already
    data = {"selected": len(done), "submitted": submitted, "refused": len(done) - submitted - already,
            "all_drafts": all_drafts}
    if already:
        data["already_submitted"] = already
    return data


def _rows_to_submit(*, job_id: int, actor, row_ids: list[int] | None) -> list[int]:
    """The clerk may submit, the batch exists and no bulk submit of it is running: the rows chosen (_chosen_rows)."""
    require_perm(actor, "merchants.change_merchant")
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no batch {job_id}")
    _refuse_while_submitting(job)
    return _chosen_rows(job, row_ids)


def import_job_bulk_submit(*, job_id: int, actor, row_ids: list[int] | None = None) -> list[ImportRow]:
    """Submit the batch's drafts to risk review now, in the caller (``row_ids`` = the chosen rows; None = every
    draft of the batch). ``import_job_bulk_submit_start`` sends larger selections to a Celery job instead.

    Each application is its own transition: a refusal (missing documents, say) is recorded with its reason on the
    row and does not stop the others.
    """
    chosen = _rows_to_submit(job_id=job_id, actor=actor, row_ids=row_ids)
    now = timezone.now()
    done, already = [], 0
    for row_pk in chosen:
        row, was_submitted = _submit_one(row_pk, actor=actor, now=now)
        already += was_submitted
        done.append(row)
    with transaction.atomic():
        locked = _locked(job_id)
        locked.last_submit_at = now
        locked.submit_error = ""  # a stopped job's note is about its own rows, no longer the latest submit's
        locked.save(update_fields=["last_submit_at", "submit_error", "updated_at"])
        audit_log(actor=actor, action="merchants.batch.bulk_submitted", target=locked,
                  data=_submit_audit_data(done, already, all_drafts=row_ids is None))
    return done


def import_job_bulk_submit_start(*, job_id: int, actor, row_ids: list[int] | None = None) -> tuple[ImportJob, bool]:
    """What the batch page's "Submit" buttons call: up to ``async_threshold()`` drafts are submitted in the request
    (``import_job_bulk_submit``); more are queued as a Celery job (``import_job_bulk_submit_run``), whose progress
    and result the batch page shows. Checked and audited as the clerk's action here, and each submission again in
    the job (``application_submit`` as the clerk). Returns the job and whether it was queued."""
    chosen = _rows_to_submit(job_id=job_id, actor=actor, row_ids=row_ids)
    if len(chosen) <= async_threshold():
        import_job_bulk_submit(job_id=job_id, actor=actor, row_ids=chosen if row_ids is not None else None)
        return ImportJob.objects.get(pk=job_id), False
    with transaction.atomic():
        job = _locked(job_id)
        _refuse_while_submitting(job)  # another clerk's job queued since the check above
        job.queue_submit()
        job.submit_by = actor
        job.submit_row_ids = chosen
        job.submit_total, job.submit_processed, job.submit_error = len(chosen), 0, ""
        job.last_submit_at = timezone.now()  # the rows the job submits carry this time (the result page's rows)
        job.save()
        audit_log(actor=actor, action="merchants.batch.bulk_submit_queued", target=job,
                  data={"selected": len(chosen), "all_drafts": row_ids is None})
        from merchants import tasks_batch

        tasks_batch.bulk_submit_import_job.delay_on_commit(job.pk)
    return ImportJob.objects.get(pk=job_id), True


def _publish_submit_progress(job_id: int, processed: int) -> None:
    # Each row commits on its own, so a plain UPDATE outside any transaction is seen by the polling page at once.
    ImportJob.objects.filter(pk=job_id).update(submit_processed=processed)


def import_job_bulk_submit_run(*, job_id: int, every_rows: int = 10, every_seconds: float = 0.5) -> ImportJob:
    """The Celery job of a large bulk submit: every chosen row through ``_submit_one`` as the clerk who pressed
    "Submit", publishing its progress, then the result audited as ``import_job_bulk_submit`` does."""
    with transaction.atomic():
        job = _locked(job_id)
        if not can_proceed(job.start_submit):
            return job  # a duplicate delivery of a job that is done
        job.start_submit()
        job.save(update_fields=["submit_state", "updated_at"])
    actor, now, chosen = job.submit_by, job.last_submit_at, list(job.submit_row_ids)
    done, already, error = [], 0, ""
    last_time = time.monotonic()
    try:
        for number, row_pk in enumerate(chosen, start=1):
            row, was_submitted = _submit_one(row_pk, actor=actor, now=now)
            already += was_submitted
            done.append(row)
            if number % every_rows == 0 or time.monotonic() - last_time >= every_seconds:
                _publish_submit_progress(job_id, number)
                last_time = time.monotonic()
    except Exception:
        # Only a lost row or the database itself gets here (_submit_one records every draft's own failure).
        logger.exception("batch %s: bulk submit stopped", job_id)
        error = (f"the bulk submit stopped after {len(done)} of {len(chosen)} drafts because of an unexpected "
                 "error; details are in the server log. Submit the remaining drafts again.")
    with transaction.atomic():
        locked = _locked(job_id)
        if locked.submit_state != SubmitJobState.RUNNING:
            return locked  # another delivery finished it
        locked.submit_processed = len(done)
        locked.submit_error = error
        locked.finish_submit()
        locked.save()
        data = _submit_audit_data(done, already, all_drafts=False)
        data.pop("all_drafts")
        audit_log(actor=actor, action="merchants.batch.bulk_submitted", target=locked, reason=error,
                  data={**data, "job": True, "total": len(chosen)})
    return locked


def import_job_export(*, job_id: int, actor, fmt: str) -> bytes:
    """The batch's rows (outcome, problems, draft) as XLSX or CSV, safe against formula injection."""
    require_perm(actor, "merchants.view_merchant")
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no batch {job_id}")
    dataset = ImportRowExportResource().export(job.rows.select_related("merchant", "application"))
    with transaction.atomic():
        audit_log(actor=actor, action="merchants.batch.exported", target=job,
                  data={"rows": len(dataset), "format": fmt})
    return export.render(dataset, fmt)


def merchants_export(*, actor, fmt: str, queryset=None) -> bytes:
    """The merchant list in the template's columns (PII masked), safe against formula injection."""
    require_perm(actor, "merchants.view_merchant")
    dataset = MerchantExportResource().export(MerchantExportResource.queryset(queryset))
    with transaction.atomic():
        audit_log(actor=actor, action="merchants.merchant.list_exported", data={"rows": len(dataset), "format": fmt})
    return export.render(dataset, fmt)

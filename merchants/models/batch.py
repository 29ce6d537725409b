"""Batch onboarding (批量进件, issue 4): an uploaded sheet becomes an import job with one row record per sheet row.

The job is the lifecycle (a django-fsm machine); the rows are the result of the latest pass over the sheet — the
dry run writes them, the confirmed import rewrites them — so a row's ``outcome`` is a result, not a state machine.
The uploaded files are kept in MEDIA_ROOT encrypted (they carry ID and account numbers: design §5 rule 10).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition


class ImportJobState(models.TextChoices):
    QUEUED = "queued", "Queued"  # uploaded; the dry run has not started
    VALIDATING = "validating", "Validating"  # dry run: every row checked, nothing written
    VALIDATED = "validated", "Validated"  # the preview is ready; the clerk confirms or uploads a corrected file
    IMPORTING = "importing", "Importing"  # confirmed: drafts are being created in one transaction
    DONE = "done", "Done"  # drafts created (every row, or only the valid ones when the clerk chose that)
    FAILED = "failed", "Failed"  # nothing was written (unreadable file, or rows invalid at confirm time)


RUNNING_STATES = (ImportJobState.QUEUED, ImportJobState.VALIDATING, ImportJobState.IMPORTING)


class SubmitJobState(models.TextChoices):
    """The bulk submit of a batch's drafts, when it runs as a Celery job (more drafts than the async threshold)."""

    NONE = "", "—"  # never run as a job (a small bulk submit runs in the request and leaves this alone)
    QUEUED = "queued", "Queued"  # the clerk pressed "Submit"; waiting for a worker
    RUNNING = "running", "Submitting"  # the drafts are being submitted one by one
    DONE = "done", "Done"  # every chosen draft was tried: submitted, or refused with its reason


SUBMIT_RUNNING_STATES = (SubmitJobState.QUEUED, SubmitJobState.RUNNING)


class SheetFormat(models.TextChoices):
    XLSX = "xlsx", "Excel (.xlsx)"
    CSV = "csv", "CSV"


class ImportJob(FSMModelMixin, models.Model):
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = FSMField(default=ImportJobState.QUEUED, choices=ImportJobState.choices, protected=True)
    sheet = models.FileField(upload_to="imports/%Y/%m/", help_text="the uploaded sheet, Fernet-encrypted")
    sheet_name = models.CharField(max_length=255, help_text="file name as uploaded")
    sheet_format = models.CharField(max_length=4, choices=SheetFormat.choices)
    sheet_sha256 = models.CharField(max_length=64)
    documents = models.FileField(upload_to="imports/%Y/%m/", blank=True,
                                 help_text="the optional documents ZIP, Fernet-encrypted")
    documents_name = models.CharField(max_length=255, blank=True)
    run_async = models.BooleanField(default=False, help_text="large file: the passes run as Celery jobs")
    valid_only = models.BooleanField(default=False, help_text="the clerk chose to import only the valid rows")
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0, help_text="progress of the running pass")
    valid_rows = models.PositiveIntegerField(default=0)
    invalid_rows = models.PositiveIntegerField(default=0, help_text="rows that cannot be imported, duplicates included")
    duplicate_rows = models.PositiveIntegerField(default=0)
    imported_rows = models.PositiveIntegerField(default=0)
    documents_attached = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True, help_text="file-level notes: ignored columns, stray ZIP entries")
    error = models.TextField(blank=True, help_text="why the job failed")
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_submit_at = models.DateTimeField(null=True, blank=True, help_text="when the latest bulk submit ran")
    submit_state = FSMField(default=SubmitJobState.NONE, choices=SubmitJobState.choices, protected=True, blank=True,
                            help_text="the latest bulk submit run as a Celery job")
    submit_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", help_text="who pressed the latest bulk submit run as a job")
    submit_row_ids = models.JSONField(default=list, blank=True,
                                      help_text="the rows that job submits, chosen when it was queued")
    submit_total = models.PositiveIntegerField(default=0)
    submit_processed = models.PositiveIntegerField(default=0, help_text="progress of the running bulk submit")
    submit_error = models.TextField(blank=True, help_text="why the bulk submit job stopped before its last row")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"batch #{self.pk} {self.sheet_name} ({self.state})"

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def is_submitting(self) -> bool:
        return self.submit_state in SUBMIT_RUNNING_STATES

    @property
    def submit_percent(self) -> int:
        if self.submit_state == SubmitJobState.DONE:
            return 100
        if not self.submit_total:
            return 0
        return min(100, self.submit_processed * 100 // self.submit_total)

    @property
    def progress_percent(self) -> int:
        if self.state in (ImportJobState.VALIDATED, ImportJobState.DONE):
            return 100
        if not self.total_rows:
            return 0
        return min(100, self.processed_rows * 100 // self.total_rows)

    # A redelivered Celery task finds the job still validating (acks_late): it may start the pass again.
    @transition(field=state, source=[ImportJobState.QUEUED, ImportJobState.VALIDATING], target=ImportJobState.VALIDATING)
    def start_validation(self) -> None:
        """The dry run begins."""

    @transition(field=state, source=ImportJobState.VALIDATING, target=ImportJobState.VALIDATED)
    def finish_validation(self) -> None:
        """Every row has been checked; the preview is ready."""

    @transition(field=state, source=ImportJobState.VALIDATED, target=ImportJobState.IMPORTING)
    def start_import(self) -> None:
        """The clerk confirmed."""

    @transition(field=state, source=ImportJobState.IMPORTING, target=ImportJobState.DONE)
    def finish_import(self) -> None:
        """The drafts exist (committed in the same transaction as this transition)."""

    @transition(field=state, source=[ImportJobState.QUEUED, ImportJobState.VALIDATING, ImportJobState.IMPORTING],
                target=ImportJobState.FAILED)
    def fail(self) -> None:
        """Nothing was written; ``error`` says why."""

    # The bulk submit job. Queued again only once the previous one is done; a redelivered task (acks_late) finds it
    # running and goes on where the rows say it stopped (a row already submitted keeps its result).
    @transition(field=submit_state, source=[SubmitJobState.NONE, SubmitJobState.DONE], target=SubmitJobState.QUEUED)
    def queue_submit(self) -> None:
        """The clerk pressed "Submit all" (or chose more drafts than the async threshold)."""

    @transition(field=submit_state, source=[SubmitJobState.QUEUED, SubmitJobState.RUNNING],
                target=SubmitJobState.RUNNING)
    def start_submit(self) -> None:
        """A worker took the job."""

    @transition(field=submit_state, source=SubmitJobState.RUNNING, target=SubmitJobState.DONE)
    def finish_submit(self) -> None:
        """Every chosen draft was tried (or the job stopped; ``submit_error`` says why)."""


class RowOutcome(models.TextChoices):
    VALID = "valid", "Valid"  # passed the dry run
    INVALID = "invalid", "Invalid"  # a field is wrong, or a duplicate
    IMPORTED = "imported", "Imported"  # a draft exists for it
    SKIPPED = "skipped", "Skipped"  # invalid at confirm time; left out because the clerk imported only valid rows


class SubmitOutcome(models.TextChoices):
    NONE = "", "—"
    SUBMITTED = "submitted", "Submitted"
    REFUSED = "refused", "Refused"


class ImportRow(models.Model):
    """One sheet row: where it is in the sheet, what was wrong with it, and the draft it became.

    Only non-PII summary fields are kept here (names and licence numbers are public business data); the row's full
    values stay in the encrypted sheet.
    """

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rows")
    row_number = models.PositiveIntegerField(help_text="the row number the clerk sees in Excel (header = row 1)")
    ref = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=RowOutcome.choices)
    errors = models.JSONField(default=list, blank=True, help_text="[{column, label, reason, kind}]")
    documents = models.JSONField(default=list, blank=True, help_text="document types found in the ZIP")
    subject_type = models.CharField(max_length=24, blank=True)
    legal_name = models.CharField(max_length=128, blank=True)
    short_name = models.CharField(max_length=64, blank=True)
    licence_no = models.CharField(max_length=32, blank=True)
    merchant = models.ForeignKey("merchants.Merchant", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    application = models.ForeignKey("merchants.OnboardingApplication", null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    submit_outcome = models.CharField(max_length=10, choices=SubmitOutcome.choices, blank=True, default="")
    submit_message = models.TextField(blank=True)
    submit_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "row_number"]
        constraints = [models.UniqueConstraint(fields=["job", "row_number"], name="uniq_import_row_number")]

    def __str__(self) -> str:
        return f"row {self.row_number} of batch #{self.job_id} ({self.outcome})"

    @property
    def is_duplicate(self) -> bool:
        return any(error.get("kind") == "duplicate" for error in self.errors or [])

"""Batch onboarding pages (批量进件) under /staff/onboarding/batch/: template, upload, preview, confirm, progress,
bulk submit and exports. Only users holding ``merchants.add_merchant`` (onboarding clerks) get here (design §5
rule 11); the views call merchants.batch.services and render what it returns.
"""

from __future__ import annotations

from collections import defaultdict

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from aggpay.errors import ApplicationError
from aggpay.roles import permission_required_403
from merchants.batch import export, services
from merchants.batch.template import template_csv, template_xlsx
from merchants.models import (
    ApplicationState,
    Contract,
    ContractState,
    Document,
    ImportJob,
    ImportJobState,
    Merchant,
    MerchantState,
)
from merchants.models.batch import SubmitOutcome
from merchants.services.record import required_documents
from merchants.workbench import CONTRACT_IN_FLIGHT_STATES, application_stage

CLERK = "merchants.add_merchant"
SAMPLES = ("batch-onboarding-10.xlsx", "batch-onboarding-10-documents.zip")
JOBS_PER_PAGE = 20


class UploadForm(forms.Form):
    sheet = forms.FileField(label="Sheet (.xlsx or .csv)",
                            widget=forms.ClearableFileInput(attrs={"accept": ".xlsx,.csv"}))
    documents = forms.FileField(label="Documents ZIP (optional)", required=False,
                                widget=forms.ClearableFileInput(attrs={"accept": ".zip"}))

    def clean_sheet(self):
        sheet = self.cleaned_data["sheet"]
        if not sheet.name.lower().endswith((".xlsx", ".csv")):
            raise forms.ValidationError("upload the filled template as .xlsx or .csv")
        return sheet

    def clean_documents(self):
        documents = self.cleaned_data.get("documents")
        if documents and not documents.name.lower().endswith(".zip"):
            raise forms.ValidationError("documents come as one .zip file")
        return documents


def _download(content: bytes, *, filename: str, fmt: str) -> HttpResponse:
    response = HttpResponse(content, content_type=export.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_http_methods(["GET", "POST"])
@permission_required_403(CLERK)
def index(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_job_create(actor=request.user, sheet=form.cleaned_data["sheet"],
                                             documents=form.cleaned_data.get("documents"))
        except ApplicationError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        else:
            return redirect("merchants_batch:job", job.pk)
    jobs = ImportJob.objects.select_related("created_by")
    return render(request, "merchants/batch/index.html", {
        "form": form,
        "page": Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page")),
        "query": "",
        "async_rows": services.async_threshold(),
        "max_rows": services.max_rows(),
    }, status=400 if form.errors else 200)


@require_safe
@permission_required_403(CLERK)
def template_download(request, fmt: str):
    content = template_xlsx() if fmt == "xlsx" else template_csv()
    return _download(content, filename=f"batch-onboarding-template.{fmt}", fmt=fmt)


@require_safe
@permission_required_403(CLERK)
def sample_download(request, name: str):
    if name not in SAMPLES:
        raise Http404("no such sample")
    path = settings.BASE_DIR / "samples" / name
    if not path.exists():
        raise Http404("the sample file is missing; run samples/make_samples.py")
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)


def _imported_rows(job: ImportJob) -> list:
    """The batch's drafts with what each still lacks before it can be submitted, and the stage each is at: a
    completed application whose merchant still has a contract in flight (WeChat waiting for the signature) reads
    "Contracting", with those contracts named. Three queries whatever the batch size."""
    rows = [row for row in job.rows.select_related("merchant", "application") if row.application_id]
    merchant_ids = [row.merchant_id for row in rows]
    have = defaultdict(set)
    for merchant_id, doc_type in Document.objects.filter(
            merchant_id__in=merchant_ids).values_list("merchant_id", "doc_type"):
        have[merchant_id].add(doc_type)
    in_flight = defaultdict(list)
    state_labels = dict(ContractState.choices)
    for merchant_id, account, state in (Contract.objects.filter(merchant_id__in=merchant_ids,
                                                                state__in=CONTRACT_IN_FLIGHT_STATES)
                                        .order_by("channel_account__name", "id")
                                        .values_list("merchant_id", "channel_account__name", "state")):
        in_flight[merchant_id].append(f"{account}: {state_labels[state].lower()}")
    stage_labels = dict(ApplicationState.choices)
    for row in rows:
        needed = required_documents(subject_type=row.merchant.subject_type, scenarios=row.merchant.scenarios)
        row.missing_documents = sorted(needed - have[row.merchant_id])
        row.is_draft = row.application.state == ApplicationState.DRAFT
        row.contracts_in_flight = in_flight[row.merchant_id]
        row.stage = application_stage(row.application.state, contracts_in_flight=bool(row.contracts_in_flight))
        row.stage_label = stage_labels[row.stage]
    return rows


def _stage_counts(rows: list) -> list[tuple[str, str, int]]:
    """(stage, label, count) of the batch's drafts in the application's order; Contracting and Completed always."""
    counts = defaultdict(int)
    for row in rows:
        counts[row.stage] += 1
    always = (ApplicationState.CONTRACTING, ApplicationState.COMPLETED)
    return [(value, label, counts[value]) for value, label in ApplicationState.choices
            if counts[value] or value in always]


def _last_submit(job: ImportJob, rows: list) -> dict | None:
    """The latest bulk submit's result from the rows already read: submitted n, not submitted m and why."""
    if job.last_submit_at is None:
        return None
    latest = [row for row in rows if row.submit_at == job.last_submit_at]
    return {"submitted": sum(1 for row in latest if row.submit_outcome == SubmitOutcome.SUBMITTED),
            "refused": [row for row in latest if row.submit_outcome == SubmitOutcome.REFUSED],
            "tried": len(latest)}


@require_safe
@permission_required_403(CLERK)
def job_detail(request, job_id: int):
    job = get_object_or_404(ImportJob.objects.select_related("created_by", "confirmed_by", "submit_by"), pk=job_id)
    rows = list(job.rows.all()) if not job.is_running else []
    problems = [
        {"row": row, "error": error}
        for row in rows for error in row.errors
    ]
    imported = _imported_rows(job) if job.state == ImportJobState.DONE else []
    invalid = [p for p in problems if p["error"]["kind"] != "duplicate"]  # every problem of each row, one line each
    return render(request, "merchants/batch/job.html", {
        "job": job,
        "problems": invalid,
        "problem_rows": len({p["row"].row_number for p in invalid}),
        "duplicates": [p for p in problems if p["error"]["kind"] == "duplicate"],
        "valid_rows": [row for row in rows if not row.errors],
        "imported": imported,
        "drafts": sum(1 for row in imported if row.is_draft),
        "stages": _stage_counts(imported),
        "last_submit": _last_submit(job, imported),
        "can_submit": request.user.has_perm("merchants.change_merchant"),
    })


def _progress_data(job: ImportJob) -> dict:
    data = {"id": job.pk, "state": job.state, "state_label": job.get_state_display(), "running": job.is_running,
            "total_rows": job.total_rows, "processed_rows": job.processed_rows, "percent": job.progress_percent,
            "valid_rows": job.valid_rows, "invalid_rows": job.invalid_rows, "imported_rows": job.imported_rows}
    if job.submit_state:  # the batch has had a bulk submit job
        data["submit"] = {"state": job.submit_state, "running": job.is_submitting, "total": job.submit_total,
                          "processed": job.submit_processed, "percent": job.submit_percent}
    return data


@require_safe
@permission_required_403(CLERK)
def progress(request, job_id: int):
    """Polled by the batch page (htmx: the progress fragment; otherwise JSON)."""
    job = get_object_or_404(ImportJob, pk=job_id)
    if not request.htmx:
        return JsonResponse(_progress_data(job))
    response = render(request, "merchants/batch/_progress.html", {"job": job})
    if not job.is_running and not job.is_submitting:
        # The pass (or the bulk submit) has ended: reload the page so the preview or the result replaces the bar.
        response["HX-Refresh"] = "true"
    return response


@require_POST
@permission_required_403(CLERK)
def confirm(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    try:
        job = services.import_job_confirm(job_id=job.pk, actor=request.user,
                                          valid_only=request.POST.get("valid_only") == "1")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if job.state == ImportJobState.DONE:
            messages.success(request, f"{job.imported_rows} draft(s) created.")
        elif job.state == ImportJobState.FAILED:
            messages.error(request, job.error)
    return redirect("merchants_batch:job", job.pk)


@require_POST
@permission_required_403(CLERK, "merchants.change_merchant")
def submit(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    row_ids = None
    if request.POST.get("all") != "1":
        # isascii: str.isdigit() is also true of "²" and other digits int() refuses (a 500 on a tampered form).
        row_ids = [int(value) for value in request.POST.getlist("rows") if value.isascii() and value.isdigit()]
        if not row_ids:
            messages.error(request, "Select the drafts to submit, or use “Submit all drafts of this batch”.")
            return redirect("merchants_batch:job", job.pk)
    try:
        job, queued = services.import_job_bulk_submit_start(job_id=job.pk, actor=request.user, row_ids=row_ids)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("merchants_batch:job", job.pk)
    if queued:
        # A background job: the batch page shows its progress, then its result (the demo runs it eagerly, so it
        # is done already).
        if job.is_submitting:
            messages.info(request, f"Submitting {job.submit_total} drafts in the background; this page shows the "
                                   "progress and then the result.")
        return redirect(f"{reverse('merchants_batch:job', args=[job.pk])}#last-submit")
    return redirect("merchants_batch:submitted", job.pk)


@require_safe
@permission_required_403(CLERK)
def submitted(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    rows = []  # while a bulk submit job runs: the rows it has tried so far
    if job.last_submit_at is not None:
        rows = list(job.rows.filter(submit_at=job.last_submit_at).select_related("merchant", "application"))
    return render(request, "merchants/batch/submitted.html", {
        "job": job, "rows": rows,
        "submitted": sum(1 for row in rows if row.submit_outcome == "submitted"),
        "refused": sum(1 for row in rows if row.submit_outcome == "refused"),
    })


@require_safe
@permission_required_403(CLERK, "merchants.view_merchant")
def export_rows(request, job_id: int, fmt: str):
    job = get_object_or_404(ImportJob, pk=job_id)
    content = services.import_job_export(job_id=job.pk, actor=request.user, fmt=fmt)
    return _download(content, filename=f"batch-{job.pk}-rows.{fmt}", fmt=fmt)


@require_safe
@permission_required_403(CLERK, "merchants.view_merchant")
def export_merchants(request, fmt: str):
    queryset = Merchant.objects.all()
    state = request.GET.get("state", "")
    if state in MerchantState.values:
        queryset = queryset.filter(state=state)
    content = services.merchants_export(actor=request.user, fmt=fmt, queryset=queryset)
    return _download(content, filename=f"merchants.{fmt}", fmt=fmt)

""""Submit all N drafts" of a batch runs as a background job past the async threshold (issue 4 "large files run as a
Celery job"), as the import's confirm does: 280 drafts took 9.4 s inside the request with no progress, and 5,000
would time out partway (found by an onboarding clerk's trial). The job submits each draft through
``application_submit`` as the clerk who pressed the button, records a draft it cannot submit with the reason and
goes on, publishes its progress to the batch page, and leaves the result — submitted n, not submitted m and why —
on the page. Fewer drafts are still submitted in the request."""

from __future__ import annotations

import pytest
from django.db.models.signals import post_save

from aggpay.models import AuditLog
from merchants import tasks_batch
from merchants.batch import services
from merchants.batch.examples import documents_zip, example_rows
from merchants.models import ApplicationState, ImportJob, ImportRow, OnboardingApplication
from tests.merchants.test_batch_pages import INDEX, post_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk_client(client, staff_member):
    client.force_login(staff_member("onboarding_clerk", username="lin.clerk"))
    return client


@pytest.fixture
def five_drafts(clerk_client, settings):
    """A confirmed batch of five drafts, one without its ID card's back (row 4), and a threshold of three drafts
    for running the bulk submit as a job (the real one is 50)."""
    rows = example_rows(5)
    post_upload(clerk_client, rows, documents=documents_zip(rows, skip={"R003": {"id_back"}}))
    job = ImportJob.objects.get()
    clerk_client.post(f"{INDEX}{job.pk}/confirm/")
    assert OnboardingApplication.objects.filter(state=ApplicationState.DRAFT).count() == 5
    settings.AGGPAY_BATCH_ASYNC_ROWS = 3  # the file was small; its five drafts are more than three
    return ImportJob.objects.get(pk=job.pk)


@pytest.fixture
def lin_clerk(clerk_client, django_user_model):
    """The clerk logged in on ``clerk_client``."""
    return django_user_model.objects.get(username="lin.clerk")


def submitted_count() -> int:
    return OnboardingApplication.objects.filter(state=ApplicationState.SUBMITTED).count()


def test_submit_all_past_the_threshold_runs_as_a_job_and_the_batch_page_shows_its_result(
        clerk_client, five_drafts, django_capture_on_commit_callbacks, lin_clerk):
    with django_capture_on_commit_callbacks(execute=True) as queued:  # Celery is eager in tests, as in the demo
        response = clerk_client.post(f"{INDEX}{five_drafts.pk}/submit/", {"all": "1"})

    assert len(queued) == 1  # the job, enqueued on commit
    assert response.status_code == 302 and response.url == f"{INDEX}{five_drafts.pk}/#last-submit"
    job = ImportJob.objects.get(pk=five_drafts.pk)
    assert (job.submit_state, job.submit_total, job.submit_processed, job.submit_by) == ("done", 5, 5, lin_clerk)
    assert submitted_count() == 4
    refused = job.rows.get(row_number=4)
    assert (refused.submit_outcome, refused.submit_message) == ("refused", "documents missing: id_back")

    page = clerk_client.get(f"{INDEX}{job.pk}/").content.decode()
    result = page[page.index('id="last-submit"'):]
    assert 'data-result="submitted">4<' in result and 'data-result="refused">1<' in result
    assert '<tr data-row="4">' in result and "documents missing: id_back" in result
    assert 'hx-trigger' not in page  # nothing runs any more: the page does not poll

    queued_audit = AuditLog.objects.get(action="merchants.batch.bulk_submit_queued")
    assert queued_audit.actor == lin_clerk and queued_audit.data == {"selected": 5, "all_drafts": True}
    done_audit = AuditLog.objects.get(action="merchants.batch.bulk_submitted")
    assert done_audit.actor == lin_clerk
    assert (done_audit.data["submitted"], done_audit.data["refused"]) == (4, 1)
    # Each draft went through application_submit as the clerk, audited there as ever.
    assert AuditLog.objects.filter(action="merchants.application.submitted", actor=lin_clerk).count() == 4


def test_a_queued_submit_shows_its_progress_and_the_task_itself_does_the_submitting(
        clerk_client, five_drafts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:  # no worker has taken it yet
        clerk_client.post(f"{INDEX}{five_drafts.pk}/submit/", {"all": "1"})
    assert len(queued) == 1 and submitted_count() == 0

    page = clerk_client.get(f"{INDEX}{five_drafts.pk}/").content.decode()
    assert 'id="submit-progress"' in page and "5 drafts to submit; waiting for a worker" in page
    assert 'hx-trigger="every 1s"' in page  # the page polls the progress
    assert "Submit all 5 drafts" not in page  # no second job while this one runs
    assert clerk_client.get(f"{INDEX}{five_drafts.pk}/progress/").json()["submit"] == {
        "state": "queued", "running": True, "total": 5, "processed": 0, "percent": 0}
    again = clerk_client.post(f"{INDEX}{five_drafts.pk}/submit/", {"all": "1"}, follow=True)
    assert "a bulk submit of this batch is already running" in again.content.decode()

    tasks_batch.bulk_submit_import_job(five_drafts.pk)  # what the worker runs

    assert submitted_count() == 4
    progress = clerk_client.get(f"{INDEX}{five_drafts.pk}/progress/")
    assert progress.json()["submit"] == {"state": "done", "running": False, "total": 5, "processed": 5,
                                         "percent": 100}
    fragment = clerk_client.get(f"{INDEX}{five_drafts.pk}/progress/", HTTP_HX_REQUEST="true")
    assert fragment["HX-Refresh"] == "true"  # done: the page reloads to show the result
    tasks_batch.bulk_submit_import_job(five_drafts.pk)  # a redelivered task finds the job done
    assert AuditLog.objects.filter(action="merchants.batch.bulk_submitted").count() == 1


def test_the_job_publishes_its_progress_row_by_row(clerk_client, five_drafts, lin_clerk,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job, queued = services.import_job_bulk_submit_start(job_id=five_drafts.pk, actor=lin_clerk)
    assert queued and job.submit_state == "queued"
    seen = []

    def as_each_row_is_written(sender, instance, **kwargs):
        seen.append(ImportJob.objects.values_list("submit_state", "submit_processed").get(pk=instance.job_id))

    post_save.connect(as_each_row_is_written, sender=ImportRow, weak=False)
    try:
        services.import_job_bulk_submit_run(job_id=job.pk, every_rows=1)
    finally:
        post_save.disconnect(as_each_row_is_written, sender=ImportRow)
    assert seen == [("running", n) for n in range(5)]
    assert ImportJob.objects.values_list("submit_state", "submit_processed").get(pk=job.pk) == ("done", 5)


def test_a_few_chosen_drafts_are_still_submitted_in_the_request(clerk_client, five_drafts):
    chosen = [row.pk for row in five_drafts.rows.order_by("row_number")[:3]]  # at the threshold; row 4 lacks a document
    response = clerk_client.post(f"{INDEX}{five_drafts.pk}/submit/", {"rows": chosen})
    assert response.url == f"{INDEX}{five_drafts.pk}/submitted/"
    assert submitted_count() == 2 and ImportJob.objects.get(pk=five_drafts.pk).submit_state == ""


def test_only_those_who_may_submit_start_the_job(client, five_drafts, staff_member):
    client.force_login(staff_member("support_agent"))
    assert client.post(f"{INDEX}{five_drafts.pk}/submit/", {"all": "1"}).status_code == 403
    assert ImportJob.objects.get(pk=five_drafts.pk).submit_state == "" and submitted_count() == 0

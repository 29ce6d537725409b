"""Batch onboarding in a real browser: a clerk uploads the shipped sample batch, sees the preview, confirms, and
watches the progress bar reach done; then submits every draft of the batch.

The sample has 10 rows and the test lowers the background threshold to 5, so both passes run as Celery jobs. The
jobs are published to an in-memory broker that nobody consumes, and the test runs them itself, like a worker
would, while the page polls: the page must notice on its own (htmx polling) that each pass has finished.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from aggpay.celery import app as celery_app
from merchants.batch import services
from merchants.models import ApplicationState, ImportJob, ImportJobState, OnboardingApplication

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLES = "samples"


def _reset_producer_pools() -> None:
    # Celery caches its producer pool on first publish (see tests/aggpay/test_celery_worker.py); drop it so the
    # next publish uses the broker set here.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def unconsumed_broker():
    """Celery publishes for real (not eagerly) to an in-memory broker, so jobs wait until the test runs them."""
    before = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = False, "memory://"
    _reset_producer_pools()
    yield
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = before
    _reset_producer_pools()


def test_a_clerk_imports_the_sample_batch_and_sees_the_progress_bar_reach_done(
        sign_in, staff_member, live_server, settings, unconsumed_broker, tmp_path):
    settings.AGGPAY_BATCH_ASYNC_ROWS = 5
    samples = Path(settings.BASE_DIR) / SAMPLES
    staff_member("onboarding_clerk", username="lin")
    page = sign_in("lin")
    page.set_viewport_size({"width": 1366, "height": 900})

    page.goto(live_server.url + "/staff/onboarding/batch/")
    page.set_input_files("input[name=sheet]", str(samples / "batch-onboarding-10.xlsx"))
    page.set_input_files("input[name=documents]", str(samples / "batch-onboarding-10-documents.zip"))
    page.get_by_role("button", name="Check the file").click()

    page.wait_for_url(f"{live_server.url}/staff/onboarding/batch/*/")
    job = ImportJob.objects.get()
    progress = page.locator("#batch-progress")
    assert progress.get_attribute("data-state") == "queued"  # waiting for a worker; the page polls
    services.import_job_validate(job_id=job.pk)  # the worker's dry run

    page.wait_for_selector("#confirm", timeout=10_000)  # the page reloaded by itself when the pass ended
    assert page.locator("[data-count=valid]").inner_text() == "10"
    assert page.locator("[data-count=invalid]").inner_text() == "0"
    page.locator("#valid-rows summary").click()
    assert page.locator("#valid-rows tbody tr").count() == 10
    page.screenshot(path=str(tmp_path / "batch-preview.png"), full_page=True)

    page.get_by_role("button", name="Confirm import").click()
    page.wait_for_selector("#batch-progress[data-state=importing]")
    assert ImportJob.objects.get().state == ImportJobState.IMPORTING
    services.import_job_run(job_id=job.pk)  # the worker's import

    page.wait_for_selector("#batch-progress[data-state=done]", timeout=10_000)
    assert page.locator("#batch-progress progress").get_attribute("value") == "100"
    assert page.locator("[data-count=imported]").inner_text() == "10"
    with zipfile.ZipFile(samples / "batch-onboarding-10-documents.zip") as archive:
        pictures = len(archive.namelist())
    assert page.locator("[data-count=documents]").inner_text() == str(pictures)
    assert page.locator("#drafts tbody tr").count() == 10
    page.screenshot(path=str(tmp_path / "batch-done.png"), full_page=True)

    # Ten drafts, past this test's threshold of five: the submit is a background job too, with its own bar.
    page.get_by_role("button", name="Submit all 10 drafts of this batch").click()
    page.wait_for_selector("#submit-progress")
    assert "10 drafts to submit; waiting for a worker" in page.locator("#submit-progress").inner_text()
    services.import_job_bulk_submit_run(job_id=job.pk)  # the worker's submit

    page.wait_for_selector("#last-submit [data-result=submitted]:text('10')", timeout=10_000)
    assert page.locator("#last-submit [data-result=refused]").inner_text() == "0"
    page.get_by_role("link", name="Every row's result").click()
    page.wait_for_url(f"{live_server.url}/staff/onboarding/batch/{job.pk}/submitted/")
    assert page.locator("#submit-results tr[data-outcome=submitted]").count() == 10
    assert OnboardingApplication.objects.filter(state=ApplicationState.SUBMITTED).count() == 10
    page.screenshot(path=str(tmp_path / "batch-submitted.png"), full_page=True)


def test_a_clerk_sees_every_bad_row_and_imports_only_the_valid_ones(sign_in, staff_member, live_server, tmp_path):
    from merchants.batch.examples import example_rows, sheet_bytes

    rows = example_rows(8)
    rows[1]["settlement_account_holder"] = "张三"  # an enterprise's corporate account in a person's name
    rows[5]["scenarios"] = "shop:门店"
    rows[6]["licence_no"] = rows[0]["licence_no"]
    sheet = tmp_path / "batch.xlsx"
    sheet.write_bytes(sheet_bytes(rows))
    staff_member("onboarding_clerk", username="lin")
    page = sign_in("lin")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(live_server.url + "/staff/onboarding/batch/")
    page.set_input_files("input[name=sheet]", str(sheet))
    page.get_by_role("button", name="Check the file").click()

    page.wait_for_selector("#confirm")
    problems = page.locator("#problems tbody tr")
    assert problems.count() == 2
    assert problems.nth(0).locator("td").all_inner_texts()[:4] == [
        "3", "R002", "开户名 Account holder", "“开户名 Account holder” must be the legal name"]
    assert problems.nth(1).locator("td").all_inner_texts()[:3] == ["7", "R006", "经营场景 Scenarios"]
    duplicates = page.locator("#duplicates tbody tr")
    assert duplicates.locator("td").all_inner_texts()[:2] == ["8", "R007"]
    assert "same licence number as row 2" in duplicates.inner_text()
    page.screenshot(path=str(tmp_path / "batch-problems.png"), full_page=True)

    page.get_by_role("button", name="Confirm import").click()  # not ticked: refused, nothing written
    assert "3 row(s) are invalid" in page.locator(".message.error").inner_text()
    assert ImportJob.objects.get().state == ImportJobState.VALIDATED

    page.get_by_label("Import only the 5 valid rows").check()
    page.get_by_role("button", name="Confirm import").click()
    page.wait_for_selector("#batch-progress[data-state=done]")
    assert page.locator("#drafts tbody tr").count() == 5
    assert page.locator("#problems tbody tr").first.locator(".badge").inner_text() == "Skipped"

"""Progress of a running batch pass is visible outside the pass's transaction (the page polls it while the
all-or-nothing import is still uncommitted), and duplicate runs of one job import once."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from merchants.batch import services
from merchants.batch.examples import example_rows, sheet_bytes
from merchants.batch.progress import ProgressReporter
from merchants.models import ImportJob, ImportJobState, Merchant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clerk(staff_member):
    return staff_member("onboarding_clerk", username="zhou.clerk")


def _read_from_another_connection(job_id: int) -> tuple[str, int]:
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(f"SELECT state, processed_rows FROM {ImportJob._meta.db_table} WHERE id = %s", [job_id])
            return cursor.fetchone()
    finally:
        other.close()


def test_the_reporter_publishes_progress_while_the_pass_transaction_is_open(clerk):
    job = services.import_job_create(actor=clerk, sheet=SimpleUploadedFile("b.xlsx", sheet_bytes(example_rows(3))))
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).exists()  # the pass's own connection is inside a transaction
        with ProgressReporter(job_id=job.pk, every_rows=5) as progress:
            progress(1)  # the first call always writes
            progress(3)  # throttled: fewer than 5 rows since the last write
            assert _read_from_another_connection(job.pk)[1] == 1
            progress(6)
            assert _read_from_another_connection(job.pk)[1] == 6
            progress(7, force=True)
            assert _read_from_another_connection(job.pk)[1] == 7
            assert progress.writes == 3


def test_the_page_sees_the_import_progress_before_the_import_commits(clerk, settings):
    settings.AGGPAY_BATCH_ASYNC_ROWS = 10_000  # run the passes in the calling thread, not as Celery jobs
    rows = example_rows(150)
    job = services.import_job_create(actor=clerk, sheet=SimpleUploadedFile("b.xlsx", sheet_bytes(rows)))
    assert job.state == ImportJobState.VALIDATED

    seen: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []

    def confirm():
        try:
            services.import_job_confirm(job_id=job.pk, actor=clerk)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=confirm)
    worker.start()
    deadline = time.monotonic() + 120
    while worker.is_alive() and time.monotonic() < deadline:
        state, processed = _read_from_another_connection(job.pk)
        seen.append((state, processed, Merchant.objects.count()))
        time.sleep(0.02)
    worker.join()
    assert not errors

    midway = [s for s in seen if s[0] == ImportJobState.IMPORTING and 0 < s[1] < 150]
    assert midway, seen[-5:]
    # While the counter moved, not one draft was visible yet: the import commits all 150 at once.
    assert all(count == 0 for _state, _processed, count in midway)
    assert _read_from_another_connection(job.pk) == ("done", 150)
    assert Merchant.objects.count() == 150


def test_two_runs_of_one_import_job_create_the_drafts_once(clerk, settings):
    settings.AGGPAY_BATCH_ASYNC_ROWS = 10_000
    job = services.import_job_create(actor=clerk, sheet=SimpleUploadedFile("b.xlsx", sheet_bytes(example_rows(40))))
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        locked.start_import()
        locked.confirmed_by = clerk
        locked.save()

    results: list = []

    def run():
        try:
            results.append(services.import_job_run(job_id=job.pk).state)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["done", "done"]
    assert Merchant.objects.count() == 40
    assert ImportJob.objects.get(pk=job.pk).imported_rows == 40

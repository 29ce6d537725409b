"""Two clerks submitting the same rows of a batch at the same moment (issue 4 "Batch onboarding", bulk submit): the
row that went through stays "submitted" — the second submission waits for the row, reads it again and keeps its
result, instead of recording the refusal its own late attempt gets ("the application is submitted") over it. The race
is staged in threads (tests/race_condition.py): the second clerk is let go while the first one's result is being
written."""

from __future__ import annotations

import threading
import time

import pytest
from django.db.models.signals import post_save

from merchants.batch import services
from merchants.batch.examples import documents_zip, example_rows
from merchants.models import ApplicationState, ImportRow
from tests.merchants.test_batch_import import batch, clerk, zip_upload  # noqa: F401 - fixtures and a helper
from tests.race_condition import in_threads


@pytest.mark.django_db(transaction=True)
def test_two_clerks_submitting_the_same_row_at_once_leave_it_submitted(batch, clerk, staff_member):  # noqa: F811
    rows = example_rows(1)
    job = batch.confirm(batch.create(rows, documents=zip_upload(documents_zip(rows))))
    row = job.rows.get()
    other_clerk = staff_member("onboarding_clerk", username="li.clerk")
    second_may_go = threading.Event()

    def while_the_first_result_is_written(sender, instance, **kwargs):
        if instance.pk == row.pk and instance.submit_outcome == "submitted" and not second_may_go.is_set():
            second_may_go.set()
            time.sleep(0.5)  # the second clerk's submission arrives now

    def submit(i):
        if i == 1:
            assert second_may_go.wait(timeout=10)
        return services.import_job_bulk_submit(job_id=job.pk, actor=(clerk, other_clerk)[i], row_ids=[row.pk])

    post_save.connect(while_the_first_result_is_written, sender=ImportRow, weak=False)
    try:
        first, second = in_threads(2, submit)
    finally:
        post_save.disconnect(while_the_first_result_is_written, sender=ImportRow)

    row.refresh_from_db()
    assert (row.submit_outcome, row.submit_message) == ("submitted", "")
    assert row.application.state == ApplicationState.SUBMITTED
    assert first[0].submit_outcome == second[0].submit_outcome == "submitted"

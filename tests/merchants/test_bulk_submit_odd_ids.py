"""A tampered or garbled bulk-submit form (ids that are digits to ``str.isdigit`` but not to ``int``, such as "²") is
answered like a form with nothing selected, never with a server error (issue 4 "Clerk workbench", "bulk submit")."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from merchants.batch import services
from merchants.batch.examples import example_rows, sheet_bytes
from merchants.models import ApplicationState, OnboardingApplication

pytestmark = pytest.mark.django_db


def test_the_queues_bulk_submit_ignores_ids_that_are_not_plain_digits(client, clerk_wang):
    client.force_login(clerk_wang)

    response = client.post("/staff/merchants/bulk-submit/", {"application": ["²", "٣"]})

    assert response.status_code == 302
    assert not OnboardingApplication.objects.exclude(state=ApplicationState.DRAFT).exists()


def test_a_batchs_submit_ignores_row_ids_that_are_not_plain_digits(client, clerk_wang,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = services.import_job_create(actor=clerk_wang, sheet=SimpleUploadedFile(
            "batch.xlsx", sheet_bytes(example_rows(1))))
    client.force_login(clerk_wang)

    response = client.post(f"/staff/onboarding/batch/{job.pk}/submit/", {"rows": ["²"]})

    assert response.status_code == 302 and response.url == f"/staff/onboarding/batch/{job.pk}/"

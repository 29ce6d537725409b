"""A cell whose formula failed shows Excel's error value (#N/A, #REF!, …) — a clerk's VLOOKUP that found nothing —
and Excel saves that text in .xlsx and .csv alike. It is no value: the dry run reports it on its row and column
instead of onboarding a merchant named "#N/A" (issue 4 "Batch onboarding": "every invalid row with its row number,
column and reason")."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from merchants.batch import services
from merchants.batch.examples import example_rows, sheet_bytes
from merchants.models import ImportJob

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_a_cell_showing_an_excel_error_is_reported_on_its_row_and_column(clerk_wang, fmt,
                                                                         django_capture_on_commit_callbacks):
    rows = example_rows(3)
    rows[0]["legal_name"] = "#N/A"
    rows[2]["registered_address"] = " #ref! "

    with django_capture_on_commit_callbacks(execute=True):
        job = services.import_job_create(actor=clerk_wang, sheet=SimpleUploadedFile(
            f"batch.{fmt}", sheet_bytes(rows, fmt)))

    job = ImportJob.objects.get(pk=job.pk)
    report = {row.row_number: [(e["label"], e["reason"]) for e in row.errors]
              for row in job.rows.order_by("row_number") if row.errors}
    assert list(report) == [2, 4] and job.valid_rows == 1
    # Once each, as the cell it is (not also "is required", nor an account holder that differs from the name).
    assert [label for label, _ in report[2]] == ["商户全称 Legal name"]
    assert "Excel's error #N/A" in report[2][0][1]
    assert report[4] == [("注册地址 Registered address", report[4][0][1])]
    assert "Excel's error #REF!" in report[4][0][1]

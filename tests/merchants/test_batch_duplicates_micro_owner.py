"""A 小微 merchant has no licence: its owner's ID number is what identifies it, in the batch file and against the
merchants already onboarded (issue 4 "Batch onboarding": duplicates are reported per row).

ID numbers are encrypted at rest (Fernet, a fresh IV each time), so the comparison with the database goes through
their lookup digest (``Merchant.legal_person_id_digest``), by the check the clerk's form and the partner API use too
(``merchants.services.record.check_record_duplicates``).
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from aggpay.masking import mask_id_number
from merchants.batch import services
from merchants.batch.examples import example_rows, sheet_bytes
from merchants.models import ImportJob, ImportJobState, Merchant

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk(staff_member):
    return staff_member("onboarding_clerk", username="wang.clerk")


def _batch(clerk, rows, capture) -> ImportJob:
    sheet = SimpleUploadedFile("batch.xlsx", sheet_bytes(rows, "xlsx"))
    with capture(execute=True):
        job = services.import_job_create(actor=clerk, sheet=sheet)
    return ImportJob.objects.get(pk=job.pk)


def test_a_micro_owner_already_onboarded_is_reported_and_nothing_is_imported(clerk,
                                                                           django_capture_on_commit_callbacks):
    first = example_rows(10)  # row R010 is a 小微 merchant
    owner = next(row for row in first if row["subject_type"] == "micro")
    job = _batch(clerk, first, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.import_job_confirm(job_id=job.pk, actor=clerk)
    existing = Merchant.objects.get(short_name=owner["short_name"])

    # A month later the same person is in another clerk's file, under a new shop name.
    later = example_rows(5, start=11) + [{**owner, "ref": "R900", "short_name": "又一家小店"}]
    job = _batch(clerk, later, django_capture_on_commit_callbacks)

    assert job.state == ImportJobState.VALIDATED
    row = job.rows.get(row_number=7)
    assert [(e["column"], e["kind"]) for e in row.errors] == [("legal_person_id_number", "duplicate")]
    reason = row.errors[0]["reason"]
    assert existing.merchant_no in reason and mask_id_number(owner["legal_person_id_number"]) in reason
    assert owner["legal_person_id_number"] not in reason  # masked, never the number itself
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Exception, match="invalid"):
        services.import_job_confirm(job_id=job.pk, actor=clerk)  # all or nothing: refused
    assert Merchant.objects.filter(legal_name=owner["legal_name"]).count() == 1

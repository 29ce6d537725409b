"""Batch onboarding benchmark (issue 4: "a 300-row file validates and imports well within a minute").

    .venv/bin/python bench/bench_batch.py            # 300 rows, with and without the documents ZIP
    BENCH_BATCH_ROWS=1000 .venv/bin/python bench/bench_batch.py

Recreates the database BENCH_BATCH_DATABASE_URL (default ``aggpay_bench_batch`` on the local PostgreSQL; its name
must start with ``aggpay_bench``), migrates it, and as an onboarding clerk runs the real services end to end:
upload + dry run (every row through validate_record, duplicates, ZIP checks), then the confirmed all-or-nothing
import (merchant_onboard_draft per row, document_add per picture, audit rows). More than 50 rows make both passes
Celery jobs; without a broker they run eagerly in this process, exactly as in the demo. Uploaded files and
documents go to a temporary MEDIA_ROOT. Prints seconds per phase.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from run import recreate_database  # noqa: E402  (bench/run.py: drops and recreates aggpay_bench* only)

DATABASE_URL = os.environ.get("BENCH_BATCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/aggpay_bench_batch")
ROWS = int(os.environ.get("BENCH_BATCH_ROWS", "300"))
TARGET_SECONDS = 60.0


def configure(media_root: str) -> None:
    from cryptography.fernet import Fernet

    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "aggpay.settings", "DEBUG": "1", "DATABASE_URL": DATABASE_URL,
        "AGGPAY_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "MEDIA_ROOT": media_root, "LOG_LEVEL": "WARNING",
    })
    os.environ.pop("CELERY_BROKER_URL", None)  # eager Celery, as in the demo
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run(clerk, *, start: int, with_documents: bool) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from merchants.batch import services
    from merchants.batch.examples import documents_zip, example_rows, sheet_bytes
    from merchants.models import ImportJobState

    rows = example_rows(ROWS, start=start)
    sheet = SimpleUploadedFile("bench.xlsx", sheet_bytes(rows))
    documents = SimpleUploadedFile("bench.zip", documents_zip(rows)) if with_documents else None
    began = time.perf_counter()
    job = services.import_job_create(actor=clerk, sheet=sheet, documents=documents)
    validated = time.perf_counter()
    if job.state != ImportJobState.VALIDATED or job.valid_rows != ROWS:
        raise SystemExit(f"dry run ended {job.state} with {job.valid_rows}/{ROWS} valid rows: {job.error}")
    job = services.import_job_confirm(job_id=job.pk, actor=clerk)
    imported = time.perf_counter()
    if job.state != ImportJobState.DONE or job.imported_rows != ROWS:
        raise SystemExit(f"import ended {job.state} with {job.imported_rows}/{ROWS} rows: {job.error}")
    return {"documents": job.documents_attached, "validate": validated - began, "import": imported - validated,
            "total": imported - began}


def main() -> int:
    recreate_database(DATABASE_URL)
    with tempfile.TemporaryDirectory(prefix="aggpay-bench-batch-") as media_root:
        configure(media_root)
        from aggpay.staff.services import staff_user_create

        clerk = staff_user_create(username="bench-clerk", password="bench-clerk-password", role="onboarding_clerk")
        results = [("without documents", run(clerk, start=1, with_documents=False)),
                   ("with the documents ZIP", run(clerk, start=10_001, with_documents=True))]
    import django
    from django.db import connection

    print(f"batch onboarding, {ROWS} rows (xlsx), PostgreSQL {connection.pg_version // 10000}, "
          f"Python {platform.python_version()}, Django {django.get_version()}, {os.cpu_count()} CPUs")
    print(f"{'file':<24} {'pictures':>8} {'dry run s':>10} {'import s':>9} {'total s':>8}")
    for label, result in results:
        print(f"{label:<24} {result['documents']:>8} {result['validate']:>10.2f} {result['import']:>9.2f} "
              f"{result['total']:>8.2f}")
    worst = max(result["total"] for _label, result in results)
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"target: validate + import of {ROWS} rows well within {TARGET_SECONDS:.0f} s — {verdict} "
          f"(slowest {worst:.1f} s)")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Celery tasks of batch onboarding (批量进件): ids in, one service call (style.md §11).

No retries: a pass that fails records why on the job (state ``failed``), and running it again would fail the same
way. A redelivered task (acks_late) is harmless: the services check the job's state under its row lock.
Registered with the worker by the import at the end of merchants/tasks.py (autodiscovery reads ``tasks`` only).
"""

from __future__ import annotations

from celery import shared_task

from merchants.batch import services


@shared_task(acks_late=True, ignore_result=True)
def validate_import_job(job_id: int) -> None:
    services.import_job_validate(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True)
def run_import_job(job_id: int) -> None:
    services.import_job_run(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True)
def bulk_submit_import_job(job_id: int) -> None:
    services.import_job_bulk_submit_run(job_id=job_id)

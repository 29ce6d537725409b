"""The demo's in-process beat runs the periodic jobs declared in aggpay/celery.py (design §3 embedded default)."""

from __future__ import annotations

import pytest

from aggpay import inprocess_beat
from aggpay.celery import app


@pytest.mark.django_db(transaction=True)  # it closes connections between jobs, as a thread must
def test_it_runs_every_declared_job_once_per_interval():
    last_run: dict[str, float] = {}
    first = inprocess_beat.run_due(last_run=last_run, tick_seconds=5, now=1000.0)
    assert sorted(first) == sorted(app.conf.beat_schedule)
    assert inprocess_beat.run_due(last_run=last_run, tick_seconds=5, now=1002.0) == []  # not due yet
    assert sorted(inprocess_beat.run_due(last_run=last_run, tick_seconds=5, now=1005.0)) == sorted(first)

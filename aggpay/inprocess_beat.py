"""The embedded default's beat (design §3): with eager Celery and no beat process, the periodic jobs of
``aggpay.celery.app.conf.beat_schedule`` run in a daemon thread of the web process instead — onboarding polls,
order sync and expiry, notification retries all keep working in ``make demo``.

Started only when ``AGGPAY_INPROCESS_BEAT`` is on (the demo's runserver sets it); a real deployment runs
``celery beat`` and leaves it off. Each job runs at most every ``AGGPAY_INPROCESS_BEAT_SECONDS`` (default 5) or its
own schedule, whichever is shorter, so a demo user does not wait a minute for a callback-less channel.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections

logger = logging.getLogger(__name__)
_started = threading.Event()


def start(*, tick_seconds: float) -> threading.Thread | None:
    if _started.is_set():
        return None
    _started.set()
    thread = threading.Thread(target=_run, args=(tick_seconds,), name="aggpay-inprocess-beat", daemon=True)
    thread.start()
    logger.info("in-process beat started (every %.0f s)", tick_seconds)
    return thread


def run_due(*, last_run: dict[str, float], tick_seconds: float, now: float) -> list[str]:
    """Run every job whose interval has passed; returns the names run. One failing job does not stop the others."""
    from aggpay.celery import app

    app.loader.import_default_modules()  # autodiscovery of <app>/tasks.py, as a worker does on start
    ran = []
    for name, entry in app.conf.beat_schedule.items():
        interval = min(float(entry["schedule"]), tick_seconds)
        if now - last_run.get(name, 0.0) < interval:
            continue
        last_run[name] = now
        try:
            app.tasks[entry["task"]].apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
            ran.append(name)
        except Exception:
            logger.exception("in-process beat: %s failed", name)
        finally:
            close_old_connections()
    return ran


def _run(tick_seconds: float) -> None:
    last_run: dict[str, float] = {}
    time.sleep(tick_seconds)  # let the server finish starting
    while True:
        run_due(last_run=last_run, tick_seconds=tick_seconds, now=time.monotonic())
        time.sleep(1)

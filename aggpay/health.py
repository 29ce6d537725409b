"""GET /healthz — database and broker status for load balancers and humans."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the message says why
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "ok", "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_broker() -> dict:
    if not settings.CELERY_BROKER_URL:
        return {"status": "ok", "mode": "eager"}
    from aggpay.celery import app

    started = time.perf_counter()
    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            # Fail fast: a health check must answer within the load balancer's timeout.
            conn.ensure_connection(max_retries=0, timeout=2)
    except Exception as exc:
        return {"status": "down", "mode": "broker", "error": type(exc).__name__}
    return {"status": "ok", "mode": "broker", "ms": round((time.perf_counter() - started) * 1000, 1)}


@require_GET
def healthz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)

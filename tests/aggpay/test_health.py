"""GET /healthz reports the database and the broker; a load balancer takes a 503 as "out of rotation"."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.test import override_settings

from aggpay.celery import app as celery_app


def _closed_port() -> int:
    # Bind to get a free port from the kernel, then close it: nothing listens there during the test.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _real_redis_url() -> str:
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path="/15"))


@contextmanager
def broker(url: str | None):
    """Point both Django's setting and the already-configured Celery app at ``url``."""
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    try:
        with override_settings(CELERY_BROKER_URL=url):
            yield
    finally:
        celery_app.conf.broker_url = saved


@pytest.mark.django_db
def test_it_reports_ok_with_the_database_up_and_eager_tasks(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["vendor"] == "postgresql"
    assert body["checks"]["broker"] == {"status": "ok", "mode": "eager"}
    assert response["Content-Type"] == "application/json"
    assert response["X-Request-Id"]


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_down(client):
    with broker(f"redis://127.0.0.1:{_closed_port()}/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "down"
    assert body["checks"]["broker"]["mode"] == "broker"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_it_reports_ok_with_a_real_redis_broker(client):
    with broker(_real_redis_url()):
        response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"]["status"] == "ok"
    assert response.json()["checks"]["broker"]["mode"] == "broker"


def test_it_answers_503_when_the_database_is_down(client, settings):
    # No django_db mark: pytest-django blocks database access here, which the check sees as a failure —
    # the same path a refused connection takes.
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "down"


@pytest.mark.django_db
def test_it_only_answers_get(client):
    assert client.post("/healthz").status_code == 405

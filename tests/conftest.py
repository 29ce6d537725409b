"""Shared fixtures: named personas, merchants with apps, and the channel simulators on their own port."""

from __future__ import annotations

import os

import pytest

from channels.simulators.server import SimulatorThread
from channels.simulators.store import Store
from merchants.services.merchants import merchant_activate
from tests.factories import MerchantAppFactory, MerchantFactory

# Playwright's sync API runs an event loop in the test thread; Django's ORM guard must not trip on it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def tea_house(db):
    """Persona: an active merchant, 'Tea House', with an HMAC payments app."""
    merchant = MerchantFactory(short_name="Tea House", legal_name="Hangzhou Tea House Co., Ltd.")
    merchant = merchant_activate(merchant_id=merchant.pk, actor=None, reason="test persona")
    return merchant


@pytest.fixture
def tea_house_app(tea_house):
    return MerchantAppFactory(merchant=tea_house, app_id="app_teahouse0001", secret="tea-house-secret-0123456789")


@pytest.fixture(scope="session")
def simulator_server(tmp_path_factory):
    """The channel simulators in a background thread on their own loopback port, with a fresh state file.

    Adapters reach them only over HTTP at ``simulator_server.base_url + "/<kind>"``.
    """
    store = Store(tmp_path_factory.mktemp("sim") / "simulators.sqlite3")
    server = SimulatorThread(store).start()
    yield server
    server.stop()


class _Receiver:
    """Records what is POSTed to it and answers with a configurable status and body."""

    def __init__(self):
        import threading

        self.requests: list[dict] = []
        self.status = 200
        self.body = b"SUCCESS"
        self.event = threading.Event()
        self.server = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/notify"

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            self.event.wait(0.05)
            self.event.clear()
        return self.requests


@pytest.fixture
def callback_receiver():
    """A loopback HTTP endpoint standing in for a merchant's notify_url or aggpay's callback URL in unit tests."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    receiver = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - stdlib naming
            length = int(self.headers.get("Content-Length") or 0)
            receiver.requests.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": self.rfile.read(length)}
            )
            self.send_response(receiver.status)
            self.send_header("Content-Length", str(len(receiver.body)))
            self.end_headers()
            self.wfile.write(receiver.body)
            receiver.event.set()

        def log_message(self, *args):
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()

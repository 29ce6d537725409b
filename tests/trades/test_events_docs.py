"""docs/api.md's notification receiver, run as written in its own interpreter, receiving real deliveries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from django.contrib.auth.models import Permission
from django.db import transaction

from tests.aggpay.test_api_docs import snippet
from tests.factories import UserFactory
from trades.services.events import deliveries_resend, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def docs_receiver(tmp_path, tea_house_app):
    port = _free_port()
    script = tmp_path / "receiver.py"
    script.write_text(snippet("python-notify-receiver"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGGPAY_APP_SECRET": tea_house_app.secret,
           "PORT": str(port)}
    process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    tea_house_app.notify_url = f"http://127.0.0.1:{port}/aggpay/notify"
    tea_house_app.save()
    yield process
    process.kill()


def test_the_documented_receiver_verifies_acknowledges_and_deduplicates(docs_receiver, tea_house_app):
    def emit(state):
        with transaction.atomic():
            event = event_emit(merchant=tea_house_app.merchant, type=f"order.{state}", obj_type="order",
                               obj_id="ord_doc1", data={"id": "ord_doc1", "state": state})
        return delivery_attempt(delivery_id=event.deliveries.get().pk)

    first = emit("succeeded")
    assert first.state == "delivered"
    assert emit("reversed").state == "delivered"

    support = UserFactory(username="docs.support")
    support.user_permissions.add(Permission.objects.get(codename="resend_delivery"))
    support = type(support).objects.get(pk=support.pk)
    deliveries_resend(delivery_id=first.pk, actor=support, reason="docs example")
    again = delivery_attempt(delivery_id=first.pk)
    assert again.state == "delivered"  # acknowledged, and not applied a second time (below)

    forged = requests.post(tea_house_app.notify_url, data=b'{"id":"evt_forged"}', timeout=5, headers={
        "Aggpay-Timestamp": str(int(time.time())), "Aggpay-Nonce": "x" * 16, "Aggpay-Signature": "AAAA"})
    assert forged.status_code == 401

    docs_receiver.kill()
    output = docs_receiver.stdout.read().splitlines()
    assert output == ["order.succeeded ord_doc1 1", "order.reversed ord_doc1 2"]

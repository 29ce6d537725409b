"""The simulators' callback sender (channels/simulators/notifier.py) behaves like a channel's: a receiver that
answers slowly delays only its own callbacks — others are sent meanwhile — and callbacks to one receiver keep their
order. (A stuck receiver used to hold every later callback of the simulator for its 5 s timeout.)"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from channels.simulators.notifier import Notifier
from channels.simulators.store import Store


class Receiver:
    """A loopback notify URL that records each body; ``hold`` keeps its answers back until released."""

    def __init__(self, *, hold: threading.Event | None = None):
        self.bodies: list[bytes] = []
        self.answered: list[bytes] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(body)
                receiver.arrived.set()
                if hold is not None:
                    hold.wait(timeout=10)
                self.send_response(200)
                self.end_headers()
                receiver.answered.append(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def notifier(tmp_path):
    return Notifier(Store(tmp_path / "sim.sqlite3"), "test", is_ack=lambda status, body: status == 200)


def test_a_slow_receiver_does_not_hold_back_callbacks_to_another(notifier):
    release = threading.Event()
    slow, fast = Receiver(hold=release), Receiver()
    try:
        notifier.enqueue(url=slow.url, body=b"to-the-slow-one", headers={})
        assert slow.arrived.wait(timeout=10)
        notifier.enqueue(url=fast.url, body=b"to-the-fast-one", headers={})

        arrived = fast.arrived.wait(timeout=4)  # under the sender's 5 s timeout on the slow receiver

        assert arrived and fast.bodies == [b"to-the-fast-one"]
        assert slow.answered == [], "the fast receiver got its callback while the slow one was still answering"
    finally:
        release.set()
        slow.close()
        fast.close()


def test_callbacks_to_one_receiver_keep_their_order(notifier):
    receiver = Receiver()
    try:
        for n in range(5):
            notifier.enqueue(url=receiver.url, body=f"callback {n}".encode(), headers={})
        deadline = threading.Event()
        for _ in range(100):
            if len(receiver.bodies) == 5:
                break
            deadline.wait(0.05)

        assert receiver.bodies == [f"callback {n}".encode() for n in range(5)]
    finally:
        receiver.close()

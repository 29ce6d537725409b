"""Audit of merchant notifications against merchant-api.md "Notifications and events": the signature checked by an
independent implementation of the contract's rule, what acknowledges, the ladder counted attempt by attempt, and
receivers that answer in ways a real merchant's server does (binary bodies, broken encodings, resets)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.utils import timezone

from aggpay.models import AuditLog
from aggpay.platform_keys import platform_key
from tests.factories import MerchantAppFactory, MerchantFactory, UserFactory
from trades.models import Delivery
from trades.services.events import deliveries_due, deliveries_resend, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db

ORDER = {"id": "ord_audit", "out_trade_no": "T-审计-1", "amount": 1, "state": "succeeded"}


def emit(app, *, obj_id="ord_audit", data=ORDER) -> Delivery:
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id=obj_id, data=data)
    return event.deliveries.get()


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


class RawReceiver:
    """A notify URL that answers each POST with exactly the bytes it is given (``answer``), then closes."""

    def __init__(self):
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/notify"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.requests.append((head, body))
                conn.sendall(self.answer)

    def headers(self, index: int = -1) -> dict[str, str]:
        head = self.requests[index][0].decode("latin-1").split("\r\n")[1:]
        return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}

    def close(self):
        self.sock.close()


@pytest.fixture
def raw_receiver():
    receiver = RawReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def raw_shop(tea_house_app, raw_receiver):
    tea_house_app.notify_url = raw_receiver.url
    tea_house_app.save()
    return tea_house_app


def answer(status_line: str, body: bytes = b"", *headers: str) -> bytes:
    head = [status_line, f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


# --- the signature, checked by the contract's rule written out here ----------------------------------------------
def contract_hmac(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    # merchant-api.md: Aggpay-Signature: base64( HMAC-SHA256( app_secret, TIMESTAMP "\n" NONCE "\n" BODY "\n" ) )
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def test_it_signs_a_notification_exactly_as_the_contract_writes_it(raw_shop, raw_receiver):
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    assert delivery.state == "delivered"
    [(head, body)] = raw_receiver.requests
    headers = raw_receiver.headers()
    assert head.startswith(b"POST /notify HTTP/1.1")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["aggpay-event-id"] == delivery.event.event_id
    assert headers["aggpay-signature"] == contract_hmac(raw_shop.secret, headers["aggpay-timestamp"],
                                                        headers["aggpay-nonce"], body)
    assert abs(int(headers["aggpay-timestamp"]) - timezone.now().timestamp()) < 60
    payload = json.loads(body.decode("utf-8"))
    assert set(payload) == {"id", "type", "created_at", "sequence", "data"}
    assert (payload["id"], payload["type"], payload["sequence"]) == (delivery.event.event_id, "order.succeeded", 1)
    assert payload["data"] == {"object": ORDER}
    assert dt.datetime.fromisoformat(payload["created_at"]).utcoffset() is not None  # RFC 3339 with offset


def test_each_attempt_is_signed_afresh_with_a_new_nonce_over_the_same_body(raw_shop, raw_receiver):
    raw_receiver.answer = answer("HTTP/1.1 500 Internal Server Error")
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    make_due(delivery)
    raw_receiver.answer = answer("HTTP/1.1 200 OK")
    delivery_attempt(delivery_id=delivery.pk)
    (_, first), (_, second) = raw_receiver.requests
    assert first == second
    assert raw_receiver.headers(0)["aggpay-nonce"] != raw_receiver.headers(1)["aggpay-nonce"]
    for index in (0, 1):
        h = raw_receiver.headers(index)
        assert h["aggpay-signature"] == contract_hmac(raw_shop.secret, h["aggpay-timestamp"], h["aggpay-nonce"],
                                                      first)


def test_an_rsa_apps_notification_verifies_with_the_platform_public_key_by_the_contracts_rule(
        tea_house_rsa_app, raw_receiver):
    tea_house_rsa_app.notify_url = raw_receiver.url
    tea_house_rsa_app.save()
    delivery_attempt(delivery_id=emit(tea_house_rsa_app).pk)
    [(_, body)] = raw_receiver.requests
    h = raw_receiver.headers()
    public = serialization.load_pem_public_key(platform_key().public_key_pem.encode())
    message = h["aggpay-timestamp"].encode() + b"\n" + h["aggpay-nonce"].encode() + b"\n" + body + b"\n"
    public.verify(base64.b64decode(h["aggpay-signature"]), message, padding.PKCS1v15(), hashes.SHA256())


# --- what acknowledges ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status_line, acknowledged", [
    ("HTTP/1.1 200 OK", True), ("HTTP/1.1 201 Created", True), ("HTTP/1.1 202 Accepted", True),
    ("HTTP/1.1 204 No Content", True), ("HTTP/1.1 299 Whatever", True),
    ("HTTP/1.1 199 Odd", False), ("HTTP/1.1 301 Moved Permanently", False), ("HTTP/1.1 304 Not Modified", False),
    ("HTTP/1.1 400 Bad Request", False), ("HTTP/1.1 404 Not Found", False), ("HTTP/1.1 500 Oops", False),
    ("HTTP/1.1 503 Unavailable", False),
])
def test_any_2xx_acknowledges_and_nothing_else_does(raw_shop, raw_receiver, status_line, acknowledged):
    body = b"" if status_line.split()[1] in ("204", "304") else b"ok"
    raw_receiver.answer = answer(status_line, body)
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    assert delivery.state == ("delivered" if acknowledged else "pending")
    assert delivery.attempt_log.get().status_code == int(status_line.split()[1])


def test_a_receiver_that_closes_without_answering_is_retried(raw_shop, raw_receiver):
    raw_receiver.answer = b""
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    attempt = delivery.attempt_log.get()
    assert attempt.status_code is None and attempt.error
    assert delivery.state == "pending" and delivery.next_attempt_at > timezone.now()


# --- answers a real merchant's server gives ------------------------------------------------------------------------
def test_a_2xx_whose_body_has_a_nul_byte_acknowledges_and_is_logged(raw_shop, raw_receiver):
    # PostgreSQL text cannot hold NUL: storing the snippet as received made recording the answer fail, so the
    # acknowledged delivery stayed claimed and was posted again after every lease, forever.
    raw_receiver.answer = answer("HTTP/1.1 200 OK", b"SUCCESS\x00\x01\xff\xfe")
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    assert delivery.state == "delivered"
    attempt = delivery.attempt_log.get()
    assert attempt.status_code == 200 and attempt.response_snippet.startswith("SUCCESS")
    assert "\x00" not in attempt.response_snippet


def test_a_binary_error_page_is_logged_and_retried(raw_shop, raw_receiver):
    raw_receiver.answer = answer("HTTP/1.1 500 Oops", bytes(range(256)) * 20)
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    assert delivery.state == "pending" and delivery.attempts == 1
    attempt = delivery.attempt_log.get()
    assert attempt.status_code == 500 and attempt.finished_at is not None
    assert len(attempt.response_snippet) <= 1024 and "\x00" not in attempt.response_snippet


def test_a_2xx_with_a_body_that_does_not_decompress_still_acknowledges(raw_shop, raw_receiver):
    # The status line is the receiver's answer; a Content-Encoding it got wrong is not a failed delivery, and
    # must not escape as an exception that leaves the attempt unrecorded.
    raw_receiver.answer = answer("HTTP/1.1 200 OK", b"this is not gzip at all", "Content-Encoding: gzip")
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    assert delivery.state == "delivered"
    attempt = delivery.attempt_log.get()
    assert attempt.status_code == 200 and attempt.finished_at is not None


def test_a_body_cut_short_by_the_receiver_is_still_its_answer(raw_shop, raw_receiver):
    # Content-Length promises more than is sent before the connection closes.
    raw_receiver.answer = (b"HTTP/1.1 500 Oops\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + b"x" * 10)
    delivery = delivery_attempt(delivery_id=emit(raw_shop).pk)
    assert delivery.state == "pending" and delivery.attempts == 1
    attempt = delivery.attempt_log.get()
    assert attempt.status_code == 500 and attempt.finished_at is not None


# --- the ladder, counted ------------------------------------------------------------------------------------------
def test_the_ladder_is_the_first_try_then_16_retries_at_the_contracts_delays_then_exhausted(raw_shop, raw_receiver):
    raw_receiver.answer = answer("HTTP/1.1 503 Busy")
    expected = [60] + [300] * 2 + [600] * 5 + [3600] * 5 + [21600] * 3
    delivery = emit(raw_shop)
    delays = []
    while True:
        delivery = delivery_attempt(delivery_id=delivery.pk)
        if delivery.state != "pending":
            break
        last = delivery.attempt_log.order_by("-number").first()
        delays.append(round((delivery.next_attempt_at - last.finished_at).total_seconds()))
        # Not due yet: a task arriving early (duplicate enqueue) posts nothing.
        before = len(raw_receiver.requests)
        delivery_attempt(delivery_id=delivery.pk)
        assert len(raw_receiver.requests) == before
        make_due(delivery)
    assert delays == expected
    assert delivery.state == "exhausted" and delivery.next_attempt_at is None and delivery.claimed_until is None
    assert len(raw_receiver.requests) == 17 == delivery.attempt_log.count()
    assert [a.number for a in delivery.attempt_log.all()] == list(range(1, 18))


def test_a_notify_url_the_http_client_cannot_parse_is_a_failed_attempt_not_an_open_one(tea_house_app):
    # Left open, the attempt would be claimed again after every lease and never reach the end of the ladder.
    # The URL is stored directly: the API's validation would refuse it.
    delivery = emit(tea_house_app)
    Delivery.objects.filter(pk=delivery.pk).update(url="http://[::1/notify")
    delivery = delivery_attempt(delivery_id=delivery.pk)
    attempt = delivery.attempt_log.get()
    assert attempt.finished_at is not None and attempt.status_code is None and attempt.error
    assert delivery.state == "pending" and delivery.claimed_until is None


# --- an attempt in flight, staged: a worker is in the middle of the POST -------------------------------------------
class HoldingReceiver:
    """Holds every POST open until ``release`` is set, and answers 200."""

    def __init__(self):
        self.arrived = threading.Semaphore(0)
        self.release = threading.Event()
        self.requests: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - stdlib naming
                receiver.requests.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                receiver.arrived.release()
                receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def holding_receiver():
    receiver = HoldingReceiver()
    yield receiver
    receiver.close()


@contextlib.contextmanager
def attempt_in_flight(delivery_id: int, receiver: HoldingReceiver):
    """A worker's attempt of ``delivery_id``, stopped in the middle of its POST for the duration of the block."""
    outcome: dict = {}

    def worker():
        try:
            outcome["delivery"] = delivery_attempt(delivery_id=delivery_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert receiver.arrived.acquire(timeout=30), "the worker never posted"
        yield outcome
    finally:
        receiver.release.set()
        thread.join(60)
    assert "error" not in outcome, outcome.get("error")


def emit_for_holding(receiver: HoldingReceiver) -> Delivery:
    """A due delivery to ``receiver``. Its first attempt runs at the commit (Celery is eager in tests) against a
    port nothing listens on; the URL is then pointed at the receiver and the retry made due."""
    app = MerchantAppFactory(merchant=MerchantFactory(), notify_url="http://127.0.0.1:9/notify")
    delivery = emit(app)
    assert delivery.attempt_log.count() == 1
    Delivery.objects.filter(pk=delivery.pk).update(url=receiver.url)
    make_due(delivery)
    return delivery


def support_agent():
    user = UserFactory(username="zhou.support")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="trades", codename="resend_delivery"))
    return type(user).objects.get(pk=user.pk)


@pytest.mark.django_db(transaction=True)
def test_neither_the_sweeper_nor_a_duplicate_task_posts_a_delivery_a_worker_is_sending(holding_receiver):
    delivery = emit_for_holding(holding_receiver)
    with attempt_in_flight(delivery.pk, holding_receiver):
        assert deliveries_due() == []  # Celery is eager in tests: anything enqueued would run here
        assert delivery_attempt(delivery_id=delivery.pk).state == "pending"
        assert len(holding_receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and len(holding_receiver.requests) == 1
    assert [(a.number, a.status_code) for a in delivery.attempt_log.all()] == [(1, None), (2, 200)]


@pytest.mark.django_db(transaction=True)
def test_support_resending_a_delivery_a_worker_is_sending_does_not_post_it_twice_at_once(holding_receiver):
    # The attempt in flight is the resend support asked for: a second POST beside it would race it, and the log
    # would call the live attempt "abandoned".
    delivery = emit_for_holding(holding_receiver)
    agent = support_agent()
    with attempt_in_flight(delivery.pk, holding_receiver):
        [resent] = deliveries_resend(delivery_id=delivery.pk, actor=agent, reason="merchant asked")
        assert len(holding_receiver.requests) == 1
        assert resent.attempt_log.get(number=2).error == ""
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and len(holding_receiver.requests) == 1
    assert AuditLog.objects.filter(action="trades.delivery.resent").count() == 1


class TricklingReceiver:
    """Answers each POST one header line at a time, a line every ``every`` seconds, ``lines`` lines in all: each
    line arrives well within the read timeout, the whole answer does not."""

    def __init__(self, *, lines: int, every: float):
        self.lines, self.every = lines, every
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/notify"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            self.requests += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for number in range(self.lines):
                time.sleep(self.every)
                conn.sendall(b"X-Slow-%d: y\r\n" % number)
            conn.sendall(b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self):
        self.sock.close()


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline_and_retried(tea_house_app, settings):
    # Before: each line reset requests' read timeout, so the POST lasted as long as the receiver liked — past the
    # delivery's lease, when the sweeper gave the same delivery to a second worker, and so on. Here the answer
    # would take 20 s; the deadline is set to 1 s so that the test does not wait for the production one.
    settings.AGGPAY_DELIVERY_POST_SECONDS = 1
    receiver = TricklingReceiver(lines=40, every=0.5)
    try:
        tea_house_app.notify_url = receiver.url
        tea_house_app.save()
        delivery = delivery_attempt(delivery_id=emit(tea_house_app).pk)
    finally:
        receiver.close()
    attempt = delivery.attempt_log.get()
    assert attempt.status_code is None and "cut off" in attempt.error
    assert delivery.state == "pending" and delivery.claimed_until is None
    assert attempt.duration_ms < 10_000  # far from the 20 s the receiver would have taken

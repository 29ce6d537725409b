"""Notification POSTs keep their connection to a receiver alive (one requests session per worker thread), without
letting a receiver — an untrusted server — carry anything from one POST into the next: an answer left half read,
bytes sent after the answer, a cookie; and a POST on a kept-alive connection is cut off at its deadline like any."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from trades.services.events import notification_post

BODY = b'{"id":"evt_keepalive"}'
HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def ok(body: bytes = b"success", *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def trickle(lines: int, every: float):
    """An answer that sends its header lines one at a time: each within the read timeout, the whole not."""

    def send(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for number in range(lines):
            time.sleep(every)
            conn.sendall(b"X-Slow-%d: y\r\n" % number)
        conn.sendall(b"Content-Length: 0\r\n\r\n")

    return send


class KeepAliveReceiver:
    """A notify URL speaking HTTP/1.1 with keep-alive: the n-th POST it reads, on whatever connection, gets
    ``answers[n]`` (bytes sent as they are, or a function given the socket). ``posts`` records, for each POST, the
    number of the connection it came on and its headers."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.posts: list[tuple[int, dict[str, str]]] = []
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/notify"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections.append(conn)
                number = len(self.connections)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int):
        buffer = b""
        with conn, contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {name.strip().lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
                while len(buffer) < int(headers.get("content-length", 0)):
                    buffer += conn.recv(65536)
                buffer = buffer[int(headers.get("content-length", 0)):]
                with self.lock:
                    answer = self.answers[len(self.posts)]
                    self.posts.append((number, headers))
                if callable(answer):
                    answer(conn)
                else:
                    conn.sendall(answer)

    def close(self):
        self.sock.close()
        with self.lock:
            for conn in self.connections:  # nothing kept alive here may answer a later test on a reused port
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def receiver(*answers):
    server = KeepAliveReceiver(*answers)
    try:
        yield server
    finally:
        server.close()


def post(url: str):
    return notification_post(url, body=BODY, headers=HEADERS)


def test_it_posts_again_to_the_same_receiver_on_the_connection_it_kept_alive():
    with receiver(ok(), ok(), ok()) as merchant:
        results = [post(merchant.url) for _ in range(3)]
    assert [(r.status_code, r.snippet) for r in results] == [(200, "success")] * 3
    assert [number for number, _ in merchant.posts] == [1, 1, 1]


def test_an_answer_longer_than_the_snippet_closes_its_connection_and_the_next_post_gets_its_own_answer():
    with receiver(ok(b"E" * 5000, status="500 Internal Server Error"), ok(b"second")) as merchant:
        first, second = post(merchant.url), post(merchant.url)
    assert (first.status_code, first.snippet) == (500, "E" * 1024)
    assert (second.status_code, second.snippet) == (200, "second")
    assert [number for number, _ in merchant.posts] == [1, 2]


def test_bytes_a_receiver_sends_after_its_answer_are_not_taken_for_the_next_answer():
    # A second, made-up answer rides behind the first: the next POST must get the answer to itself.
    planted = ok(b"", status="500 Internal Server Error") + ok(b"planted")
    with receiver(planted, ok(b"real", status="503 Service Unavailable")) as merchant:
        first, second = post(merchant.url), post(merchant.url)
    assert first.status_code == 500
    assert (second.status_code, second.snippet) == (503, "real")
    assert len(merchant.posts) == 2


def test_a_cookie_a_receiver_sets_is_never_sent_back():
    # Several merchants may share a receiving host: what one POST was told must not ride on the next.
    with receiver(ok(b"ok", "Set-Cookie: session=merchant-a; Path=/"), ok(b"ok")) as merchant:
        post(merchant.url)
        post(merchant.url)
    assert [number for number, _ in merchant.posts] == [1, 1]
    assert "cookie" not in merchant.posts[1][1]


def test_a_post_on_a_kept_alive_connection_is_cut_off_at_its_deadline_and_the_next_opens_a_new_one(settings):
    settings.AGGPAY_DELIVERY_POST_SECONDS = 1
    with receiver(ok(), trickle(lines=20, every=0.3), ok()) as merchant:
        first = post(merchant.url)
        started = time.monotonic()
        cut = post(merchant.url)
        elapsed = time.monotonic() - started
        after = post(merchant.url)
    assert first.acknowledged
    assert cut.status_code is None and "cut off" in cut.error
    assert elapsed < 4  # the trickle would take 6 s
    assert after.acknowledged
    assert [number for number, _ in merchant.posts] == [1, 1, 2]


@pytest.mark.parametrize("answer", [ok(b"", "Connection: close"), ok(b"ok", status="204 No Content")])
def test_a_receiver_that_closes_or_answers_without_a_body_is_posted_to_again_without_error(answer):
    with receiver(answer, ok(b"again")) as merchant:
        first, second = post(merchant.url), post(merchant.url)
    assert first.acknowledged and first.error == ""
    assert (second.status_code, second.snippet, second.error) == (200, "again", "")

"""The simulators' HTTP/1.1 server on the wire (channel-protocols.md A.1, B.1): keep-alive, Connection: close,
HTTP/1.0, malformed heads, bodies, and what the request handed to a simulator looks like. Raw sockets, so the
exact bytes are checked and not what a client library makes of them."""

from __future__ import annotations

import json
import socket
import time

import pytest

from channels.simulators.core import SimResponse
from channels.simulators.server import SimulatorThread, _KeepAliveHandler
from channels.simulators.store import Store


@pytest.fixture(scope="module")
def simulators(tmp_path_factory):
    sim = SimulatorThread(Store(tmp_path_factory.mktemp("simsrv") / "s.sqlite3")).start()
    app = sim.app.apps["wechatpay"]

    def echo(request):  # what the simulator saw, as JSON
        return SimResponse.json({"method": request.method, "path": request.path, "query": request.query_string,
                                 "headers": request.headers, "body": request.body.decode("latin-1"),
                                 "script_name": request.script_name, "base_url": request.base_url,
                                 "target": request.target})

    app.route("GET", r"/_control/echo(?:/.*)?", echo)
    app.route("POST", r"/_control/echo(?:/.*)?", echo)
    app.route("PUT", r"/_control/echo(?:/.*)?", echo)
    app.route("HEAD", r"/_control/echo(?:/.*)?", echo)
    app.route("GET", r"/_control/boom", lambda request: 1 / 0)
    yield sim
    sim.stop()


@pytest.fixture(params=["buffered", "line_by_line"])
def server(request, simulators, monkeypatch):
    """Every test runs twice: as served (a whole head in the read buffer takes the buffered path) and with
    every request read line by line through the WSGI app — both must look the same on the wire."""
    original, simulators.buffered = _KeepAliveHandler._serve_buffered, []

    def buffered(self, data):
        served = original(self, data)
        simulators.buffered.append(served)
        return served

    monkeypatch.setattr(_KeepAliveHandler, "_serve_buffered",
                        buffered if request.param == "buffered" else lambda self, data: False)
    simulators.path = request.param
    return simulators


def connect(server) -> socket.socket:
    host, port = server.server.server_address[:2]
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Reads whole answers (status line, fields, Content-Length body) from one connection."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def answer(self, *, head_only: bool = False) -> tuple[str, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(fields.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                break
        body, self.buf = self.buf[:length], self.buf[length:]
        return lines[0], fields, body

    def closed(self) -> bool:
        """True once the server has closed its side (after anything still buffered)."""
        try:
            return self.sock.recv(1) == b"" and not self.buf
        except (ConnectionResetError, TimeoutError):
            return False


def request(method="GET", target="/wechatpay/_control/echo", *, version="HTTP/1.1", headers=(), body=b""):
    lines = [f"{method} {target} {version}", "Host: sim.test"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def test_keep_alive_serves_several_requests_on_one_connection(server):
    sock = connect(server)
    reader = Reader(sock)
    for n in range(3):
        sock.sendall(request("POST", f"/wechatpay/_control/echo?n={n}", body=b'{"n":%d}' % n,
                             headers=[("Content-Type", "application/json")]))
        status, fields, body = reader.answer()
        seen = json.loads(body)
        assert status == "HTTP/1.1 200 OK"
        assert (seen["method"], seen["path"], seen["query"], seen["body"]) == \
            ("POST", "/_control/echo", f"n={n}", f'{{"n":{n}}}')
        assert fields["content-type"] == "application/json; charset=utf-8"
        assert fields["content-length"] == str(len(body))
        assert fields["server"] == "aggpay-simulators/1.0"
        assert fields["date"].endswith(" GMT")
        assert "connection" not in fields
    sock.close()
    deadline = time.monotonic() + 2  # the handler records its third request just after answering it
    while server.path == "buffered" and len(server.buffered) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.path == "line_by_line" or server.buffered == [True, True, True]


def test_pipelined_requests_sent_in_one_write_are_answered_in_order(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request(target="/wechatpay/_control/echo?a") + request("POST", "/wechatpay/_control/echo?b",
                                                                          body=b"xyz"))
    first, second = json.loads(reader.answer()[2]), json.loads(reader.answer()[2])
    assert (first["query"], second["query"], second["body"]) == ("a", "b", "xyz")
    sock.close()


def test_a_head_and_body_that_arrive_in_pieces_are_put_together(server):
    sock = connect(server)
    reader = Reader(sock)
    raw = request("POST", "/wechatpay/_control/echo", body=b"0123456789",
                  headers=[("Authorization", "x" * 3000), ("X-Long", "y" * 9000)])
    for start in range(0, len(raw), 700):
        sock.sendall(raw[start:start + 700])
        time.sleep(0.002)
    status, _, body = reader.answer()
    seen = json.loads(body)
    assert status == "HTTP/1.1 200 OK"
    assert (seen["body"], seen["headers"]["authorization"], seen["headers"]["x-long"]) == \
        ("0123456789", "x" * 3000, "y" * 9000)
    sock.close()


def test_the_simulator_sees_lower_case_headers_the_mount_and_the_client_host(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request("PUT", "/wechatpay/_control/echo/a%20b%E4%B8%AD?x=%20y", body=b"{}", headers=[
        ("Content-Type", "text/plain"), ("X-Twice", "1"), ("x-twice", "2"), ("X_Under", "u"),
        ("Wechatpay-Serial", "  PUB_KEY_ID_1 \t")]))
    seen = json.loads(reader.answer()[2])
    assert seen["path"] == "/_control/echo/a b中"
    assert seen["query"] == "x=%20y"
    assert seen["script_name"] == "/wechatpay"
    assert seen["base_url"] == "http://sim.test/wechatpay"
    assert seen["target"] == "/wechatpay/_control/echo/a b中?x=%20y"
    assert seen["headers"] == {"host": "sim.test", "content-type": "text/plain", "x-twice": "1,2", "x-under": "u",
                               "wechatpay-serial": "PUB_KEY_ID_1"}
    sock.close()


def test_connection_close_is_honoured_and_announced(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request(headers=[("Connection", "close")]))
    status, fields, _ = reader.answer()
    assert (status, fields["connection"]) == ("HTTP/1.1 200 OK", "close")
    assert reader.closed()
    sock.close()


def test_http_1_0_closes_unless_keep_alive_is_asked_for(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request(version="HTTP/1.0"))
    status, fields, _ = reader.answer()
    assert (status, fields["connection"]) == ("HTTP/1.1 200 OK", "close")
    assert reader.closed()
    sock.close()

    sock = connect(server)
    reader = Reader(sock)
    for _ in range(2):
        sock.sendall(request(version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
        status, fields, _ = reader.answer()
        assert status == "HTTP/1.1 200 OK" and "connection" not in fields
    sock.close()


def test_head_answers_without_a_body(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request("HEAD") + request("GET"))
    status, fields, _ = reader.answer(head_only=True)
    assert status == "HTTP/1.1 200 OK" and int(fields["content-length"]) > 0
    status, _, body = reader.answer()  # the next answer follows directly: no body bytes in between
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["method"] == "GET"
    sock.close()


def test_unknown_kinds_and_routes(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request(target="/nope/x") + request(target="/wechatpay/nope") +
                 request("DELETE", "/wechatpay/_control/echo"))
    status, _, body = reader.answer()
    assert status == "HTTP/1.1 404 Not Found" and json.loads(body)["kinds"] == ["alipay", "bank", "wechatpay"]
    status, _, body = reader.answer()
    assert status == "HTTP/1.1 404 Not Found" and json.loads(body)["code"] == "NOT_FOUND"
    status, _, body = reader.answer()
    assert (status, body) == ("HTTP/1.1 405 Method Not Allowed", b"method not allowed")
    sock.close()


def test_a_simulator_error_is_a_500_and_closes(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request(target="/wechatpay/_control/boom"))
    status, fields, body = reader.answer()
    assert (status, body, fields["connection"]) == ("HTTP/1.1 500 Internal Server Error", b"simulator error",
                                                    "close")
    assert reader.closed()
    sock.close()


def test_expect_100_continue_gets_an_interim_answer(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(request("POST", headers=[("Expect", "100-continue"), ("Content-Length", "3")]))
    status, _, _ = reader.answer(head_only=True)
    assert status == "HTTP/1.1 100 Continue"
    sock.sendall(b"abc")
    status, _, body = reader.answer()
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["body"] == "abc"
    sock.close()


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET /wechatpay/_control/echo\r\n\r\n", "400"),
    (b"GET  /wechatpay/_control/echo HTTP/1.1\r\n\r\n", "400"),
    (b"GET /wechatpay/_control/echo HTTP/2.0\r\n\r\n", "505"),
    (b"GET /wechatpay/_control/echo HTTP/1.1\r\nBad Name: x\r\n\r\n", "400"),
    (b"GET /wechatpay/_control/echo HTTP/1.1\r\nNo-Colon\r\n\r\n", "400"),
    (b"GET /wechatpay/_control/echo HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", "400"),
    (b"GET /wechatpay/_control/echo HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
     "431"),
    (b"GET /wechatpay/_control/echo HTTP/1.1\r\nX-Long: " + b"y" * 70000 + b"\r\n\r\n", "431"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", "414"),
    (b"POST /wechatpay/_control/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "411"),
    (b"POST /wechatpay/_control/echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"),
    (b"POST /wechatpay/_control/echo HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
])
def test_malformed_requests_are_refused_and_the_connection_closed(server, raw, status):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(raw)
    line, fields, _ = reader.answer()
    assert line.split(" ")[1] == status
    assert fields.get("connection") == "close"
    assert reader.closed()
    sock.close()


def test_bare_lf_line_endings_are_accepted(server):
    sock = connect(server)
    reader = Reader(sock)
    sock.sendall(b"POST /wechatpay/_control/echo?lf HTTP/1.1\nHost: lf.test\nContent-Length: 2\n\nok")
    status, _, body = reader.answer()
    seen = json.loads(body)
    assert status == "HTTP/1.1 200 OK" and (seen["query"], seen["body"], seen["headers"]["host"]) == \
        ("lf", "ok", "lf.test")
    sock.close()

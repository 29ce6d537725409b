"""Serving the simulators: the combined WSGI app, a threaded HTTP/1.1 server, and the Django in-process mount."""

from __future__ import annotations

import importlib
import io
import logging
import re
import socket
import sys
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from socketserver import TCPServer, ThreadingMixIn
from urllib.parse import unquote

from channels.simulators.core import REASONS, SimRequest, SimResponse
from channels.simulators.store import Store

logger = logging.getLogger("aggpay.simulators.server")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # RFC 9110 §5.6.2
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date field (RFC 9110 §6.6.1), formatted once per second rather than once per answer."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))  # one tuple: threads see an old or a new pair, never mixed
    return _date_cache[1]


def _path_info(raw_path: str) -> str:
    """The percent-decoded path as the simulators see it: what PEP 3333's latin-1 PATH_INFO becomes in
    ``core.request_from_environ`` (UTF-8, undecodable bytes replaced), without the round trip for plain paths."""
    if "%" not in raw_path and raw_path.isascii():
        return raw_path
    return unquote(raw_path, "iso-8859-1").encode("latin-1").decode("utf-8", "replace")

# kind → "module.ClassName" of its SimulatorApp; each mounted at /<kind>/.
SIMULATORS = {
    "wechatpay": "channels.simulators.wechatpay.WechatPaySimulator",
    "alipay": "channels.simulators.alipay.AlipaySimulator",
    "bank": "channels.simulators.bank.BankSimulator",
}


class CombinedSimulators:
    """One WSGI app serving every simulator kind under /<kind>/ (kinds whose module is missing are skipped)."""

    def __init__(self, store: Store):
        self.store = store
        self.apps = {}
        for kind, dotted in SIMULATORS.items():
            module_name, class_name = dotted.rsplit(".", 1)
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue
                raise
            self.apps[kind] = getattr(module, class_name)(store)

    def _route(self, path: str):
        """(the kind's app or None, its mount "/<kind>", the path below it) for a percent-decoded path."""
        parts = path.lstrip("/").split("/", 1)
        return self.apps.get(parts[0]), "/" + parts[0], "/" + (parts[1] if len(parts) > 1 else "")

    def _unknown_kind(self) -> bytes:
        return SimResponse.json({"kinds": sorted(self.apps)}).body

    def respond(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                host_url: str) -> tuple[int, dict[str, str], bytes]:
        """What ``__call__`` answers, for a request already parsed by the server (no WSGI environ in between):
        ``path`` as ``_path_info`` gives it, ``headers`` as ``SimRequest.headers`` (lower-case names)."""
        app, mount, below = self._route(path)
        if app is None:
            return 404, {"Content-Type": "application/json"}, self._unknown_kind()
        request = SimRequest(method=method.upper(), path=below, query_string=query, headers=headers, body=body,
                             script_name=mount, host_url=host_url)
        response = app.handle(request)
        return response.status, response.headers, response.body

    def __call__(self, environ, start_response):
        app, mount, below = self._route(environ.get("PATH_INFO", "/"))
        if app is None:
            body = self._unknown_kind()
            start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        environ = dict(environ)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + mount
        environ["PATH_INFO"] = below
        return app(environ, start_response)


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with persistent connections, as the channels' gateways speak (channel-protocols.md A.1, B.1).

    The stdlib's wsgiref server answers HTTP/1.0 and closes every connection, so each channel call paid for a TCP
    handshake and a new server thread on both sides; a real gateway keeps the connection and so do the adapters
    (a pooled session per thread, channels.adapters.http). One request at a time per connection, a whole body
    in and out (Content-Length; no chunked requests, which no adapter sends), idle connections closed after
    ``timeout`` seconds.
    """

    protocol_version = "HTTP/1.1"
    server_version = "aggpay-simulators/1.0"
    sys_version = ""
    timeout = 75  # idle keep-alive connections are dropped after this (the adapters' pools notice and reconnect)
    disable_nagle_algorithm = True  # one write per answer; don't let Nagle + delayed ACK hold it back

    def handle_one_request(self) -> None:
        try:
            # Wait for the next request; what has arrived stays buffered (one recv for a whole small request).
            buffered = self.rfile.peek(1)
        except (TimeoutError, OSError):
            self.close_connection = True  # idle for too long, or the client went away
            return
        if not buffered:
            self.close_connection = True
            return
        try:
            if self._serve_buffered(buffered):
                return
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client gave up (a simulated timeout) — nothing left to answer
            return
        self._handle_line_by_line()

    def _serve_buffered(self, data: bytes) -> bool:
        """The common case without per-line reads or a WSGI environ: a well-formed head (RFC 9112 §2.2, §3, §5)
        that is already wholly in the read buffer, with a Content-Length body (or none), answered in one send.

        Returns False — having consumed nothing — for anything else, which ``_handle_line_by_line`` then reads,
        answers and refuses exactly as before: a head split over reads or longer than the buffer, bare-LF line
        endings, malformed lines, 100 or more fields, ``_`` in a field name (CGI would merge it with ``-``),
        ``Expect``, ``Transfer-Encoding``, or a Content-Length that is not a non-negative integer.
        """
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = data[:end].decode("iso-8859-1")
        lines = head.split("\r\n")
        if head.count("\n") != len(lines) - 1 or len(lines) > 100:  # a bare LF: lines differ from readline's
            return False
        words = lines[0].rstrip("\r").split(" ")
        if len(words) != 3 or not words[0] or not words[1] or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return False
        headers: dict[str, str] = {}  # as core.request_from_environ would give them: lower-case, repeats joined
        content_type = connection = length_field = None
        token = _TOKEN.match
        for index in range(1, len(lines)):
            name, colon, value = lines[index].partition(":")
            if not colon or not token(name) or "_" in name:
                return False
            value = value.strip(" \t\r\n")
            lowered = name.lower()
            if lowered == "content-type":
                content_type = value  # CGI keeps the last one
            elif lowered == "content-length":
                if length_field is None:
                    length_field = value
            elif lowered in ("expect", "transfer-encoding"):
                return False
            elif lowered in headers:
                headers[lowered] += "," + value
            else:
                headers[lowered] = value
                if lowered == "connection":
                    connection = value.lower()  # the first one decides, as before
        try:
            length = int(length_field or 0)
        except ValueError:
            return False
        if length < 0:
            return False
        if content_type:
            headers["content-type"] = content_type
        method, target, version = words
        self.command, self.request_version = method, version
        self.requestline = lines[0]
        self.close_connection = (connection is not None and "close" in connection) or (
            version == "HTTP/1.0" and (connection is None or "keep-alive" not in connection))
        start = end + 4
        request = self.rfile.read(start + length)
        body = request[start:]
        raw_path, _, query = target.partition("?")
        path = _path_info(raw_path)
        server = self.server
        host_url = "http://" + (headers.get("host") or server.default_host)
        try:
            status, fields, payload = server.app.respond(method, path, query, headers, body, host_url)
            reason = REASONS.get(status, "X")
        except Exception:
            logger.exception("simulator error on %s %s", method, raw_path)
            self.close_connection = True
            status, reason, fields, payload = 500, "Internal Server Error", _ERROR_FIELDS, b"simulator error"
        self._write(f"{status} {reason}", list(fields.items()), payload)
        return True

    def _handle_line_by_line(self) -> None:
        """Anything ``_serve_buffered`` passes on: the request read a line at a time, through the WSGI app."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self._parse_head():
            return
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client gave up (a simulated timeout) — nothing left to answer

    def _parse_head(self) -> bool:
        """Request line and header fields (RFC 9112 §3, §5), strictly: what the stdlib's ``parse_request`` checks,
        without its email-package header parser (a third of this server's own time per request). Answers 400, 431
        or 505 itself; sets ``close_connection`` for HTTP/1.0 and ``Connection: close``."""
        self.command = None
        self.request_version = version = "HTTP/1.0"  # until the line says otherwise; errors get a status line
        self.close_connection = True
        self.requestline = line = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        words = line.split(" ")
        if len(words) != 3 or not words[0] or not words[1]:
            self.send_error(HTTPStatus.BAD_REQUEST, "bad request line")
            return False
        self.command, self.path, version = words
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version {version!r}")
            return False
        self.request_version = version
        headers = _Headers()
        while True:
            raw = self.rfile.readline(65537)
            if len(raw) > 65536 or len(headers) >= 100:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if not colon or not _TOKEN.match(name):  # a field name is a token: no spaces, no obs-fold
                self.send_error(HTTPStatus.BAD_REQUEST, "bad header field")
                return False
            headers.add(name, value.strip(" \t\r\n"))
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        self.close_connection = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        if headers.get("Expect", "").lower() == "100-continue" and version == "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            self.send_error(HTTPStatus.LENGTH_REQUIRED)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ = {
            **self.server.base_environ,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path, "iso-8859-1"),  # PEP 3333: latin-1 "bytes" of the decoded path
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(length) if length else "",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                key = "HTTP_" + key
                environ[key] = environ[key] + "," + value if key in environ else value
        answer: dict = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return lambda data: answer.setdefault("written", []).append(data)

        try:
            chunks = self.server.app(environ, start_response)
            try:
                payload = b"".join([*answer.get("written", []), *chunks])
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except Exception:
            logger.exception("simulator error on %s %s", self.command, path)
            self.close_connection = True
            answer = {"status": "500 Internal Server Error",
                      "headers": [("Content-Type", "text/plain; charset=utf-8")]}
            payload = b"simulator error"
        self._write(answer["status"], answer["headers"], payload)

    def _write(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        lines = [f"HTTP/1.1 {status}", f"Server: {self.server_version}", f"Date: {_http_date()}"]
        has_length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered == "connection" and value.lower() == "close":
                self.close_connection = True
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(payload)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # One write (the unbuffered socket writer's sendall) for status line, fields and body: a second small
        # write would wait for the client's delayed ACK.
        self.wfile.write(head if self.command == "HEAD" else head + payload)

    def log_message(self, format, *args):  # noqa: A002 - signature from the stdlib
        pass


_ERROR_FIELDS = {"Content-Type": "text/plain; charset=utf-8"}


class _Headers:
    """Request header fields in order, looked up case-insensitively (repeated fields are kept; ``get`` gives the
    first, as ``email.message.Message.get`` does)."""

    def __init__(self):
        self._items: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        self._first.setdefault(name.lower(), value)

    def get(self, name: str, default=None):
        return self._first.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _ThreadingHTTPServer(ThreadingMixIn, TCPServer):
    """A thread per connection (kept for the connection's life); ``server_close`` also drops open connections,
    so a stopped simulator never answers on a kept-alive connection again."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app):
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _KeepAliveHandler)
        host, port = self.server_address[:2]
        self.default_host = f"{host}:{port}"  # what request_from_environ falls back to without a Host field
        self.base_environ = {
            "SERVER_NAME": host, "SERVER_PORT": str(port), "GATEWAY_INTERFACE": "CGI/1.1", "SCRIPT_NAME": "",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }

    def get_app(self):
        return self.app

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self):
        super().server_close()
        with self._open_lock:
            still_open, self._open = list(self._open), set()
        for sock in still_open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def make_simulator_server(store: Store, *, host: str = "127.0.0.1", port: int = 0):
    """A threaded HTTP/1.1 (keep-alive) server on loopback. ``port=0`` picks a free port (tests)."""
    return _ThreadingHTTPServer((host, port), CombinedSimulators(store))


class SimulatorThread:
    """Run the simulators in a background thread on their own port (tests, benchmarks)."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0):
        self.server = make_simulator_server(store, host=host, port=port)
        self.app: CombinedSimulators = self.server.get_app()
        self.thread = threading.Thread(target=self.server.serve_forever, name="simulators", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatorThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

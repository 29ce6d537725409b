"""The one function all outbound HTTP to channels goes through (design §6; healthchecks' hc/lib/curl.py).

Timeouts on connect and read, a request id per call, a log line per call with secrets and PII redacted, and
metrics (count and latency per channel kind and outcome). Tests patch ``channel_request`` itself, never
``requests`` or ``urllib3`` globally. Transport failures surface as ``ChannelUnknown`` (design §5 rule 2).

Connections are kept: each thread holds one HTTP/1.1 connection per channel origin (scheme, host, port), as the
channels' own SDKs keep one HTTP client (wechatpay-go ``core/client.go``, the Alipay SDKs' pooled clients) and
their gateways speak HTTP/1.1 with keep-alive (channel-protocols.md A.1, B.1). A kept connection is checked
before it is used: if the server has closed it (or written to it) while it sat idle, it is replaced before a
byte of the request is sent. A request that fails once it is on its way is never repeated — no retries at all (a
repeated POST could move money twice) — and no redirects are followed: a channel answers where it is asked.

The client is a small HTTP/1.1 one of our own over a socket (``_Connection``, ``_request_bytes``,
``_read_answer``): requests are written as http.client wrote them (Host, ``Accept-Encoding: identity``,
Content-Length), answers are framed by Content-Length, chunked coding or the server closing, and header fields
come back case-insensitive with repeated names joined by ", " (as urllib3 joined them). URLs are normalised as
urllib3 did (its ``parse_url``) and TLS uses urllib3's client settings: TLS 1.2 at least, certificate and host
name verified against certifi's CA bundle (the bundle requests used). Environment proxies are not consulted.
Connect timeout: TCP connect, TLS handshake and sending the request; read timeout: each wait for the answer.
Why not requests or urllib3's PoolManager: see the comment above ``_MAX_LINE`` (both spent more of the process's
CPU per call than the call's own HTTP).
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import re
import secrets
import select
import socket
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import certifi
from django.conf import settings
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import HTTPError as URLError
from urllib3.exceptions import LocationValueError, URLSchemeUnknown
from urllib3.util import parse_url
from urllib3.util.ssl_ import create_urllib3_context

from channels.adapters.errors import ChannelUnknown

logger = logging.getLogger("aggpay.channels.http")

_kept_local = threading.local()

# Keys whose values never reach a log line (secrets, signatures, PII). Matched case-insensitively in JSON,
# form bodies and headers.
REDACT_KEYS = (
    "authorization", "signature", "sign", "paysign", "private_key", "app_auth_token", "auth_code", "apiv3_key",
    "account_number", "account_name", "id_card_number", "id_card_name", "id_doc_number", "id_doc_name",
    "contact_name", "contact_id_number", "mobile_phone", "contact_email", "cert_no", "card_no", "phone",
    "ciphertext", "payer_phone", "bank_account", "openid", "buyer_id", "user_id", "access_token", "refresh_token", "open_id",
    "user_auth_code", "id_no", "account_no", "mobile", "file_content",
    # Who paid, under the names the channels give it (channel-protocols.md A.8 payer.sp_openid/sub_openid, B.4
    # buyer_logon_id and buyer_open_id, the bank's payer_id): keys are matched whole, so each spelling is listed.
    "sp_openid", "sub_openid", "payer_openid", "buyer_open_id", "buyer_user_id", "buyer_logon_id",
    "alipay_logon_id", "payer_id", "oauth_payer_id", "buyer_name", "payer_name",
)
_KEYS_ALT = "|".join(re.escape(k) for k in REDACT_KEYS)
_REDACT_JSON = re.compile(r'("(?:' + _KEYS_ALT + r')"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)
_REDACT_FORM = re.compile(r"(?<![A-Za-z_])((?:" + _KEYS_ALT + r")=)[^&\s]*", re.IGNORECASE)


def redact(text: str, limit: int = 2000) -> str:
    """Mask secret and PII values in a JSON or form-encoded text for logs and staff timelines."""
    if not text:
        return ""
    if "\ufffd" in text[:200] or "\x00" in text[:200]:
        return f"<{len(text)} characters of binary content>"  # bills (zip/gzip), pictures: nothing to read
    text = _REDACT_JSON.sub(r'\1"***"', text)
    text = _REDACT_FORM.sub(r"\1***", text)
    # A NUL past the part looked at above (a channel's answer, a forged notice) is text, not a file: what is
    # returned is stored (a channel call's answer, an audit row), and PostgreSQL's text and jsonb hold no NUL.
    # Masking ran first, so a NUL inside a secret's value cannot keep it from being masked.
    return without_nul(text[:limit] + ("…" if len(text) > limit else ""))


def without_nul(value):
    """``value`` (a channel's parsed answer: str, or dicts and lists of them) with every NUL replaced by U+FFFD.

    A channel's JSON may carry ``\\u0000`` in any string; whatever an adapter returns from it is stored
    (ChannelCall.message, an order's failure_message, pay_params, payer), and PostgreSQL's text and jsonb
    columns cannot hold NUL — the INSERT failed and the merchant got a 500 instead of the channel's answer.
    Adapters pass each answer through this once its signature is verified (the signature covers the bytes sent).
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


@dataclass
class ChannelResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    body: bytes
    elapsed_ms: float
    request_id: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class _Metrics:
    """In-process counters, exported for benchmarks and the channel health page of this process."""

    calls: dict = field(default_factory=lambda: defaultdict(int))
    latency_ms: dict = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, outcome: str, elapsed_ms: float) -> None:
        with self.lock:
            self.calls[(kind, outcome)] += 1
            self.latency_ms[(kind, outcome)] += elapsed_ms


metrics = _Metrics()


# --- the client ---------------------------------------------------------------------------------------------
# Why a client of our own rather than urllib3's PoolManager (what this module used before): py-spy (--gil) on the
# order-create path put channel_request at ~19% of a worker's Python CPU per order, about half of it in
# http.client.parse_headers (an email.message built through email.feedparser for every answer), most of the rest
# in urllib3's pool lookup, URL parsing and HTTPHeaderDict. A micro-benchmark (one GET to the local simulators,
# an answer with four header fields, kept connection; 5,000 calls, minimum of 3 runs of time.thread_time() per
# call, on a shared 2-CPU machine) measured per call: PoolManager ~220-236 µs; http.client's HTTPConnection with
# a fast header parse ~127 µs (its per-answer reader and per-header checks); this client ~61-74 µs; a bare socket
# exchange ~13 µs. What is kept of urllib3 is its URL normalisation (``parse_url``, for any URL not already in
# normal form) and its TLS client settings; http.client's exceptions and limits are reused.

_MAX_LINE = 65536  # http.client's limits: bytes in a status, header or chunk-size line, lines in a header block
_MAX_FIELDS = 100
_MAX_KEPT = 16  # origins a thread keeps a connection to (the least recently used one is closed beyond this)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # sent "Content-Length: 0" without a body, as http.client does
# A request target urllib3's parse_url would send unchanged (RFC 3986 pchar / query characters, upper-case
# percent-escapes); anything else (spaces, non-ASCII, "%2f", a fragment, dot segments) goes through parse_url.
_PLAIN_TARGET = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-F]{2})*\Z")
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # a token (RFC 9110 §9.1)
_FIELD_NAME = re.compile(r"[^:\s][^:\r\n]*\Z")  # http.client's check on a header name we send
_BAD_VALUE = re.compile(r"[\r\n\x00]")  # no line breaks (header injection) or NULs in a value we send
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")


class _Fields(CaseInsensitiveDict):
    """An answer's header fields: looked up case-insensitively, each name once under its first spelling, repeated
    fields' values joined with ", " in order — what urllib3's HTTPHeaderDict gave and callers (WeChat Pay's
    ``Wechatpay-*`` checks) read."""


def _read_fields(rfile) -> _Fields:
    """Read a header block up to its empty line (RFC 9112 §5) with http.client's limits, as
    ``http.client.parse_headers`` would but without building an email.message: a value loses leading blanks and
    its line end, an obs-folded continuation line joins the previous value with one space (as urllib3 did), and
    a line that is not a field (no colon, or an empty name) is skipped."""
    lines: list[list[str]] = []
    while True:
        raw = rfile.readline(_MAX_LINE + 1)
        if len(raw) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if raw in (b"\r\n", b"\n", b""):
            break
        if len(lines) >= _MAX_FIELDS:
            raise http.client.HTTPException(f"got more than {_MAX_FIELDS} headers")
        text = raw.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):
            if lines:
                lines[-1][1] = lines[-1][1].rstrip(" \t") + " " + text.lstrip(" \t")
            continue
        name, colon, value = text.partition(":")
        if colon and name:
            lines.append([name, value.lstrip(" \t")])
    joined: dict[str, tuple[str, str]] = {}
    for name, value in lines:
        key = name.lower()
        seen = joined.get(key)
        joined[key] = (name, value) if seen is None else (seen[0], seen[1] + ", " + value)
    fields = _Fields()
    for name, value in joined.values():
        fields[name] = value
    return fields


def _read_status(rfile) -> tuple[int, int]:
    """(HTTP version as 10 or 11, status) from a status line, checked as http.client checks it."""
    raw = rfile.readline(_MAX_LINE + 1)
    if len(raw) > _MAX_LINE:
        raise http.client.LineTooLong("status line")
    if not raw:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    line = raw.decode("iso-8859-1")
    words = line.split(None, 2)
    if len(words) < 2 or not words[0].startswith("HTTP/"):
        raise http.client.BadStatusLine(line)
    version, status = words[0], words[1]
    if not (len(status) == 3 and status.isascii() and status.isdigit() and status[0] != "0"):
        raise http.client.BadStatusLine(line)
    if version in ("HTTP/1.0", "HTTP/0.9"):
        return 10, int(status)
    if version.startswith("HTTP/1."):
        return 11, int(status)
    raise http.client.UnknownProtocol(version)


def _read_exactly(rfile, size: int) -> bytes:
    data = rfile.read(size)
    if len(data) < size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


def _read_chunked(rfile) -> bytes:
    """A chunked body (RFC 9112 §7.1): chunk extensions ignored, the trailer section read and dropped."""
    parts = []
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("chunk size")
        size = line.split(b";", 1)[0].strip(b" \t\r\n")
        if not _CHUNK_SIZE.match(size):
            raise http.client.IncompleteRead(b"".join(parts)) if not line else http.client.HTTPException(
                f"bad chunk size line {line[:80]!r}")
        size = int(size, 16)
        if size == 0:
            break
        parts.append(_read_exactly(rfile, size))
        if rfile.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise http.client.HTTPException("chunk not followed by a line end")
    for _ in range(_MAX_FIELDS + 1):
        line = rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("trailer line")
        if line in (b"\r\n", b"\n", b""):
            return b"".join(parts)
    raise http.client.HTTPException(f"got more than {_MAX_FIELDS} trailer lines")


def _read_answer(rfile, method: str) -> tuple[int, _Fields, bytes, bool]:
    """Status, header fields, body and whether the connection may be kept, framed as RFC 9112 §6.3 says."""
    while True:
        version, status = _read_status(rfile)
        fields = _read_fields(rfile)
        if not 100 <= status < 200:
            break
        if status == 101:
            raise http.client.HTTPException("101 Switching Protocols to a request that asked for no upgrade")
        # 100 Continue, 103 Early Hints…: interim answers, the final one follows
    connection = (fields.get("connection") or "").lower()
    if version == 11:
        keep = "close" not in connection
    else:
        keep = "keep-alive" in connection or "keep-alive" in fields
    transfer_encoding = (fields.get("transfer-encoding") or "").lower()
    if method == "HEAD" or status in (204, 304):
        return status, fields, b"", keep
    if transfer_encoding not in ("", "identity"):
        if transfer_encoding != "chunked":
            raise http.client.HTTPException(f"unsupported Transfer-Encoding {transfer_encoding!r}")
        return status, fields, _read_chunked(rfile), keep
    length = fields.get("content-length")
    if length is not None:
        lengths = {part.strip() for part in length.split(",")}
        size = lengths.pop()
        if lengths or not (size.isascii() and size.isdigit()):
            raise http.client.HTTPException(f"bad Content-Length {length!r}")
        return status, fields, _read_exactly(rfile, int(size)), keep
    return status, fields, rfile.read(), False  # neither length nor chunks: the body ends when the server closes


class _Connection:
    """One kept HTTP/1.1 connection (a socket, TLS-wrapped for https)."""

    __slots__ = ("sock",)

    def __init__(self, scheme: str, host: str, port: int, timeout: float):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one write per request; no Nagle wait
            if scheme == "https":  # the handshake runs under the connect timeout, as it did with urllib3
                sock = _tls_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        self.sock.close()

    def dropped(self) -> bool:
        """Whether this idle connection is readable: the server closed it, or sent something unasked (a 408)."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True  # decrypted bytes nobody asked for
        poller = select.poll()  # poll rather than select: file descriptors above 1023 are fine
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """urllib3's client context (TLS 1.2+, no compression, certificate and host name checked) with certifi's
    CA bundle."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


@functools.lru_cache(maxsize=64)
def _origin(prefix: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, Host header) of ``scheme://authority``, as urllib3 keyed its pools and http.client
    wrote the Host field (the port only when it is not the scheme's default)."""
    parts = parse_url(prefix)
    scheme = (parts.scheme or "http").lower()
    if scheme not in _DEFAULT_PORTS:
        raise URLSchemeUnknown(scheme)
    if not parts.host:
        raise LocationValueError("No host specified.")
    host = parts.host.strip("[]")
    port = parts.port or _DEFAULT_PORTS[scheme]
    host_field = f"[{host.partition('%')[0]}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        host_field += f":{port}"
    return scheme, host, port, host_field


def _split(url: str) -> tuple[tuple[str, str, int, str], str]:
    """The origin and the request target of ``url``, the target exactly as urllib3 sent it."""
    slash = url.find("/", url.find("://") + 3) if "://" in url else -1
    if slash != -1:
        target = url[slash:]
        if _PLAIN_TARGET.match(target) and "/." not in target.partition("?")[0]:
            return _origin(url[:slash]), target
    parts = parse_url(url)
    return _origin(f"{parts.scheme or 'http'}://{parts.netloc or ''}"), parts.request_uri


def _request_bytes(method: str, target: str, host_field: str, headers: dict, body: bytes | None) -> bytes:
    """The request head (and a body) as http.client wrote them: Host, Accept-Encoding: identity and
    Content-Length first unless given, then the headers in order; names and values checked against injection."""
    if not _METHOD.match(method):
        raise ValueError(f"bad HTTP method {method!r}")
    names = {name.lower() for name in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append("Host: " + host_field)
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity")
    if "content-length" not in names and "transfer-encoding" not in names:
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method.upper() in _BODY_METHODS:
            lines.append("Content-Length: 0")
    for name, value in headers.items():
        value = str(value)
        if not _FIELD_NAME.match(name) or _BAD_VALUE.search(value):
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    head = "\r\n".join(lines).encode("latin-1")
    return head + body if body else head


def _kept() -> dict:
    """This thread's kept connections by origin, least recently used first."""
    kept = getattr(_kept_local, "connections", None)
    if kept is None:
        kept = _kept_local.connections = {}
    return kept


def _checkin(origin: tuple, conn: _Connection) -> None:
    kept = _kept()
    kept[origin] = conn
    if len(kept) > _MAX_KEPT:
        kept.pop(next(iter(kept))).close()


def channel_request(
    method: str,
    url: str,
    *,
    kind: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> ChannelResponse:
    """Send one HTTP request to a channel and return its raw answer (any status).

    Raises ``ChannelUnknown`` on timeouts and connection errors: the channel may have acted on the request.
    Status-code interpretation (5xx ⇒ unknown, 4xx ⇒ definite) is the adapter's job, since channels differ.
    ``connect_timeout`` bounds connecting (TCP and TLS handshake) and sending the request, ``read_timeout`` each
    wait for the answer's bytes; they default to AGGPAY_CHANNEL_CONNECT_TIMEOUT and AGGPAY_CHANNEL_READ_TIMEOUT.
    """
    request_id = "chq_" + secrets.token_hex(8)
    connect = connect_timeout if connect_timeout is not None else settings.AGGPAY_CHANNEL_CONNECT_TIMEOUT
    read = read_timeout if read_timeout is not None else settings.AGGPAY_CHANNEL_READ_TIMEOUT
    send_headers = {"User-Agent": "aggpay/1.0", "X-Aggpay-Request-Id": request_id, **(headers or {})}
    started = time.perf_counter()
    conn = None
    connecting = True
    try:
        origin, target = _split(url)
        data = _request_bytes(method, target, origin[3], send_headers, body)
        conn = _kept().pop(origin, None)  # out of the kept ones while in use
        if conn is not None and conn.dropped():
            conn.close()  # closed by the server while idle: nothing was sent on it; a new connection instead
            conn = None
        if conn is None:
            conn = _Connection(*origin[:3], timeout=connect)
        else:
            conn.sock.settimeout(connect)
        connecting = False
        try:
            conn.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # as urllib3: the server may have answered (a 413, say) and closed; read what it said, if anything
        conn.sock.settimeout(read)
        # A buffered reader per answer, as http.client has: bytes the server sent past the answer go with it.
        with conn.sock.makefile("rb") as rfile:
            status, fields, content, keep = _read_answer(rfile, method)
    except TimeoutError as exc:  # socket.timeout: on connect, TLS handshake, send or read
        if conn is not None:
            conn.close()
        elapsed = (time.perf_counter() - started) * 1000
        metrics.record(kind, "timeout", elapsed)
        logger.warning("%s %s %s timeout after %.0f ms (%s)", kind, method, _path(url), elapsed, request_id)
        _record_exchange(method, url, body)
        name = "ConnectTimeoutError" if connecting else "ReadTimeoutError"
        raise ChannelUnknown(f"{kind} did not answer in time: {name}") from exc
    except (OSError, http.client.HTTPException, URLError) as exc:  # OSError covers ssl.SSLError
        if conn is not None:
            conn.close()
        elapsed = (time.perf_counter() - started) * 1000
        metrics.record(kind, "connection_error", elapsed)
        logger.warning("%s %s %s connection error %s (%s)", kind, method, _path(url), type(exc).__name__, request_id)
        _record_exchange(method, url, body)
        raise ChannelUnknown(f"{kind} could not be reached: {type(exc).__name__}") from exc
    except BaseException:
        if conn is not None:
            conn.close()  # half a request or answer may be on it
        raise
    if keep:
        _checkin(origin, conn)
    else:
        conn.close()
    elapsed = (time.perf_counter() - started) * 1000
    metrics.record(kind, str(status // 100) + "xx", elapsed)
    _record_exchange(method, url, body, status, content)
    # A 5xx is the channel in trouble (design §5: an unknown outcome, settled on the ladder) and is logged as a
    # timeout is, at WARNING, so an operator's alerting sees it. Bug: logged at INFO like a 200, an outage of 5xx
    # answers was invisible to an on-call person reading warnings; only the trade timeline showed it.
    level = logging.WARNING if status >= 500 else logging.INFO
    if logger.isEnabledFor(level):  # redacting both bodies costs more than the rest of this function
        logger.log(
            level, "%s %s %s -> %s in %.0f ms (%s) req=%s resp=%s",
            kind, method, _path(url), status, elapsed, request_id,
            redact(_readable(body), 500), redact(_readable(content), 500),
        )
    return ChannelResponse(
        status=status,
        headers=fields,
        body=content,
        elapsed_ms=elapsed,
        request_id=request_id,
    )


def _text_of(data: bytes | None) -> str:
    if not data:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes of binary content>"


@dataclass(frozen=True)
class Exchange:
    """One request sent to a channel and what came back (``status`` 0 and no ``answer``: it did not answer)."""

    method: str
    url: str
    request: bytes
    status: int = 0
    answer: bytes = b""


_recording: ContextVar[list[Exchange] | None] = ContextVar("channel_exchanges", default=None)


@contextmanager
def recording_exchanges():
    """Collect every exchange ``channel_request`` makes inside the block, in order, for the trade timeline: issue 5
    asks for "each channel call with request and answer redacted". Keeps the bytes as they were; redaction is
    ``exchange_request_text`` / ``exchange_answer_text``'s, done once when the call is recorded."""
    exchanges: list[Exchange] = []
    token = _recording.set(exchanges)
    try:
        yield exchanges
    finally:
        _recording.reset(token)


def _record_exchange(method: str, url: str, body: bytes | None, status: int = 0, answer: bytes = b"") -> None:
    exchanges = _recording.get()
    if exchanges is not None:
        exchanges.append(Exchange(method, url, body or b"", status, answer or b""))


def _readable(data: bytes) -> str:
    """A body as a person reads it: JSON as it is; a form (Alipay's B.1 requests, the bank's answers) as a JSON
    object whose JSON-valued fields (Alipay's ``biz_content``) are objects too — so ``redact`` finds the keys
    inside them, which a percent-encoded ``biz_content`` would hide from it."""
    text = _text_of(data)
    if not text or text[:1] in "{[" or "=" not in text:
        return text
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return text
    fields: dict = {}
    for key, value in pairs:
        if value[:1] in "{[":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        fields[key] = value
    return json.dumps(fields, ensure_ascii=False)


def exchange_request_text(exchanges: list[Exchange], limit: int = 4000) -> str:
    """What we sent, redacted: ``METHOD url`` and the body of each request (a query string's secrets are masked as
    a form's are)."""
    parts = []
    for exchange in exchanges:
        line = f"{exchange.method} {exchange.url}"
        parts.append(line + ("\n" + _readable(exchange.request) if exchange.request else ""))
    return redact("\n\n".join(parts), limit)


def exchange_answer_text(exchanges: list[Exchange], limit: int = 4000) -> str:
    """What the channel answered, redacted: ``HTTP status`` and the body of each answer (for calls whose parsed
    answer is empty: a refusal, an error page, no answer at all)."""
    parts = [(f"HTTP {e.status}\n" + _readable(e.answer)) if e.status else "no answer" for e in exchanges]
    return redact("\n\n".join(parts), limit)


def _path(url: str) -> str:
    # Log the path only: query strings can hold tokens (app_auth_token in Alipay GETs).
    return url.split("?", 1)[0]

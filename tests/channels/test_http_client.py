"""channels.adapters.http's own HTTP/1.1 client, against real loopback servers (nothing of ours is mocked).

A scripted server answers each request it reads with the next raw answer of its script, so the tests can give
exactly the bytes a channel gateway might: repeated and mixed-case header names, chunked bodies, a closed kept
connection, no answer at all. Where urllib3 (the client this module used before) is the reference, it is asked
the same question over the same socket server and the answers compared.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time

import pytest
import urllib3
from requests.structures import CaseInsensitiveDict
from urllib3.util import parse_url

from channels.adapters import http
from channels.adapters.errors import ChannelUnknown

CLOSE = object()  # script item: close the connection without answering (the request was read)
HANG = object()  # script item: read the request, never answer


def _ok(body: bytes = b"ok", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode("latin-1") + body


class ScriptedServer:
    """Loopback HTTP/1.x server: for each request read (head, then a Content-Length body) it sends the next item
    of ``script`` — raw bytes, or ``(bytes, "close")`` to close after it, or CLOSE / HANG."""

    def __init__(self, script, *, tls: ssl.SSLContext | None = None):
        self.script = list(script)
        self.tls = tls
        self.requests: list[tuple[int, bytes]] = []  # (connection number, raw request)
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/v3/x") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def _accept(self):
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int):
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.open.append(sock)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                with self.lock:
                    self.requests.append((number, head + b"\r\n\r\n" + body))
                    item = self.script.pop(0) if self.script else CLOSE
                if item is CLOSE:
                    return
                if item is HANG:
                    self.stopped.wait(10)
                    return
                close = isinstance(item, tuple)
                sock.sendall(item[0] if close else item)
                if close:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()

    def close_connections(self):
        for sock in self.open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.stopped.set()
        self.listener.close()
        self.close_connections()


@pytest.fixture
def serve():
    servers = []

    def start(script, **kwargs) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _no_kept_connections():
    """Each test starts and ends with this thread holding no kept connection."""
    kept = http._kept()
    for conn in kept.values():
        conn.close()
    kept.clear()
    yield
    for conn in kept.values():
        conn.close()
    kept.clear()


def call(url: str, method: str = "GET", **kwargs) -> http.ChannelResponse:
    kwargs.setdefault("read_timeout", 5)
    return http.channel_request(method, url, kind="testkind", **kwargs)


# --- header fields ----------------------------------------------------------------------------------------------
HEADER_BLOCKS = [
    "X-Dup: a\r\nx-dup: b\r\nX-DUP: c\r\n",
    "Wechatpay-Serial: PUB_KEY_ID_1\r\nwechatpay-nonce: n1\r\nWECHATPAY-TIMESTAMP: 1700000000\r\n",
    "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
    "X-Spaces:   padded value  \r\nX-Empty:\r\nX-Tab:\tt\r\n",
    "X-Fold: first\r\n  second\r\n\tthird\r\n",
    "X-Latin: caf\xe9\r\n",
    "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n",
]


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_header_fields_come_back_as_urllib3_joined_them(serve, block):
    answer = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + block + "\r\nok").encode("latin-1")
    server = serve([answer, answer])
    ours = call(server.url())
    with urllib3.PoolManager() as pool:
        theirs = pool.request("GET", server.url(), retries=False, redirect=False)
    assert ours.status == theirs.status == 200 and ours.body == theirs.data == b"ok"
    reference = CaseInsensitiveDict(theirs.headers)
    assert list(ours.headers.items()) == list(reference.items())  # same names (first spelling), values, order


def test_repeated_and_mixed_case_names_are_joined_and_found_in_any_case(serve):
    server = serve([_ok(extra="X-Dup: a\r\nx-dup: b\r\nWechatpay-Signature: sig\r\n")])
    headers = call(server.url()).headers
    assert headers["X-DUP"] == headers.get("x-dup") == "a, b"
    assert [name for name in headers if name.lower() == "x-dup"] == ["X-Dup"]
    assert headers.get("wechatpay-signature") == headers.get("WECHATPAY-SIGNATURE") == "sig"
    assert headers.get("missing") is None


# --- framing and keep-alive ---------------------------------------------------------------------------------------
def test_content_length_answers_keep_the_connection(serve):
    server = serve([_ok(b"one"), _ok(b"two"), _ok(b"three")])
    assert [call(server.url()).body for _ in range(3)] == [b"one", b"two", b"three"]
    assert server.connections == 1


def test_chunked_answer_with_extensions_and_trailer_then_the_connection_is_reused(serve):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
               b"5\r\n{\"a\":\r\n" b"3;ext=1\r\n 1}\r\n" b"0\r\nX-Trailer: t\r\n\r\n")
    server = serve([chunked, _ok(b"after")])
    first = call(server.url())
    assert first.status == 200 and first.body == b'{"a": 1}'
    assert call(server.url()).body == b"after"
    assert server.connections == 1


def test_connection_close_answer_and_close_delimited_body(serve):
    server = serve([(_ok(b"bye", "Connection: close\r\n"), "close"),
                    (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", "close"),
                    _ok(b"fresh")])
    assert call(server.url()).body == b"bye"
    assert call(server.url()).body == b"until the end"
    assert call(server.url()).body == b"fresh"
    assert server.connections == 3


def test_interim_100_continue_head_and_no_content(serve):
    server = serve([b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"final"),
                    b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",  # answer to HEAD: no body follows
                    _ok(b"still in step")])
    assert call(server.url()).body == b"final"
    answer = call(server.url(), "DELETE")
    assert (answer.status, answer.body, answer.headers["x-a"]) == (204, b"", "1")
    assert call(server.url(), "HEAD").body == b""
    assert call(server.url()).body == b"still in step"
    assert server.connections == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",  # cut short
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",  # conflicting lengths
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",  # bad chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  # chunk cut short
    b"NOT HTTP\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
])
def test_malformed_answers_are_unknown(serve, answer):
    server = serve([(answer, "close")])
    with pytest.raises(ChannelUnknown, match="could not be reached"):
        call(server.url())


def test_duplicate_equal_content_lengths_are_one(serve):
    server = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"])
    assert call(server.url()).body == b"ok"


# --- a closed kept connection, no retries -------------------------------------------------------------------------
def test_server_closing_the_kept_connection_between_calls_gets_a_new_connection(serve):
    server = serve([_ok(b"first"), _ok(b"second")])
    assert call(server.url(), "POST", body=b'{"n":1}').body == b"first"
    server.close_connections()  # the gateway's idle timeout
    time.sleep(0.05)
    assert call(server.url(), "POST", body=b'{"n":2}').body == b"second"
    assert server.connections == 2
    # Each request reached the server exactly once, the second on the new connection only.
    assert [(number, raw.endswith(body)) for (number, raw), body in zip(server.requests, (b'{"n":1}', b'{"n":2}'),
                                                                       strict=True)] == [(1, True), (2, True)]


def test_no_answer_after_the_request_was_sent_is_unknown_and_not_repeated(serve):
    server = serve([CLOSE, _ok(b"must not be reached")])
    before = http.metrics.calls[("testkind", "connection_error")]
    with pytest.raises(ChannelUnknown, match="could not be reached: RemoteDisconnected"):
        call(server.url(), "POST", body=b'{"amount":1}')
    assert len(server.requests) == 1
    assert http.metrics.calls[("testkind", "connection_error")] == before + 1
    assert call(server.url()).body == b"must not be reached"  # the next call works on a new connection


def test_connection_refused_is_unknown():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(ChannelUnknown, match="could not be reached: ConnectionRefusedError"):
        call(f"http://127.0.0.1:{port}/v3/x")


def test_each_thread_has_its_own_connection(serve):
    server = serve([_ok(b"a"), _ok(b"b"), _ok(b"c"), _ok(b"d")])
    bodies = []

    def twice():
        bodies.extend(call(server.url()).body for _ in range(2))

    threads = [threading.Thread(target=twice) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(bodies) == [b"a", b"b", b"c", b"d"]
    assert server.connections == 2


def test_a_server_error_is_logged_as_a_warning_and_a_success_is_not(serve, caplog):
    server = serve([b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", _ok(b"fine")])
    with caplog.at_level("INFO", logger=http.logger.name):
        assert call(server.url()).status == 503
        assert call(server.url()).status == 200
    levels = [(record.levelname, record.getMessage().split(" in ")[0].rsplit("/", 1)[-1]) for record in caplog.records
              if record.name == http.logger.name]
    assert levels == [("WARNING", "x -> 503"), ("INFO", "x -> 200")]


# --- timeouts ---------------------------------------------------------------------------------------------------
def test_read_timeout_is_unknown(serve):
    server = serve([HANG])
    before = http.metrics.calls[("testkind", "timeout")]
    started = time.monotonic()
    with pytest.raises(ChannelUnknown, match="did not answer in time: ReadTimeoutError"):
        call(server.url(), "POST", body=b"{}", read_timeout=0.3)
    assert 0.25 < time.monotonic() - started < 3
    assert http.metrics.calls[("testkind", "timeout")] == before + 1
    assert len(server.requests) == 1


def test_timeouts_default_to_the_settings(serve, settings):
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 0.3
    settings.AGGPAY_CHANNEL_CONNECT_TIMEOUT = 0.3
    server = serve([HANG])
    started = time.monotonic()
    with pytest.raises(ChannelUnknown, match="ReadTimeoutError"):
        http.channel_request("GET", server.url(), kind="testkind")
    assert 0.25 < time.monotonic() - started < 3


def test_connect_timeout_is_unknown():
    # A listener whose accept queue is full drops further SYNs (Linux), so connecting hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.1)
        probe = socket.socket()
        probe.settimeout(0.2)
        try:
            probe.connect(listener.getsockname())
        except TimeoutError:
            pass
        else:
            pytest.skip("this kernel accepted the connection: cannot provoke a connect timeout")
        finally:
            probe.close()
        started = time.monotonic()
        with pytest.raises(ChannelUnknown, match="did not answer in time: ConnectTimeoutError"):
            call(f"http://127.0.0.1:{listener.getsockname()[1]}/v3/x", connect_timeout=0.3, read_timeout=10)
        assert 0.25 < time.monotonic() - started < 3
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --- the request as sent ----------------------------------------------------------------------------------------
def test_request_head_is_what_http_client_wrote(serve):
    server = serve([_ok(), _ok(), _ok()])
    answer = call(server.url("/v3/pay?x=1"), "POST", body=b'{"a":1}', headers={"Content-Type": "application/json"})
    call(server.url("/v3/close"), "POST")
    call(server.url("/v3/q"), "GET", headers={"Accept": "application/json"})
    heads = [raw.split(b"\r\n\r\n")[0].decode().split("\r\n") for _, raw in server.requests]
    host = f"Host: 127.0.0.1:{server.port}"
    assert heads[0] == ["POST /v3/pay?x=1 HTTP/1.1", host, "Accept-Encoding: identity", "Content-Length: 7",
                        "User-Agent: aggpay/1.0", f"X-Aggpay-Request-Id: {answer.request_id}",
                        "Content-Type: application/json"]
    assert server.requests[0][1].endswith(b'\r\n\r\n{"a":1}')
    assert heads[1][:4] == ["POST /v3/close HTTP/1.1", host, "Accept-Encoding: identity", "Content-Length: 0"]
    assert heads[2][:3] == ["GET /v3/q HTTP/1.1", host, "Accept-Encoding: identity"]
    assert not any(line.startswith("Content-Length") for line in heads[2])


def test_header_injection_is_refused(serve):
    server = serve([_ok()])
    with pytest.raises(ValueError):
        call(server.url(), headers={"X-Evil": "a\r\nX-Injected: 1"})
    assert server.requests == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8100/v3/pay/partner/transactions/native",
    "http://127.0.0.1:8100/v3/refund/domestic/refunds/R1?sub_mchid=1900000109",
    "https://openapi.alipay.com/gateway.do?charset=utf-8&method=alipay.trade.query&sign=a%2Bb%3D%3D",
    "https://api.mch.weixin.qq.com/v3/x?a=%2f&b=c d",
    "https://api.mch.weixin.qq.com/v3/ü/./x/../y#fragment",
    "https://API.example.COM:443/a/.well-known/x",
    "http://example.com",
    "http://example.com?x=1",
    "http://example.com:8080/a?",
    "HTTPS://Example.com/%7e",
    "http://[::1]:8443/v3",
])
def test_request_target_and_origin_as_urllib3_normalised_them(url):
    origin, target = http._split(url)
    reference = parse_url(url)
    assert target == reference.request_uri
    assert origin[:3] == (reference.scheme.lower(), reference.host.strip("[]"),
                          reference.port or {"http": 80, "https": 443}[reference.scheme.lower()])


def test_unsupported_scheme_is_unknown():
    with pytest.raises(ChannelUnknown, match="could not be reached"):
        call("ftp://127.0.0.1/x")


# --- TLS --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aggpay test gateway")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return server, (folder / "cert.pem").read_text()


def test_tls_certificates_are_verified_against_certifi(serve, certificates):
    server_context, _ = certificates
    server = serve([_ok()], tls=server_context)
    with pytest.raises(ChannelUnknown, match="could not be reached: SSLCertVerificationError"):
        call(server.url())


@pytest.fixture
def trusting_test_ca(certificates):
    """The client's TLS context with the test CA added; rebuilt from certifi alone afterwards."""
    http._tls_context.cache_clear()
    http._tls_context().load_verify_locations(cadata=certificates[1])
    yield
    http._tls_context.cache_clear()


def test_https_with_a_trusted_certificate_keeps_the_connection(serve, certificates, trusting_test_ca):
    server = serve([_ok(b"one", "X-Dup: a\r\nx-dup: b\r\n"), _ok(b"two")], tls=certificates[0])
    first = call(server.url(), "POST", body=b"{}")
    assert (first.body, first.headers["x-dup"]) == (b"one", "a, b")
    assert call(server.url()).body == b"two"
    assert server.connections == 1


def test_https_host_name_is_checked(serve, certificates, trusting_test_ca):
    server = serve([_ok()], tls=certificates[0])
    with pytest.raises(ChannelUnknown, match="could not be reached: SSLCertVerificationError"):
        call(f"https://localhost:{server.port}/v3/x")  # the certificate names 127.0.0.1 only


def test_it_masks_the_payer_under_every_name_the_channels_give_it():
    from channels.adapters.http import redact

    wechat = '{"payer":{"sp_openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","sub_openid":"oXyz0000payer"},"amount":{"total":1}}'
    alipay = ("buyer_logon_id=159****5620&buyer_open_id=074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
              "&buyer_user_id=2088102177846880&total_amount=0.01")
    bank = '{"payer_id":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","payer_name":"张三","amount":100}'
    masked = redact(wechat) + redact(alipay) + redact(bank)
    for secret in ("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oXyz0000payer", "159****5620", "074a1CcTG1LelxKe4xQC0zgNdId0",
                   "2088102177846880", "张三"):
        assert secret not in masked
    assert '"total":1' in masked and "total_amount=0.01" in masked and '"amount":100' in masked


def test_it_leaves_no_nul_in_a_redacted_text_and_still_masks_a_secret_past_the_part_it_checks_for_binary():
    from channels.adapters.http import redact

    # What redact() returns is stored (a channel call's answer, an audit row's jsonb), which holds no NUL.
    text = '{"message":"' + "x" * 300 + '\x00tail","sign":"c2VjcmV0\x00c2lnbg==","total":1}'
    masked = redact(text)
    assert "\x00" not in masked and "c2VjcmV0" not in masked
    assert "\ufffdtail" in masked and '"total":1' in masked

"""The one function all outbound HTTP to channels goes through (design §6; healthchecks' hc/lib/curl.py).

Timeouts on connect and read, a request id per call, a log line per call with secrets and PII redacted, and
metrics (count and latency per channel kind and outcome). Tests patch ``channel_request`` itself, never
``requests`` or ``urllib3`` globally. Transport failures surface as ``ChannelUnknown`` (design §5 rule 2).

Connections are kept: each thread holds a urllib3 pool per channel host, as the channels' own SDKs keep one HTTP
client (wechatpay-go ``core/client.go``, the Alipay SDKs' pooled clients) and their gateways speak HTTP/1.1 with
keep-alive (channel-protocols.md A.1, B.1). urllib3 rather than a requests Session: requests spent more of the
process's time per call (settings merging, hooks, cookies, adapters) than the call's own HTTP, and none of it is
needed here — no cookies, no redirects, no proxies from the environment.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import certifi
import urllib3
from django.conf import settings
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import TimeoutError as TransportTimeout

from channels.adapters.errors import ChannelUnknown

logger = logging.getLogger("aggpay.channels.http")

_pools_local = threading.local()

# Keys whose values never reach a log line (secrets, signatures, PII). Matched case-insensitively in JSON,
# form bodies and headers.
REDACT_KEYS = (
    "authorization", "signature", "sign", "paysign", "private_key", "app_auth_token", "auth_code", "apiv3_key",
    "account_number", "account_name", "id_card_number", "id_card_name", "id_doc_number", "id_doc_name",
    "contact_name", "contact_id_number", "mobile_phone", "contact_email", "cert_no", "card_no", "phone",
    "ciphertext", "payer_phone", "bank_account", "openid", "buyer_id", "user_id", "access_token", "refresh_token", "open_id",
    "user_auth_code", "id_no", "account_no", "mobile", "file_content",
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
    return text[:limit] + ("…" if len(text) > limit else "")


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


def _pools() -> urllib3.PoolManager:
    """This thread's connection pools (one kept connection per channel host; more are opened if ever needed)."""
    pools = getattr(_pools_local, "pools", None)
    if pools is None:
        # Environment proxies are not consulted (channels are reached directly); certificates are checked against
        # the same CA bundle requests used.
        pools = urllib3.PoolManager(num_pools=16, maxsize=1, block=False, ca_certs=certifi.where(),
                                    cert_reqs="CERT_REQUIRED")
        _pools_local.pools = pools
    return pools


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
    """
    request_id = "chq_" + secrets.token_hex(8)
    timeout = urllib3.Timeout(
        connect=connect_timeout if connect_timeout is not None else settings.AGGPAY_CHANNEL_CONNECT_TIMEOUT,
        read=read_timeout if read_timeout is not None else settings.AGGPAY_CHANNEL_READ_TIMEOUT,
    )
    send_headers = {"User-Agent": "aggpay/1.0", "X-Aggpay-Request-Id": request_id, **(headers or {})}
    started = time.perf_counter()
    try:
        # No retries (a repeated POST could move money twice) and no redirects: a channel answers where it is asked.
        resp = _pools().request(method, url, headers=send_headers, body=body, timeout=timeout, retries=False,
                                redirect=False, preload_content=True)
    except TransportTimeout as exc:
        elapsed = (time.perf_counter() - started) * 1000
        metrics.record(kind, "timeout", elapsed)
        logger.warning("%s %s %s timeout after %.0f ms (%s)", kind, method, _path(url), elapsed, request_id)
        raise ChannelUnknown(f"{kind} did not answer in time: {type(exc).__name__}") from exc
    except (TransportError, OSError) as exc:
        elapsed = (time.perf_counter() - started) * 1000
        metrics.record(kind, "connection_error", elapsed)
        logger.warning("%s %s %s connection error %s (%s)", kind, method, _path(url), type(exc).__name__, request_id)
        raise ChannelUnknown(f"{kind} could not be reached: {type(exc).__name__}") from exc
    elapsed = (time.perf_counter() - started) * 1000
    content = resp.data
    metrics.record(kind, str(resp.status // 100) + "xx", elapsed)
    if logger.isEnabledFor(logging.INFO):  # redacting both bodies costs more than the rest of this function
        logger.info(
            "%s %s %s -> %s in %.0f ms (%s) req=%s resp=%s",
            kind, method, _path(url), resp.status, elapsed, request_id,
            redact(_text_of(body), 500), redact(_text_of(content), 500),
        )
    return ChannelResponse(
        status=resp.status,
        headers=CaseInsensitiveDict(resp.headers),
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


def _path(url: str) -> str:
    # Log the path only: query strings can hold tokens (app_auth_token in Alipay GETs).
    return url.split("?", 1)[0]

"""A minimal WSGI toolkit for the simulators: request, response, a regex router, fault injection.

Faults (design §6): a rule ``{"match": {...}, "fault": ..., "times": n}`` registered through
``POST /<kind>/_control/faults`` applies to the next ``n`` matching requests. Matches: ``path`` (regex on the path),
``method``, ``contains`` (substring of body or query — e.g. an out_trade_no or sub_mchid). Faults:
``latency`` (``seconds``, then answer normally), ``timeout`` (sleep ``seconds``, default 30, then drop),
``http_500``, ``http_503``, ``html_error`` (an HTML error page with ``status``, default 404, as a proxy or load
balancer in front of the channel answers: no channel code, no signature), ``bad_signature`` (sign the answer wrongly), ``signtest`` (WeChat's
``WECHATPAY/SIGNTEST/`` probe signature), ``business_error`` (``code``/``message``/``status`` in the kind's format),
``truncated_file`` (a bill download cut short: half the file, its Content-Length saying that is all), and for
callbacks ``duplicate_callback``, ``out_of_order_callback``, ``callback_bad_signature`` (Alipay also
``stale_callback``: a correctly signed notify stamped ``seconds`` in the past).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from channels.simulators.store import Store

REASONS = {status.value: status.phrase for status in HTTPStatus}  # status line reason phrases, looked up per answer


@dataclass
class SimRequest:
    method: str
    path: str  # path inside the simulator kind (e.g. /v3/pay/partner/transactions/native)
    query_string: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    script_name: str = ""  # mount prefix, e.g. /_sim/wechatpay
    host_url: str = ""  # scheme://host:port as the client reached us
    match: re.Match | None = None
    faults: list[dict] = field(default_factory=list)

    @property
    def target(self) -> str:
        """The request target as the client signed it: full path (with mount prefix) and raw query."""
        full = self.script_name + self.path
        return full + ("?" + self.query_string if self.query_string else "")

    @property
    def base_url(self) -> str:
        return self.host_url + self.script_name

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def fault(self, name: str) -> dict | None:
        return next((f for f in self.faults if f.get("fault") == name), None)


@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict | None = None) -> SimResponse:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> SimResponse:
        return cls(status, text.encode("utf-8"), {"Content-Type": content_type})

    @classmethod
    def html(cls, text: str, status: int = 200) -> SimResponse:
        return cls.text(text, status, "text/html; charset=utf-8")


Handler = Callable[[SimRequest], SimResponse]


class FaultBook:
    """Registered fault rules, persisted in the store so a separate simulator process honours them."""

    def __init__(self, store: Store, kind: str):
        self.store = store
        self.ns = f"{kind}:faults"
        self._lock = threading.Lock()

    def add(self, rule: dict) -> str:
        rule_id = f"f{int(time.time() * 1000)}{len(self.store.items(self.ns))}"
        rule.setdefault("times", 1)
        self.store.put(self.ns, rule_id, rule)
        return rule_id

    def clear(self) -> None:
        self.store.clear(self.ns)

    def take(self, *, method: str, path: str, haystack: str, phase: str = "request") -> list[dict]:
        """Consume and return the rules that match this request (or callback, with phase='callback')."""
        hits = []
        with self._lock:
            for rule_id, rule in self.store.items(self.ns):
                if rule.get("phase", "request") != phase:
                    continue
                match = rule.get("match") or {}
                if "method" in match and match["method"].upper() != method.upper():
                    continue
                if "path" in match and not re.search(match["path"], path):
                    continue
                if "contains" in match and match["contains"] not in haystack:
                    continue
                hits.append(rule)
                times = int(rule.get("times", 1))
                if times <= 1:
                    self.store.delete(self.ns, rule_id)
                else:
                    rule["times"] = times - 1
                    self.store.put(self.ns, rule_id, rule)
        return hits


class SimulatorApp:
    """Base WSGI app of one channel kind. Subclasses register routes with ``self.route``."""

    kind = ""

    def __init__(self, store: Store):
        self.store = store
        self.faults = FaultBook(store, self.kind)
        self.routes: list[tuple[str, re.Pattern, Handler]] = []
        self.route("POST", r"/_control/faults", self._control_add_fault)
        self.route("DELETE", r"/_control/faults", self._control_clear_faults)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method.upper(), re.compile("^" + pattern + "$"), handler))

    # -- fault hooks the subclass may override --------------------------------------------------------
    def business_error(self, request: SimRequest, rule: dict) -> SimResponse:
        return SimResponse.json({"code": rule.get("code", "SYSTEM_ERROR"), "message": rule.get("message", "")},
                                status=int(rule.get("status", 400)))

    def finalize(self, request: SimRequest, response: SimResponse) -> SimResponse:
        """Sign the response (subclasses); ``request.fault('bad_signature')`` asks for a wrong signature."""
        return response

    # -- control ---------------------------------------------------------------------------------------
    def _control_add_fault(self, request: SimRequest) -> SimResponse:
        rule = request.json()
        if "fault" not in rule:
            return SimResponse.json({"error": "fault is required"}, 400)
        return SimResponse.json({"id": self.faults.add(rule)}, 201)

    def _control_clear_faults(self, request: SimRequest) -> SimResponse:
        self.faults.clear()
        return SimResponse(204)

    # -- dispatch --------------------------------------------------------------------------------------
    def handle(self, request: SimRequest) -> SimResponse:
        is_control = request.path.startswith("/_control/") or request.path.startswith("/_payer/")
        if not is_control:
            haystack = request.query_string + "\n" + request.body.decode("utf-8", "replace")
            request.faults = self.faults.take(method=request.method, path=request.path, haystack=haystack)
            for rule in request.faults:
                if rule["fault"] == "latency":
                    time.sleep(float(rule.get("seconds", 1)))
                elif rule["fault"] == "timeout":
                    time.sleep(float(rule.get("seconds", 30)))
                    return SimResponse(504, b"")  # the client has long given up
                elif rule["fault"] in ("http_500", "http_503"):
                    return SimResponse.text("simulated server error", int(rule["fault"][-3:]))
                elif rule["fault"] == "html_error":
                    status = int(rule.get("status", 404))
                    return SimResponse.html(f"<html><body><h1>{status} {REASONS.get(status, 'Error')}</h1>"
                                            "<hr><center>nginx</center></body></html>", status)
                elif rule["fault"] == "business_error":
                    return self.finalize(request, self.business_error(request, rule))
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.match = match
            response = handler(request)
            return response if is_control else self.finalize(request, response)
        if allowed:
            return SimResponse.text("method not allowed", 405)
        return SimResponse.json({"code": "NOT_FOUND", "message": f"no route {request.method} {request.path}"}, 404)

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        request = request_from_environ(environ)
        response = self.handle(request)
        reason = REASONS.get(response.status, "X")
        headers = list(response.headers.items()) + [("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {reason}", headers)
        return [response.body]


def request_from_environ(environ: dict) -> SimRequest:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}"
    raw_path = environ.get("PATH_INFO", "/")
    # PATH_INFO is latin-1-decoded bytes per PEP 3333; recover the UTF-8 path.
    path = raw_path.encode("latin-1").decode("utf-8", "replace")
    return SimRequest(
        method=environ["REQUEST_METHOD"].upper(),
        path=path,
        query_string=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
        script_name=environ.get("SCRIPT_NAME", ""),
        host_url=f"{environ.get('wsgi.url_scheme', 'http')}://{host}",
    )

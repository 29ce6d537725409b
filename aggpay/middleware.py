"""Request ids: every response carries ``X-Request-Id`` (merchant-api.md Conventions) and every log line has it."""

from __future__ import annotations

import contextvars
import logging
import re
import secrets

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("aggpay_request_id", default="-")
# An incoming id is written into responses, logs and audit rows (AuditLog.request_id holds 64): 8–64 characters of
# a safe set, the whole value — ``fullmatch``, since ``$`` also matches before a trailing newline, which let
# "id\n" through to be refused by the response header (a 500) and split a log line.
_VALID_INCOMING = re.compile(r"[A-Za-z0-9._-]{8,64}")


def current_request_id() -> str:
    return _request_id.get()


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class RequestIdMiddleware:
    """Takes a well-formed incoming X-Request-Id (from a load balancer) or makes one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _VALID_INCOMING.fullmatch(incoming) else new_request_id()
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-Id"] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True

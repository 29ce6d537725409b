"""The error envelope (merchant-api.md "Errors"): one exception handler maps every failure to it.

``{"error": {"code", "message", "param", "channel_code", "channel_message", "request_id"}}`` with the request id
that is also in the ``X-Request-Id`` header, so a merchant quoting it lets support find the log lines.

Beyond the contract's table we answer ``405 method_not_allowed`` (a known path with a method it does not
serve): it is neither a bad field (400) nor a missing object (404), and HTTP requires 405 there.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from aggpay.api.renderers import JSON_CONTENT_TYPE
from aggpay.errors import ApplicationError, ChannelRefused
from aggpay.middleware import current_request_id

logger = logging.getLogger(__name__)

AUTH_CODES = frozenset({"unknown_app", "invalid_signature", "timestamp_out_of_window", "nonce_reused"})

# Every code the API can answer: the contract's table plus the two additions explained above and in docs/api.md.
ERROR_CODES = (
    "invalid_request", "invalid_signature", "timestamp_out_of_window", "nonce_reused", "unknown_app",
    "forbidden", "risk_rejected", "not_found", "method_not_allowed", "idempotency_conflict", "invalid_state",
    "refund_amount_exceeded", "product_not_available", "rate_limited", "channel_error", "internal_error",
)


def envelope(
    code: str,
    message: str,
    *,
    param: str | None = None,
    channel_code: str | None = None,
    channel_message: str | None = None,
    request_id: str | None = None,
) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "param": param,
            "channel_code": channel_code,
            "channel_message": channel_message,
            "request_id": request_id or current_request_id(),
        }
    }


def _request_id(context: dict) -> str:
    request = context.get("request")
    return getattr(request, "request_id", None) or current_request_id()


def param_name(path: tuple[str | int, ...]) -> str | None:
    """The ``param`` of an error at ``path``: fields dotted, list items by index in brackets —
    ``("settlement_account", "account_number")`` → ``settlement_account.account_number``, ``("scenarios", 0,
    "url")`` → ``scenarios[0].url``, the shape docs/api.md shows and merchants.services.record writes. None for the
    top level. Bug: DRF's errors came out ``scenarios.0.type`` while the record's checks said ``scenarios[0].url``,
    two shapes on one resource."""
    name = ""
    for part in path:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or None


def first_error(detail, path: tuple[str | int, ...] = ()) -> tuple[str | None, str]:
    """The first offending field of a DRF error detail (named by ``param_name``), and its message.

    ``{"payer": {"openid": ["This field is required."]}}`` → ("payer.openid", "This field is required.").
    Errors not tied to a field (``non_field_errors``) give no param.
    """
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value in (None, {}, []):
                continue
            # A ListField's errors are keyed by the item's index (an int), a DictField's by its key (a str).
            key_path = path if key == api_settings.NON_FIELD_ERRORS_KEY else (
                *path, key if isinstance(key, int) else str(key))
            return first_error(value, key_path)
    elif isinstance(detail, list):
        nested = any(isinstance(item, dict | list) for item in detail)
        for index, item in enumerate(detail):
            if item in (None, {}, []):
                continue
            # A list of dicts/lists is one error per item (many=True, ListField); a list of strings is the
            # messages of the field itself.
            return first_error(item, (*path, index) if nested else path)
    else:
        return (param_name(path), str(detail))
    return (param_name(path), "invalid input")


def _describe(param: str | None, message: str) -> str:
    return f"{param}: {message}" if param else message


def _media_type_message(request) -> str:
    """The refusal of a body that is not declared JSON, saying what was declared. Bug: "send the body as
    application/json" alone left a merchant whose HTTP client chose the type (Node's fetch sends a string as
    text/plain;charset=UTF-8) looking at JSON it had sent. No ``param``: ``param`` names fields of the body or the
    query, never a header (docs/api.md "Errors"), as for the charset (aggpay.api.parsers)."""
    declared = (getattr(request, "content_type", "") or "").strip() if request is not None else ""
    if not declared:
        return "Content-Type: send the body as application/json; the request has no Content-Type"
    shown = declared if len(declared) <= 80 and declared.isprintable() else repr(declared[:80])
    return f"Content-Type: send the body as application/json, not {shown}"


def _translate(exc: Exception, request=None) -> tuple[int, dict, dict]:
    """exception → (status, envelope fields, extra headers). ``request`` (the context's, if any) lets a refusal
    name what the request sent."""
    if isinstance(exc, ChannelRefused):
        return exc.status, {"code": exc.code, "message": exc.message, "param": exc.param,
                            "channel_code": exc.channel_code, "channel_message": exc.channel_message}, {}
    if isinstance(exc, ApplicationError):
        return exc.status, {"code": exc.code, "message": exc.message, "param": exc.param}, {}
    if isinstance(exc, exceptions.ValidationError):
        param, message = first_error(exc.detail)
        return 400, {"code": "invalid_request", "message": _describe(param, message), "param": param}, {}
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        param, message = first_error(detail)
        return 400, {"code": "invalid_request", "message": _describe(param, message), "param": param}, {}
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else ""
        if code not in AUTH_CODES:
            code = "invalid_signature"  # e.g. NotAuthenticated: nothing usable was sent
        headers = {"WWW-Authenticate": exc.auth_header} if getattr(exc, "auth_header", None) else {}
        return 401, {"code": code, "message": str(exc.detail)}, headers
    if isinstance(exc, exceptions.PermissionDenied | DjangoPermissionDenied):
        message = str(exc.detail) if isinstance(exc, exceptions.APIException) else (str(exc) or "forbidden")
        return 403, {"code": "forbidden", "message": message}, {}
    if isinstance(exc, exceptions.NotFound | Http404):
        return 404, {"code": "not_found", "message": "no such object or path for this merchant"}, {}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, {"code": "method_not_allowed", "message": str(exc.detail)}, {}
    if isinstance(exc, exceptions.Throttled):
        headers = {"Retry-After": str(int(exc.wait))} if exc.wait else {}
        return 429, {"code": "rate_limited", "message": "too many requests; retry later"}, headers
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 400, {"code": "invalid_request", "message": _media_type_message(request)}, {}
    if isinstance(exc, exceptions.NotAcceptable):
        return 400, {"code": "invalid_request", "message": "the API answers application/json only"}, {}
    if isinstance(exc, exceptions.ParseError):
        return 400, {"code": "invalid_request", "message": f"malformed request body: {exc.detail}"}, {}
    if isinstance(exc, RequestDataTooBig):
        return 400, {"code": "invalid_request", "message": "request body too large"}, {}
    # Django's refusals of a malformed request (e.g. more query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS, read
    # by content negotiation before authentication): the caller's mistake, a 400 — not a 500 logged as our failure.
    if isinstance(exc, TooManyFieldsSent):
        return 400, {"code": "invalid_request", "message": "too many query parameters"}, {}
    if isinstance(exc, SuspiciousOperation):
        return 400, {"code": "invalid_request", "message": "malformed request"}, {}
    if isinstance(exc, exceptions.APIException) and 400 <= exc.status_code < 500:
        return exc.status_code, {"code": "invalid_request", "message": str(exc.detail)}, {}
    return 500, {"code": "internal_error", "message": "internal error; quote the request_id to support"}, {}


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF EXCEPTION_HANDLER: every exception becomes the envelope; never returns None."""
    status, fields, headers = _translate(exc, context.get("request"))
    if status >= 500 and not isinstance(exc, ApplicationError):
        view = context.get("view")
        logger.error("unhandled error in %s", type(view).__name__ if view else "API", exc_info=exc)
    set_rollback()  # an answered error must not leave half a change behind (ATOMIC_REQUESTS or not)
    body = envelope(request_id=_request_id(context), **fields)
    if isinstance(exc, ApplicationError) and exc.extra:
        # e.g. 409 invalid_state on close carries the paid order under "order" (merchant-api.md "Orders").
        body.update({key: value for key, value in exc.extra.items() if key != "error"})
    return Response(body, status=status, headers=headers)


def handler500(request):
    """Root URLconf ``handler500``: failures outside DRF (middleware, URL resolution) under /api/ still answer
    in the envelope."""
    from django.views.defaults import server_error

    if request.path.startswith("/api/"):
        body = envelope("internal_error", "internal error; quote the request_id to support",
                        request_id=getattr(request, "request_id", None))
        return JsonResponse(body, status=500, content_type=JSON_CONTENT_TYPE)
    return server_error(request)


def handler400(request, exception=None):
    """Root URLconf ``handler400``: Django's refusals outside DRF (a Host header not in ALLOWED_HOSTS, checked by
    CommonMiddleware) answer in the envelope under /api/, with Django's page elsewhere."""
    from django.views.defaults import bad_request

    if request.path.startswith("/api/"):
        body = envelope("invalid_request", "malformed request", request_id=getattr(request, "request_id", None))
        return JsonResponse(body, status=400, content_type=JSON_CONTENT_TYPE)
    return bad_request(request, exception)


def handler404(request, exception=None):
    """Root URLconf ``handler404``: the JSON envelope under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        body = envelope("not_found", "no such API path", request_id=getattr(request, "request_id", None))
        return JsonResponse(body, status=404, content_type=JSON_CONTENT_TYPE)
    return page_not_found(request, exception)

"""Base view of the merchant API: every /api/v1/ view subclasses ``MerchantAPIView`` (or mixes in
``SignedResponseMixin`` for DRF generics and viewsets).

It is the one place where responses get aggpay's signature (merchant-api.md: "Responses and notifications are
signed by aggpay"): success and error alike, as soon as authentication has identified the app — HMAC apps
with their secret, RSA apps with the platform private key. Responses to requests whose app is unknown cannot
be signed for anyone and carry no Aggpay-* headers.
"""

from __future__ import annotations

import logging
import time

from django.http import JsonResponse
from rest_framework.exceptions import NotAcceptable, NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings
from rest_framework.utils.mediatypes import _MediaType
from rest_framework.views import APIView

from aggpay.api import signing
from aggpay.api.authentication import MerchantSignatureAuthentication
from aggpay.api.errors import envelope
from aggpay.api.parsers import StrictJSONParser
from aggpay.api.permissions import IsMerchantApp
from aggpay.api.renderers import JSON_CONTENT_TYPE
from aggpay.errors import InvalidRequest
from aggpay.platform_keys import loaded_platform_key
from merchants.models import MerchantApp, SignType

logger = logging.getLogger(__name__)


def signature_headers(app: MerchantApp, body: bytes) -> dict[str, str]:
    """Aggpay-Timestamp/-Nonce/-Signature for ``body`` sent to ``app`` (also used for notifications)."""
    timestamp, nonce = int(time.time()), signing.new_nonce()
    if app.sign_type == SignType.RSA:
        return signing.sign_response(body, timestamp=timestamp, nonce=nonce,
                                     private_key=loaded_platform_key().private_key)
    return signing.sign_response(body, timestamp=timestamp, nonce=nonce, secret=app.secret)


def api_actor(request) -> str:
    """The audit actor label for the calling app (aggpay.audit: 'api:<app_id>')."""
    return f"api:{request.auth.app_id}"


class _NoFormatOverride:
    """DRF's settings, except that ``?format=`` does not choose the renderer: the API has one (JSON), and
    ``format`` is an ordinary query parameter — the statement's own (trades.api.statements), unknown and ignored
    elsewhere — not a way to get ``404`` from a list."""

    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name):
        return getattr(api_settings, name)


def _quality(media_type: _MediaType) -> float:
    """The ``q`` weight of an Accept range (RFC 9110 §12.4.2): 1 when absent; one that is not a number counts as
    absent, as DRF read it before."""
    try:
        return float(media_type.params.get("q", "1"))
    except ValueError:
        return 1.0


def _refused_by(accepts: list[_MediaType], renderer_type: _MediaType) -> bool:
    """Whether the Accept ranges refuse ``renderer_type``: RFC 9110 §12.5.1 — the most specific range that matches a
    type gives its weight, and weight 0 means "not acceptable". ``application/json;q=0, text/html`` excludes JSON,
    and so does ``*/*, application/json;q=0``; ``application/*;q=0, application/json`` does not."""
    matching = [accept for accept in accepts if renderer_type.match(accept)]
    if not matching:
        return False  # DRF's own matching says whether anything accepts it
    most_specific = max(accept.precedence for accept in matching)
    return all(_quality(accept) <= 0 for accept in matching if accept.precedence == most_specific)


class AcceptNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, honouring ``q=0``. DRF ignores the weights, so ``Accept: application/json;q=0, text/html``
    ("anything but JSON") was answered 200 in JSON where docs/api.md promises a 400 when Accept excludes JSON."""

    settings = _NoFormatOverride()

    def select_renderer(self, request, renderers, format_suffix=None):
        accepts = self._get_parsed_accept_list(request)
        renderers = [renderer for renderer in renderers
                     if not _refused_by(accepts, _MediaType(renderer.media_type))]
        if not renderers:
            raise NotAcceptable()
        return super().select_renderer(request, renderers, format_suffix)


class SignedResponseMixin:
    authentication_classes = [MerchantSignatureAuthentication]
    permission_classes = [IsMerchantApp]
    parser_classes = [StrictJSONParser]
    content_negotiation_class = AcceptNegotiation
    # No OPTIONS: the API is described by /api/schema/, so OPTIONS answers 405 like any other method a path
    # does not serve, and `Allow` lists only the methods that do (DRF builds it from these names).
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]
    metadata_class = None

    def perform_content_negotiation(self, request, force=False):
        # DRF negotiates before it authenticates: an Accept header without JSON would be answered 400 before the
        # caller is known — unsigned, and even to a caller without a valid signature. The refusal waits for
        # ``initial`` to have authenticated the request; the JSON renderer renders it.
        try:
            return super().perform_content_negotiation(request, force=force)
        except NotAcceptable as exc:
            self._not_acceptable = exc
            return super().perform_content_negotiation(request, force=True)

    def initial(self, request, *args, **kwargs):
        self._not_acceptable = None
        super().initial(request, *args, **kwargs)
        if self._not_acceptable is not None:
            raise self._not_acceptable
        # A query parameter given twice took its last value silently (``?state=succeeded&state=failed`` listed the
        # failed orders, ``?limit=5&limit=50`` fifty): refused naming it, as a body field given twice is
        # (aggpay.api.parsers), since the merchant's own tools may have read the first.
        for name, values in request.query_params.lists():
            if len(values) > 1:
                raise InvalidRequest(f"{name} is given {len(values)} times; give it once", param=name)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        app = getattr(request._request, "aggpay_signing_app", None)
        if app is None or response.streaming:
            return response
        try:
            if hasattr(response, "render") and not response.is_rendered:
                response.render()  # the signature covers the exact bytes that go out
            for name, value in signature_headers(app, response.content).items():
                response[name] = value
        except Exception:
            # Never send an unsigned answer in place of a signed one: fail loudly, in the envelope.
            logger.exception("could not sign the response for app %s", app.app_id)
            request_id = getattr(request, "request_id", None)
            return JsonResponse(envelope("internal_error", "internal error; quote the request_id to support",
                                         request_id=request_id), status=500, content_type=JSON_CONTENT_TYPE)
        return response


class MerchantAPIView(SignedResponseMixin, APIView):
    """Signed-request authentication, an authenticated app required, signed responses."""


class NotFoundView(MerchantAPIView):
    """The last route under /api/v1/: any other path is a 404 in the envelope (after authentication, so that
    the path space is not probed anonymously and the answer is signed)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise NotFound()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        # DRF sends `Allow` with the view's methods, and this one has none: an empty `Allow:` reads as "no method
        # works here", which a 404 for a path that does not exist should not say at all (RFC 9110 §10.2.1).
        response.headers.pop("Allow", None)
        return response

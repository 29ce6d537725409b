"""Signed-request authentication for the merchant API (merchant-api.md "Authentication and signing").

Order of checks: parse the header, find the app (one query, merchant joined), verify the signature, then the
timestamp window, then the nonce. Checking the signature before the clock and the nonce means that
``timestamp_out_of_window`` and ``nonce_reused`` are only ever said to a caller who holds the app's key, and an
unsigned request cannot burn a merchant's nonces.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import connection
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

from aggpay.api import credentials, signing
from channels.sql import instance_from_row
from merchants.models import Merchant, MerchantApp, SignType

SCHEME_FOR_SIGN_TYPE = {SignType.HMAC: signing.HMAC_SCHEME, SignType.RSA: signing.RSA_SCHEME}

# Characters RFC 3986 allows unescaped in a path; used only when the server hides the raw request target.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def request_target(meta) -> str:
    """The request target (path and query) as the client sent it.

    gunicorn passes the raw target as ``RAW_URI`` and uWSGI as ``REQUEST_URI``; both are exactly what the
    client signed. Servers that only give the WSGI ``PATH_INFO`` (already percent-decoded, per PEP 3333) and
    the raw ``QUERY_STRING`` (Django's runserver and test client) are served by re-encoding the path with
    RFC 3986's rules, which round-trips every target that escapes only what it must.
    """
    raw = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    if raw:
        if not raw.startswith("/"):
            # absolute-form (RFC 9112 §3.2.2), as sent to proxies: keep path and query only
            parts = urlsplit(raw)
            raw = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return raw
    path = meta.get("SCRIPT_NAME", "") + meta.get("PATH_INFO", "")
    # WSGI strings are bytes decoded as latin-1 (PEP 3333): undo that before quoting the original bytes. A server
    # that hands over already-decoded text (characters above U+00FF) gets its UTF-8 bytes instead of a 500.
    try:
        raw_path = path.encode("latin-1")
    except UnicodeEncodeError:
        raw_path = path.encode("utf-8")
    target = quote(raw_path, safe=_PATH_SAFE)
    query = meta.get("QUERY_STRING", "")
    return f"{target}?{query}" if query else target


def nonce_cache_key(app_id: str, nonce: str) -> str:
    return f"aggpay:api-nonce:{app_id}:{nonce}"


def rate_cache_key(app_id: str, second: int) -> str:
    return f"aggpay:api-rate:{app_id}:{second}"


def _fail(code: str, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code)


# What the API front door loads: the app's credentials and the merchant's identity and state. The onboarding
# record's PII columns are encrypted — decrypting them on every request would cost more than the signature check —
# so services that need them load the merchant themselves (the rest of the merchant's fields load lazily).
APP_FIELDS = ("id", "merchant_id", "app_id", "name", "scopes", "sign_type", "secret", "public_key_pem", "notify_url",
              "active", "secret_revealed_at", "created_at")
MERCHANT_FIELDS = ("id", "merchant_no", "legal_name", "short_name", "state", "is_partner", "partner_id",
                   "subject_type", "created_at", "updated_at")
_APP_SQL = (
    "SELECT " + ", ".join(f"a.{f}" for f in APP_FIELDS) + ", " + ", ".join(f"m.{f}" for f in MERCHANT_FIELDS)
    + " FROM merchants_merchantapp a JOIN merchants_merchant m ON m.id = a.merchant_id"
    + " WHERE a.app_id = %s AND a.active"
)


def load_active_app(app_id: str) -> MerchantApp | None:
    """The active app with its merchant, in one written-out query.

    Every signed request runs this. The ORM spelling (select_related + only) spent more time compiling SQL than the
    database spent answering (docs/benchmarks.md), so the statement is fixed and the rows become model instances
    through ``channels.sql.instance_from_row``, each field's own ``from_db_value`` decrypting the secret and parsing
    JSON."""
    with connection.cursor() as cursor:
        cursor.execute(_APP_SQL, [app_id])
        row = cursor.fetchone()
    if row is None:
        return None
    app = instance_from_row(MerchantApp, APP_FIELDS, row[:len(APP_FIELDS)])
    app.merchant = instance_from_row(Merchant, MERCHANT_FIELDS, row[len(APP_FIELDS):])
    return app


class MerchantSignatureAuthentication(BaseAuthentication):
    """``Authorization: AGGPAY-HMAC-SHA256 ...`` or ``AGGPAY-SHA256-RSA2048 ...``.

    On success ``request.user`` is None and ``request.auth`` (and ``request.merchant_app``) is the MerchantApp
    with its merchant loaded. As soon as the app is known it is also kept as ``aggpay_signing_app`` on the
    request, so that even a 401 for a bad signature, stale timestamp or reused nonce is signed for that app.
    """

    def authenticate(self, request):
        django_request = request._request
        try:
            scheme, pairs = signing.parse_authorization(request.META.get("HTTP_AUTHORIZATION"))
        except signing.AuthorizationError as exc:
            raise _fail("invalid_signature", str(exc))
        app_id = pairs["app_id"]

        def message() -> bytes:
            return signing.string_to_sign(django_request.method, request_target(request.META), pairs["timestamp"],
                                          pairs["nonce"], django_request.body)

        # The app as this process last read it, if it did (aggpay.api.credentials): whatever it decides is
        # confirmed against the generation token below, or decided again on a fresh read.
        remembered = credentials.app_remembered(app_id)
        if remembered is None:
            token, app = credentials.app_read(app_id)
        else:
            token, app = remembered
        failure = _check_key(django_request, app, scheme, message, pairs["signature"])
        if failure is not None and remembered is not None:
            # A refusal is only ever decided on fresh data: the key may have been rotated a moment ago.
            remembered = None
            token, app = credentials.app_read(app_id)
            failure = _check_key(django_request, app, scheme, message, pairs["signature"])
        if failure is not None:
            raise failure

        window = settings.AGGPAY_SIGNATURE_WINDOW_SECONDS
        if abs(time.time() - int(pairs["timestamp"])) > window:
            raise _fail("timestamp_out_of_window", f"timestamp is more than {window} s away from aggpay's clock")

        # SET NX on Redis: exactly one request with this nonce gets through. The same round trip reads the
        # generation token that says whether the remembered app is still what the database holds, and counts the
        # call against the app's rate limit (merchant-api.md "Errors": 429 rate_limited).
        limit = settings.AGGPAY_API_RATE_LIMIT_PER_SECOND
        second = int(time.time())
        claimed, current, count = credentials.nonce_claim(
            nonce_cache_key(app.app_id, pairs["nonce"]), settings.AGGPAY_NONCE_TTL_SECONDS,
            count_key=rate_cache_key(app.app_id, second) if limit else None)
        if remembered is not None and current != token:
            # Something the front door depends on changed since this process read the app: read it again (under
            # the token just read, which predates this read) and decide on that. The nonce stays claimed — by a
            # caller that held a valid key a moment ago.
            token, app = credentials.app_read(app_id, token=current)
            failure = _check_key(django_request, app, scheme, message, pairs["signature"])
            if failure is not None:
                raise failure
        if not claimed:
            raise _fail("nonce_reused", "this nonce was already used by this app in the last 15 minutes")
        if limit and count > limit:
            # Counted after the signature check, so only a holder of the app's key can spend its allowance.
            raise Throttled(wait=1, detail=f"more than {limit} requests in one second from this app")

        # The token this request saw before any database read it caused: what views may remember things under.
        django_request.aggpay_front_door_token = current
        django_request.merchant_app = app
        return (None, app)

    def authenticate_header(self, request):
        # Present on every 401 (RFC 9110 §11.6.1); it also keeps DRF from turning our 401s into 403s.
        return f'{signing.HMAC_SCHEME} realm="aggpay", {signing.RSA_SCHEME} realm="aggpay"'


def _has_key(app: MerchantApp) -> bool:
    """An app without its key cannot authenticate anyone (an HMAC over an empty secret proves nothing)."""
    return bool(app.secret) if app.sign_type == SignType.HMAC else bool(app.public_key_pem)


def _check_key(django_request, app: MerchantApp | None, scheme: str, message, signature: str):
    """The AuthenticationFailed this request earns with ``app`` (unknown app, wrong scheme, bad signature), or
    None. ``message`` builds the string to sign (the body is read only for a known app). Keeps the app on the
    request as soon as it is known, so that even a 401 is signed for it."""
    if app is None or not _has_key(app):
        return _fail("unknown_app", "no active app with this app_id")
    django_request.aggpay_signing_app = app
    expected_scheme = SCHEME_FOR_SIGN_TYPE[app.sign_type]
    if scheme != expected_scheme:
        return _fail("invalid_signature", f"this app signs with {expected_scheme}")
    if app.sign_type == SignType.HMAC:
        valid = signing.hmac_verify(app.secret, message(), signature)
    else:
        valid = signing.rsa_verify(app.public_key_pem, message(), signature)
    if not valid:
        return _fail(
            "invalid_signature",
            "signature does not match: sign METHOD, the path and query exactly as sent, timestamp, nonce "
            "and the exact body bytes, each followed by a newline",
        )
    return None

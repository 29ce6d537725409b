"""The staff pages' middleware, skipped for the merchant API and the health probe (settings.MIDDLEWARE names these classes).

/api/ authenticates every call by its signature (merchant-api.md "Authentication and signing"), never by a cookie:
the session, the user it names, the CSRF check (which guards cookie-authenticated forms; DRF's views are exempt
anyway), flash messages and htmx headers mean nothing there. Skipped, a staff session cookie that a browser sends
along is never loaded on an API call, no API answer can gain a ``Set-Cookie`` or ``Vary: Cookie``, and signed calls
do not pay for them. What the API does need keeps running for it: ``RequestIdMiddleware`` (``X-Request-Id``),
``SecurityMiddleware`` (HSTS, nosniff), ``CommonMiddleware`` (ALLOWED_HOSTS) and ``XFrameOptionsMiddleware`` (the
HTML of /api/docs/). ``StaffNulGuardMiddleware`` looks at /staff/ paths only, with one prefix test.

Each class is Django's (or django-htmx's) own, so the admin's checks that they are installed still hold.
"""

from __future__ import annotations

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.middleware import csrf
from django_htmx import middleware as htmx_middleware

API_PREFIX = "/api/"
# The load balancer's probe (aggpay.health) has no user or form either; skipped, it costs what the API's calls do, so
# `make bench`'s comparison of a signed call against it measures the signature, not the staff pages' middleware.
HEALTH_PATH = "/healthz"


def _outside_api(middleware_class):
    """``middleware_class`` that hands /api/ requests straight on (the path the URLconf routes by)."""

    class OutsideApi(middleware_class):
        def __call__(self, request):
            path = request.path_info
            if path.startswith(API_PREFIX) or path == HEALTH_PATH:
                return self.get_response(request)
            return super().__call__(request)

    OutsideApi.__name__ = OutsideApi.__qualname__ = middleware_class.__name__
    OutsideApi.__module__ = __name__
    return OutsideApi


SessionMiddleware = _outside_api(sessions_middleware.SessionMiddleware)
CsrfViewMiddleware = _outside_api(csrf.CsrfViewMiddleware)
AuthenticationMiddleware = _outside_api(auth_middleware.AuthenticationMiddleware)
MessageMiddleware = _outside_api(messages_middleware.MessageMiddleware)
HtmxMiddleware = _outside_api(htmx_middleware.HtmxMiddleware)

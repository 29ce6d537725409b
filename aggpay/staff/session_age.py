"""The absolute age of a staff session: however busy, a session ends ``AGGPAY_SESSION_MAX_AGE_SECONDS`` after its
sign-in, and the person signs in again (the idle limit is Django's own: SESSION_COOKIE_AGE renewed on every request,
see aggpay/settings.py). A session without a sign-in time (one made before this check existed) is ended too."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout

SIGNED_IN_AT = "aggpay_signed_in_at"


def session_stamp_sign_in(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: the session remembers when its user signed in."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = int(time.time())


class SessionMaxAgeMiddleware:
    """After AuthenticationMiddleware. /api/ has no session or user (aggpay/staff/outside_api.py): passed on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            signed_in_at = request.session.get(SIGNED_IN_AT)
            if not isinstance(signed_in_at, int) or time.time() - signed_in_at > settings.AGGPAY_SESSION_MAX_AGE_SECONDS:
                logout(request)  # flushes the session; the page then sends the visitor to the sign-in page
        return self.get_response(request)

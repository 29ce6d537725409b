"""Slowing password guessing on the two sign-in pages (/staff/login/ and /admin/login/), shared by their forms.

Failed sign-ins are counted per user name and per client address in the project cache (Redis in production, so
every web process sees the same counters; the demo's per-process cache is enough for one process). When either
count reaches its limit within ``AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS``, that name or address is locked for
``AGGPAY_LOGIN_LOCKOUT_SECONDS``: every attempt is refused without checking the password, and with the same
message whether the name exists or not (counters are kept for any name typed), so the lock tells a guesser nothing.
Each lock writes one audit row (design §5 rule 9) that names neither the typed name nor the full address (a
password typed into the name field must not end up in the log): a masked name, a short keyed digest to tell names
apart, and the masked address.

A successful sign-in clears its name's counter; the address's counter stays, so an attacker holding one working
account cannot reset the count of the guesses made from their address.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils.crypto import salted_hmac

from aggpay.audit import audit_log
from aggpay.masking import mask_middle

logger = logging.getLogger(__name__)

LOCKED_MESSAGE = "Too many failed sign-in attempts. Wait {minutes} and try again."
_SALT = "aggpay.staff.login_throttle"


def client_address(request) -> str:
    """The client's address: ``AGGPAY_CLIENT_ADDRESS_HEADER`` (set by the proxy in front; the last entry of a list,
    the one our proxy appended) when configured, else REMOTE_ADDR. IPv6 addresses count by their /64, which one
    client usually holds whole."""
    raw = ""
    header = settings.AGGPAY_CLIENT_ADDRESS_HEADER
    if header:
        raw = request.headers.get(header, "").split(",")[-1].strip()
    raw = raw or request.META.get("REMOTE_ADDR", "")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _digest(value: str) -> str:
    return salted_hmac(_SALT, value).hexdigest()[:16]


def cache_keys(scope: str, value: str) -> tuple[str, str]:
    digest = _digest(f"{scope}:{value}")
    return f"login-failures:{scope}:{digest}", f"login-locked:{scope}:{digest}"


def _scopes(request, username: str) -> list[tuple[str, str, int]]:
    """(scope, value, limit) of the counters an attempt counts against; a limit of 0 turns that one off."""
    scopes = [("address", client_address(request), settings.AGGPAY_LOGIN_MAX_FAILURES_PER_ADDRESS)]
    if username:
        scopes.insert(0, ("username", username.strip().casefold(), settings.AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME))
    return [scope for scope in scopes if scope[2] > 0]


def login_locked_message(request, username: str) -> str | None:
    """The message to refuse this attempt with, or None when neither its name nor its address is locked."""
    locks = [cache_keys(scope, value)[1] for scope, value, _ in _scopes(request, username)]
    if locks and cache.get_many(locks):
        minutes = max(1, round(settings.AGGPAY_LOGIN_LOCKOUT_SECONDS / 60))
        return LOCKED_MESSAGE.format(minutes=f"{minutes} minute{'s' if minutes > 1 else ''}")
    return None


def login_failure_record(request, username: str) -> None:
    """Count one failed sign-in against the name and the address; lock (and audit) the one that reaches its limit."""
    for scope, value, limit in _scopes(request, username):
        counter, lock = cache_keys(scope, value)
        cache.add(counter, 0, timeout=settings.AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            failures = cache.incr(counter)
        except ValueError:  # the window ended between the two calls
            cache.add(counter, 1, timeout=settings.AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS)
            failures = 1
        # "==": exactly one of several racing processes sees the count reach the limit, so one lock, one row.
        if failures == limit:
            cache.set(lock, 1, timeout=settings.AGGPAY_LOGIN_LOCKOUT_SECONDS)
            cache.delete(counter)
            _audit_lock(request, scope, value, failures)


def login_success_record(request, username: str) -> None:
    """A correct password clears its name's failures (not its address's: see the module docstring)."""
    if username:
        cache.delete(cache_keys("username", username.strip().casefold())[0])


def _audit_lock(request, scope: str, value: str, failures: int) -> None:
    username = value if scope == "username" else ""
    data = {
        "scope": scope,
        "failures": failures,
        "window_seconds": settings.AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS,
        "lockout_seconds": settings.AGGPAY_LOGIN_LOCKOUT_SECONDS,
        "address": _mask_address(client_address(request)),
        "path": request.path[:100],
    }
    if username:
        data["username"] = mask_middle(username, keep_start=1, keep_end=0)
        data["username_digest"] = _digest(f"audit:{username}")
    with transaction.atomic():
        audit_log(actor="system", action="aggpay.staff.login_locked",
                  reason=f"{failures} failed sign-ins for one {'user name' if username else 'address'}", data=data)
    logger.warning("sign-in locked for one %s after %s failures", scope, failures)


def _mask_address(address: str) -> str:
    """203.0.113.* / 2001:db8:1:2::/64 → 2001:db8:1:*: enough to see the network, not the client."""
    if "." in address and address.count(".") == 3:
        return address.rsplit(".", 1)[0] + ".*"
    if ":" in address:
        return ":".join(address.split("/")[0].split(":")[:3]) + ":*"
    return "*"

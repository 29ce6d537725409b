"""What the merchant API's front door reads on every signed call, kept in each process and made coherent across
processes by one generation token in the shared cache.

Every signed call needs the app (key, scopes, active) and its merchant (state); ``GET /api/v1/merchant`` also needs
the products of the merchant's active contracts. Reading them from PostgreSQL on every call was most of what
authentication cost (docs/benchmarks.md, "Where the time goes"). So each process keeps what it read, tagged with
the generation token that was current *before* it read, and:

- any save or delete of a model those answers come from (``WATCHED``) replaces the token, once at once and once
  after the transaction commits — so no process can keep data read before the commit under the newer token;
- the token is read in the same Redis round trip as the nonce check (``nonce_claim``), so a call answered from the
  process's memory costs no database query and no extra round trip;
- an entry whose token is not the current one is read again before it decides anything (a key rotated, an app
  deactivated, a merchant frozen, a contract ended: the next call sees it).

A call is never answered from memory without that check; what is saved takes effect on the next call in every
process. Writes that bypass model signals (``QuerySet.update``, ``bulk_create``) on watched models must call
``generation_bump`` themselves; there are none today. Should the cache be unreachable when a save tries to bump,
the save still succeeds (a warning is logged; signed calls fail meanwhile anyway, since nonces live there too), and
no entry is trusted for more than ``MAX_AGE_SECONDS`` after it was read.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
import time

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save

GENERATION_KEY = "aggpay:api-front-door:generation"
# Models whose rows decide who may call and what GET /api/v1/merchant answers.
WATCHED = (
    "merchants.Merchant", "merchants.MerchantApp", "merchants.Contract", "merchants.ContractRate",
    "channels.ChannelAccount", "channels.ChannelProduct",
)
MAX_ENTRIES = 20_000  # per process and kind; past it the process starts over (cold reads, never wrong ones)
MAX_AGE_SECONDS = 60.0  # the bound on staleness should a bump be lost (cache unreachable when a save happened)

logger = logging.getLogger(__name__)



class Remembered:
    """What one process read, per key, tagged with the generation token in force before the read. Bounded in size
    (MAX_ENTRIES: past it the memory starts over — cold reads, never wrong ones) and in age (MAX_AGE_SECONDS).
    Used here for apps and product lists, and by channels.routing for its rows."""

    def __init__(self):
        self._entries: dict = {}  # key -> (token, read at (monotonic seconds), value)
        self._lock = threading.Lock()
        _all.append(self)

    def recall(self, key):
        """(token, value) remembered under ``key`` and younger than MAX_AGE_SECONDS, or None."""
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[1] > MAX_AGE_SECONDS:
            return None
        return entry[0], entry[2]

    def recall_current(self, key, token: int | None):
        """The value remembered under ``key`` if it was read under ``token`` (not None), else None."""
        entry = self.recall(key) if token is not None else None
        return entry[1] if entry is not None and entry[0] == token else None

    def remember(self, key, token: int, value) -> None:
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (token, time.monotonic(), value)

    def forget(self, key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_all: list[Remembered] = []
_apps = Remembered()
_products = Remembered()


def _cache():
    return caches["default"]


def _new_token() -> int:
    # A random token rather than a counter: a cache restarted empty cannot hand out a token some process still
    # holds entries for.
    return secrets.randbits(62)


def generation_current() -> int:
    """The current token (one cache read; creates it when the cache lost it)."""
    backend = _cache()
    token = backend.get(GENERATION_KEY)
    if token is None:
        backend.add(GENERATION_KEY, _new_token(), timeout=None)
        token = backend.get(GENERATION_KEY)
    return token


def generation_bump() -> None:
    """Every process re-reads on its next call."""
    _cache().set(GENERATION_KEY, _new_token(), timeout=None)


def _bump_or_warn() -> None:
    try:
        generation_bump()
    except Exception:  # the cache is down: the save must not fail for it (MAX_AGE_SECONDS bounds staleness)
        logger.warning("could not replace the API front door's generation token", exc_info=True)


def _on_watched_change(sender, **kwargs) -> None:
    # Now: a process reading the uncommitted change from this connection (tests, the same request) tags it with
    # the new token. After commit: data another process read before the commit, under the token of "now", is
    # dropped. Outside a transaction on_commit runs at once, which is a harmless second bump.
    _bump_or_warn()
    transaction.on_commit(_bump_or_warn)


def connect_signals() -> None:
    from django.apps import apps

    for label in WATCHED:
        model = apps.get_model(label)
        post_save.connect(_on_watched_change, sender=model, dispatch_uid=f"api-front-door-save-{label}")
        post_delete.connect(_on_watched_change, sender=model, dispatch_uid=f"api-front-door-delete-{label}")


def nonce_claim(key: str, ttl: int, *, count_key: str | None = None) -> tuple[bool, int | None, int]:
    """Claim ``key`` (SET NX with ``ttl``), read the generation token and, with ``count_key``, count one more call
    under it (a counter that lives 2 s: callers name it by the second): one round trip on Redis.

    Returns (claimed, token, count) — count 0 without ``count_key``. Other cache backends (the demo's in-process
    cache) do the same in several calls."""
    from aggpay.cache import RedisCache

    backend = _cache()
    if isinstance(backend, RedisCache):
        pipe = backend.redis_client().pipeline(transaction=False)
        pipe.set(backend.make_and_validate_key(key), 1, nx=True, ex=ttl)
        pipe.get(backend.make_and_validate_key(GENERATION_KEY))
        if count_key is not None:
            counter = backend.make_and_validate_key(count_key)
            pipe.incr(counter)
            pipe.expire(counter, 2)
        claimed, raw, *counted = pipe.execute()
        return bool(claimed), (None if raw is None else int(raw)), (int(counted[0]) if counted else 0)
    claimed, token, count = backend.add(key, 1, timeout=ttl), backend.get(GENERATION_KEY), 0
    if count_key is not None:
        backend.add(count_key, 0, timeout=2)
        try:
            count = backend.incr(count_key)
        except ValueError:  # expired between the two calls
            backend.add(count_key, 1, timeout=2)
            count = 1
    return claimed, token, count


def _private_copy(app):
    """A copy for one request: views may load deferred fields onto it or set attributes; the kept one stays as read."""
    mine = copy.copy(app)
    mine.merchant = copy.copy(app.merchant)
    return mine


def app_remembered(app_id: str):
    """(token, a private copy of the app) as this process last read it, or None. The caller must check the token
    against the current one before relying on anything in it."""
    entry = _apps.recall(app_id)
    if entry is None:
        return None
    return entry[0], _private_copy(entry[1])


def app_read(app_id: str, *, token: int | None = None):
    """(token, app or None) read now from the database, and remembered. ``token`` is a generation token the caller
    read before calling (so the one in force before this read); without it, it is read here first."""
    from aggpay.api.authentication import load_active_app

    if token is None:
        token = generation_current()
    app = load_active_app(app_id)
    if app is None:
        _apps.forget(app_id)
        return token, None
    _apps.remember(app_id, token, app)
    return token, _private_copy(app)


def merchant_products(merchant, *, token: int | None):
    """What the merchant can order (``trades.products.merchant_orderable_products``: its contracts' products
    and ``barcode`` / ``cashier`` derived from them) for this merchant, remembered under ``token`` (the generation
    token this request read before any of its database reads); ``None`` reads without remembering."""
    from trades.products import merchant_orderable_products

    products = _products.recall_current(merchant.pk, token)
    if products is None:
        products = merchant_orderable_products(merchant)
        if token is not None:
            _products.remember(merchant.pk, token, products)
    return products


def forget_all() -> None:
    """Drop what this process remembers, routing's rows included (tests start each case cold)."""
    for memory in _all:
        memory.clear()

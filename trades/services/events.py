"""Events and their deliveries: the notification outbox (design §5 rules 7 and 8; merchant-api.md
"Notifications and events"; issue 5 "Events and deliveries").

- ``event_emit`` writes the event and one delivery per notify URL in the caller's transaction and enqueues the
  deliveries only after that transaction commits.
- ``delivery_attempt`` posts one delivery: claim it in a short locked transaction, POST with no lock held, record
  the answer in a second short locked transaction (rule 7).
- ``deliveries_due`` is the sweeper: it re-enqueues every due delivery, so neither a broker outage nor a worker
  killed mid-delivery loses a notification. It is also what dispatches retries (the beat runs it every minute), so
  no hours-long ETA messages wait in the broker or in a worker's memory. Every enqueue marks the delivery's due
  attempt as sent to the broker (``_mark_enqueued``), so a later sweep does not send it again while it waits there.
- ``deliveries_resend`` is support's button.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.cookiejar
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework import serializers

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, NotFound
from aggpay.notify_urls import REFUSED_HINT, address_refused
from aggpay.permissions import require_perm
from merchants.models import Merchant, MerchantApp
from trades.models import Delivery, DeliveryAttempt, DeliveryState, Event, EventSequence

logger = logging.getLogger(__name__)

# merchant-api.md: "retries after 1 min, 5 min ×2, 10 min ×5, 1 h ×5, 6 h ×3 (about 24 h in all), then marks the
# delivery exhausted". The first attempt is immediate; RETRY_DELAYS[n-1] follows the n-th failed attempt.
RETRY_DELAYS: tuple[dt.timedelta, ...] = (
    (dt.timedelta(minutes=1),)
    + (dt.timedelta(minutes=5),) * 2
    + (dt.timedelta(minutes=10),) * 5
    + (dt.timedelta(hours=1),) * 5
    + (dt.timedelta(hours=6),) * 3
)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)  # the first try and 16 retries

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
SNIPPET_BYTES = 1024
# Longer than one attempt can take (connect + read timeouts and some slack): a live worker always finishes first.
DEFAULT_LEASE_SECONDS = 60
USER_AGENT = "aggpay-notify/1"

# The sweeper reads due deliveries in batches of SWEEP_BATCH, oldest due first, and goes on with the next batch
# until none is left or SWEEP_BUDGET_SECONDS have passed — well inside the beat's one-minute period, so that one
# sweep is normally over before the next begins. After a broker outage at volume one sweep sends the whole backlog
# instead of 500 a minute (20,000 took 40 minutes, the newest waiting behind each minute's new ones).
SWEEP_BATCH = 500
SWEEP_BUDGET_SECONDS = 45.0
# How long an enqueued attempt is left to the broker before a sweep sends it again: longer than a busy notify
# queue takes to reach a message, short enough that one the broker lost (a restart without persistence, a worker
# killed before it claimed the delivery) is not late by much. A claim, an answer or a resend makes a new attempt
# due, which the next sweep sends at once.
DEFAULT_REENQUEUE_SECONDS = 600
ENQUEUED_MARK_PREFIX = "trades:delivery-enqueued:"

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
# The types merchant-api.md "Notifications and events" names, and the partner ones docs/api.md adds: what
# GET /api/v1/events may be filtered by (a type outside it would only ever list nothing).
EVENT_TYPES = ("order.succeeded", "order.failed", "order.closed", "order.reversed", "refund.succeeded",
               "refund.failed", "refund.closed", "merchant.submitted", "merchant.returned", "merchant.rejected",
               "merchant.contract_updated", "merchant.activated", "merchant.frozen", "merchant.unfrozen")


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "AGGPAY_DELIVERY_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


def event_scope(event_type: str) -> str:
    """Which app scope receives and may list an event type: onboarding events go to partner apps."""
    return "onboarding" if event_type.startswith("merchant.") else "payments"


# --- what a merchant sees ---------------------------------------------------------------------------------------
_TIMESTAMP = serializers.DateTimeField()


def event_payload(event: Event) -> dict:
    """The notification body and the list item of GET /api/v1/events: the same object in both places."""
    return {
        "id": event.event_id,
        "type": event.type,
        # Rendered like every other API timestamp (RFC 3339 in aggpay's time zone).
        "created_at": _TIMESTAMP.to_representation(event.created_at),
        "sequence": event.sequence,
        "data": {"object": event.data},
    }


def event_body(event: Event) -> bytes:
    """The exact bytes posted (and signed). Deterministic, so every attempt of an event sends the same body."""
    return json.dumps(event_payload(event), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def events_for_app(app: MerchantApp) -> QuerySet[Event]:
    """The events an app may list: its merchant's, of the types its scopes receive. Onboarding events only while
    its merchant is a partner: risk's "Stop being a partner" refuses the partner's onboarding calls from the next
    one on (merchants.services.apps.merchant_partner_set), and the feed of its merchants' records is one of them.
    Bug: a revoked partner still read each of its merchants' events, the whole merchant object with it."""
    allowed = Q(pk__in=[])
    if app.has_scope("onboarding") and app.merchant.is_partner:
        allowed |= Q(type__startswith="merchant.")
    if app.has_scope("payments"):
        allowed |= ~Q(type__startswith="merchant.")
    return Event.objects.filter(allowed, merchant_id=app.merchant_id)


# --- emitting ---------------------------------------------------------------------------------------------------
def _next_sequence(*, object_type: str, object_id: str) -> int:
    # get_or_create on a locking queryset: an existing counter is locked; a new one is created in a savepoint,
    # and a concurrent creator's IntegrityError falls back to the locked read. The lock lasts until the caller's
    # transaction ends, so two emitters for one object get consecutive numbers in commit order.
    counter, _ = EventSequence.objects.select_for_update().get_or_create(object_type=object_type,
                                                                          object_id=object_id)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last


# The first half of the two-int advisory lock that orders a merchant's event feed (aggpay.locks uses 1 for its scopes).
EVENT_FEED_LOCK_SPACE = 2


def _feed_position(*, merchant_id: int) -> dt.datetime:
    """When the event is written in ``merchant_id``'s feed (GET /api/v1/events, newest first by ``created_at`` then
    id), holding the feed until the caller's transaction ends.

    A merchant catches up by reading newest first until an event it has seen (or with ``created_gte``), so an event
    must never become visible behind one already visible. Without this, a transaction that wrote its event and
    committed a moment later put it behind an event written after it but committed first — and the merchant who
    had read that one never saw it. Emitters of one merchant therefore queue here, and each takes its time (the
    database's clock, not this host's, which may differ from another host's) and its id only once the previous
    one has committed: feed order is commit order. Services emit at the end of the change's transaction, so the
    wait is for a commit that is about to happen; it is taken before the object's sequence counter, always.
    """
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        return timezone.now()  # SQLite (the demo): one writer at a time already
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s), clock_timestamp()",
                       [EVENT_FEED_LOCK_SPACE, merchant_id])
        return cursor.fetchone()[1]


def _recipients(*, merchant: Merchant, event_type: str, app: MerchantApp | None,
                notify_url: str | None) -> list[tuple[MerchantApp, str]]:
    if app is not None:
        url = notify_url or app.notify_url
        return [(app, url)] if url and app.active else []
    scope = event_scope(event_type)
    found: dict[str, MerchantApp] = {}
    for candidate in merchant.apps.filter(active=True).order_by("created_at", "id"):
        if candidate.has_scope(scope) and candidate.notify_url:
            found.setdefault(candidate.notify_url, candidate)  # one delivery per URL (unique (event, url))
    return [(candidate, url) for url, candidate in found.items()]


def _enqueue(delivery_id: int) -> None:
    from trades import tasks

    tasks.deliver_event.delay(delivery_id)


# --- what has been sent to the broker --------------------------------------------------------------------------------
# A delivery's due attempt is (id, attempts, next_attempt_at): a claim (attempts + 1), a recorded answer (the next
# retry's time) or a resend (due now) makes a new one. Once an attempt is enqueued, its key is set in the cache for
# the re-enqueue interval: a sweep skips it while it is set — the message is in the broker, or a worker is on it —
# and sets it with SET NX, so of two sweeps at once (a late beat tick, two workers on the default queue) only one
# enqueues it. The sweeper used to mark nothing and rely on duplicates being harmless; that cost at most its 500 a
# minute, but a sweep that drains the backlog would have sent every delivery still waiting in the broker again each
# minute. The marks are only an economy: a cache that is down (or the demo's in-process one) means duplicates,
# which the claim turns away, never a lost notification.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _enqueued_key(delivery_id: int, attempts: int, next_attempt_at: dt.datetime) -> str:
    micros = (next_attempt_at - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{ENQUEUED_MARK_PREFIX}{delivery_id}:{attempts}:{micros}"


def _reenqueue_seconds() -> int:
    return int(getattr(settings, "AGGPAY_DELIVERY_REENQUEUE_SECONDS", DEFAULT_REENQUEUE_SECONDS))


def _mark_enqueued(keys: list[str]) -> list[bool]:
    """SET NX each key for the re-enqueue interval; True where this caller set it (and so enqueues the attempt).
    One round trip per batch on Redis. A cache that cannot be reached marks nothing and claims everything."""
    from aggpay.cache import RedisCache

    if not keys:
        return []
    backend, ttl = caches["default"], _reenqueue_seconds()
    try:
        if isinstance(backend, RedisCache):
            pipe = backend.redis_client().pipeline(transaction=False)
            for key in keys:
                pipe.set(backend.make_and_validate_key(key), 1, nx=True, ex=ttl)
            return [bool(claimed) for claimed in pipe.execute()]
        return [backend.add(key, 1, timeout=ttl) for key in keys]
    except Exception:  # noqa: BLE001 - an economy, not a guard (see above): enqueue rather than stall
        logger.warning("could not mark enqueued deliveries in the cache; they may be enqueued again", exc_info=True)
        return [True] * len(keys)


def _unmark_enqueued(keys: list[str]) -> None:
    """The enqueue failed (the broker is down): the next sweep must send these again, not wait for the marks."""
    if not keys:
        return
    try:
        caches["default"].delete_many(keys)
    except Exception:  # noqa: BLE001
        logger.warning("could not clear %s enqueue marks; those deliveries wait for the marks to lapse", len(keys),
                       exc_info=True)


def _enqueue_after_commit(delivery: Delivery) -> None:
    """Like ``delay_on_commit``, but robust: a broker that is down must not turn the caller's committed change
    into an error; the failure is logged and the sweeper enqueues the delivery once the broker is back
    (design §5 rule 8). A successful enqueue is marked, so a sweep does not send it again while it waits."""
    delivery_id = delivery.pk
    key = _enqueued_key(delivery_id, delivery.attempts, delivery.next_attempt_at)

    def enqueue_delivery() -> None:  # named: Django logs a failed robust callback by its __qualname__
        _enqueue(delivery_id)
        _mark_enqueued([key])

    transaction.on_commit(enqueue_delivery, robust=True)


def event_emit(*, merchant: Merchant, type: str, obj_type: str, obj_id: str, data: dict,
               app: MerchantApp | None = None, notify_url: str | None = None) -> Event:
    """Record that ``obj_type``/``obj_id`` changed as ``type`` and queue its notifications.

    Must run inside the transaction that makes the change: the event and its deliveries exist if and only if the
    change does. Deliveries go to ``notify_url`` (or ``app``'s) when ``app`` is given — an order's own URL —
    otherwise to every active app of ``merchant`` whose scope receives ``type`` and that has a notify URL.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_emit must be called inside the transaction that makes the change")
    if not isinstance(type, str) or not EVENT_TYPE_RE.match(type) or len(type) > 40:
        raise ValueError(f"event type {type!r} must look like 'order.succeeded'")
    if not isinstance(data, dict):
        raise ValueError("event data must be the object as the API returns it (a dict)")
    obj_id = str(obj_id)
    with transaction.atomic():
        created_at = _feed_position(merchant_id=merchant.pk)
        sequence = _next_sequence(object_type=obj_type, object_id=obj_id)
        event = Event.objects.create(merchant=merchant, app=app, type=type, object_type=obj_type, object_id=obj_id,
                                     sequence=sequence, data=data, created_at=created_at)
        now = timezone.now()
        for recipient, url in _recipients(merchant=merchant, event_type=type, app=app, notify_url=notify_url):
            delivery = Delivery.objects.create(event=event, app=recipient, url=url, next_attempt_at=now)
            _enqueue_after_commit(delivery)
    return event


# --- delivering ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    duration_ms: int
    snippet: str = ""
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def notification_post(url: str, *, body: bytes, headers: dict[str, str]) -> PostResult:
    """The one outbound HTTP call of notifications: timeouts, no redirects, http(s) only, a bounded snippet.

    A redirect is an answer (3xx), not an acknowledgement: following it would post signed data to wherever a
    receiver points us. Tests that need another network patch this function.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return PostResult(None, 0, error=f"refused: notify URLs must be http or https, not {scheme or 'empty'!r}")
    started = time.monotonic()
    watch = _Sockets()
    deadline = getattr(settings, "AGGPAY_DELIVERY_POST_SECONDS", CONNECT_TIMEOUT + READ_TIMEOUT)
    watchdog = threading.Timer(deadline, watch.cut)
    watchdog.daemon = True
    _this_thread.watch = watch
    watchdog.start()
    try:
        result = _post(url, body=body, headers=headers, session=_thread_session(), started=started)
    finally:
        watchdog.cancel()
        watch.finish()
        _this_thread.watch = None
    if watch.cut_off:
        _forget_thread_session()  # a connection it cut is of no further use, pooled or not
        # Whatever was read before the cut is not an answer (http.client takes the closed socket for the end of
        # the headers): not an acknowledgement, a retry on the ladder.
        seen = f"; it had sent status {result.status_code}" if result.status_code is not None else ""
        return PostResult(None, result.duration_ms, snippet=result.snippet,
                          error=f"no complete answer within {deadline:g} s: cut off{seen}")
    return result


class _Sockets:
    """The sockets of one POST, so that a watchdog can cut it off at its deadline."""

    def __init__(self):
        self.sockets: list[socket.socket] = []
        self.cut_off = False
        self._finished = False
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.append(sock)
            if self.cut_off and not self._finished:
                _shut(sock)  # the deadline passed while this one was being opened (a slow DNS answer)

    def cut(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.cut_off = True
            for sock in self.sockets:
                _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self._finished = True


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown would drop its TLS state under the
    # thread that is reading from it. Shut down, the reader sees the end of the stream at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# One requests session per thread, kept from one POST to the next. requests' timeouts bound each wait for a packet,
# not the whole answer: a receiver that trickles its headers or body a byte at a time holds the POST open for as long
# as it likes. That kept a Celery worker (which serves every queue) busy indefinitely, and once the delivery's lease
# lapsed the sweeper handed the same delivery to another worker — a second POST beside the first, then a third...
# So every socket a POST uses — opened for it, or kept alive from an earlier POST to the same receiver — is handed
# to that POST's watchdog (``_this_thread.watch``), which shuts it down at the deadline.
#
# Keeping the session keeps its connections alive: the next POST to the same receiver (a backlog drained after an
# outage is mostly that) skips the TCP and TLS handshakes. What a receiver could carry from one POST into the next
# is ruled out: a connection goes back to the pool only when its whole answer was read (an answer longer than the
# snippet is closed, not drained), urllib3 opens a new one when the kept one has anything to read or is closed, a
# POST that was cut off drops the whole session, and no cookie is ever stored. Threads never share a session; a
# forked worker process builds its own.
_this_thread = threading.local()


def _watching(sock: socket.socket | None) -> None:
    watch = getattr(_this_thread, "watch", None)
    if sock is not None and watch is not None:
        watch.add(sock)


class _RefusedAddress(Exception):
    """The connection reached an address notifications may not go to (aggpay/notify_urls.py)."""


def _check_peer(conn, sock: socket.socket) -> None:
    """Where the socket actually connected, whatever the URL's name resolved to (DNS rebinding included): a
    private address gets no request (aggpay/notify_urls.py). Through a proxy the proxy is the peer, and it decides."""
    if getattr(conn, "proxy", None) is not None:
        return
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return  # already closed: the request fails on its own
    if address_refused(peer):
        _shut(sock)
        sock.close()
        raise _RefusedAddress(f"refused: {conn.host} led to {peer}; {REFUSED_HINT}")


def _registering(base):  # keeps the base's name: it appears in the errors logged with attempts
    def _new_conn(self):
        sock = base._new_conn(self)
        _watching(sock)
        _check_peer(self, sock)
        return sock

    return type(base.__name__, (base,), {"_new_conn": _new_conn})


def _watched_pool(base, connection_cls):
    def _get_conn(self, timeout=None):
        conn = base._get_conn(self, timeout)
        _watching(conn.sock)  # a kept-alive connection; a new one registers its socket when it opens it
        return conn

    return type(base.__name__, (base,), {"ConnectionCls": connection_cls, "_get_conn": _get_conn})


_WATCHED_POOLS = {
    "http": _watched_pool(urllib3.HTTPConnectionPool, _registering(urllib3.connection.HTTPConnection)),
    "https": _watched_pool(urllib3.HTTPSConnectionPool, _registering(urllib3.connection.HTTPSConnection)),
}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS


def _thread_session() -> requests.Session:
    session = getattr(_this_thread, "session", None)
    if session is None or _this_thread.pid != os.getpid():
        session = requests.Session()
        # One receiver's cookies are not sent to the next (several merchants may share a receiving host).
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        session.mount("http://", _WatchedAdapter())
        session.mount("https://", _WatchedAdapter())
        _this_thread.session, _this_thread.pid = session, os.getpid()
    return session


def _forget_thread_session() -> None:
    session, _this_thread.session = getattr(_this_thread, "session", None), None
    if session is not None:
        session.close()


def _post(url: str, *, body: bytes, headers: dict[str, str], session: requests.Session,
          started: float) -> PostResult:
    try:
        with session.post(url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                          allow_redirects=False, stream=True) as response:
            status = response.status_code
            # The status line is the receiver's answer: a body it then breaks (a Content-Encoding it cannot back,
            # a connection closed short of Content-Length, a read timeout) is logged with it, not raised — an
            # exception here would leave the attempt unrecorded and the delivery re-posted forever.
            error = ""
            try:
                raw = response.raw.read(SNIPPET_BYTES, decode_content=True) or b""
            except Exception as exc:  # urllib3 errors are not requests.RequestException on .raw
                raw, error = b"", f"reading the body: {type(exc).__name__}: {exc}"
    except requests.RequestException as exc:
        return PostResult(None, _elapsed_ms(started), error=_printable(f"{type(exc).__name__}: {exc}")[:300])
    except _RefusedAddress as exc:  # nothing was sent: a failed attempt, the ladder goes on (the URL may be fixed)
        return PostResult(None, _elapsed_ms(started), error=_printable(str(exc))[:300])
    return PostResult(status, _elapsed_ms(started), snippet=_printable(raw.decode("utf-8", errors="replace")),
                      error=_printable(error)[:300])


def _printable(text: str) -> str:
    """Text PostgreSQL can store: a receiver may answer with any bytes, and NUL is the one a text column refuses
    (recording the attempt would fail, and the delivery — even an acknowledged one — be posted again and again)."""
    return text.replace("\x00", "\ufffd")


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def notification_headers(delivery: Delivery, body: bytes) -> dict[str, str]:
    from aggpay.api.views import signature_headers

    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Aggpay-Event-Id": delivery.event.event_id,
        **signature_headers(delivery.app, body),
    }


# A delivery whose app is deactivated is held: not posted — the notification would be signed with the key of an app
# the merchant API now refuses as unknown (merchant-api.md "Authentication and signing": an inactive app is
# "unknown app", 401), and merchants.services.apps.merchant_app_deactivate promises "it gets no notifications" — and
# not counted as an attempt either: the ladder ("retries after 1 min, … then marks the delivery exhausted",
# merchant-api.md "Notifications and events") counts the receiver's failures, and a receiver we chose not to call
# has not failed, so a long deactivation never exhausts what is owed. It stays pending, out of the sweeper's reach
# (deliveries_due reads active apps' only), and resumes where its ladder stood on the first sweep after the app is
# reactivated; meanwhile the events are in the merchant's pull feed (GET /api/v1/events, "for merchants who miss
# notifications"), which the app reads again once reactivated. The spec itself says nothing about deactivated apps.
# A rotated secret needs nothing held: every attempt is signed when it is sent, with the app's secret as read by
# that attempt's claim (notification_headers), so after a rotation even a retry of an older event carries the
# signature the merchant can verify with the secret it now has (merchant-api.md: "signed as above", app_secret).


def _claim(delivery_id: int, *, now: dt.datetime) -> tuple[Delivery, DeliveryAttempt] | None:
    with transaction.atomic():
        try:
            # The app is read with it (not locked: only the delivery's row is) to know whether it is held.
            delivery = Delivery.objects.select_for_update(of=("self",)).select_related("app").get(pk=delivery_id)
        except Delivery.DoesNotExist:
            logger.warning("delivery %s does not exist; nothing to send", delivery_id)
            return None
        if delivery.state != DeliveryState.PENDING:
            return None  # acknowledged or exhausted: a duplicate task sends nothing
        if delivery.claimed_until is not None and delivery.claimed_until > now:
            return None  # another worker's attempt is in flight
        held = not delivery.app.active
        due = not held and (delivery.next_attempt_at is None or delivery.next_attempt_at <= now)
        if due:
            # An attempt still open here belonged to a worker that died mid-delivery (its lease lapsed).
            delivery.attempt_log.filter(finished_at__isnull=True).update(
                finished_at=now, error="abandoned: the worker stopped before the answer was recorded")
            delivery.attempts += 1
            delivery.claimed_until = now + lease()
            delivery.save(update_fields=["attempts", "claimed_until", "updated_at"])
            attempt = DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now)
    if not due:
        # Not due: a stale duplicate of an earlier enqueue — or a sweep on a host whose clock runs ahead of this
        # one's, whose mark would keep the next sweeps from sending the attempt until it lapsed. Or held: the
        # delivery's app is deactivated (the note above) — nothing is posted or counted, and the mark goes
        # so that the first sweep after a reactivation sends it.
        _unmark_enqueued([_enqueued_key(delivery.pk, delivery.attempts, delivery.next_attempt_at)])
        return None
    return Delivery.objects.select_related("event", "app").get(pk=delivery_id), attempt


def delivery_attempt(*, delivery_id: int, now: dt.datetime | None = None) -> Delivery | None:
    """POST a due delivery once and apply the answer: any 2xx acknowledges; otherwise the next retry is scheduled
    on the contract's ladder, or the delivery is exhausted after the last one. Idempotent: a delivery that is
    acknowledged, exhausted, in flight elsewhere or not yet due is left alone, and one whose app is deactivated is
    held, neither posted nor counted (the note above ``_claim``).

    ``now`` (default: the wall clock) is when the attempt starts; its answer is recorded as coming the POST's
    duration later. Only the demo seed passes it, to play a day of the ladder at once (aggpay/management/
    demo_trades.py): every attempt is still a real POST, claimed and recorded as a worker does."""
    claimed = _claim(delivery_id, now=now or timezone.now())
    if claimed is None:
        return Delivery.objects.filter(pk=delivery_id).first()
    delivery, attempt = claimed
    body = event_body(delivery.event)
    try:
        headers = notification_headers(delivery, body)
    except Exception as exc:  # e.g. the app's key cannot be read: record it like any failed attempt
        logger.exception("could not sign delivery %s", delivery_id)
        result = PostResult(None, 0, error=f"could not sign: {type(exc).__name__}")
    else:
        try:
            result = notification_post(delivery.url, body=body, headers=headers)
        except Exception as exc:  # e.g. a URL the HTTP client cannot parse: a failed attempt, never an open one
            logger.exception("could not post delivery %s", delivery_id)
            result = PostResult(None, 0, error=_printable(f"could not post: {type(exc).__name__}: {exc}")[:300])
    answered_at = None if now is None else now + dt.timedelta(milliseconds=result.duration_ms)
    return _apply(delivery_id, attempt_id=attempt.pk, result=result, now=answered_at)


def _apply(delivery_id: int, *, attempt_id: int, result: PostResult, now: dt.datetime | None = None) -> Delivery:
    now = now or timezone.now()
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        attempt = DeliveryAttempt.objects.select_for_update().get(pk=attempt_id)
        attempt.finished_at = now
        attempt.status_code = result.status_code
        attempt.duration_ms = result.duration_ms
        attempt.response_snippet = result.snippet[:SNIPPET_BYTES]
        attempt.error = result.error[:300]
        attempt.save()
        if delivery.state != DeliveryState.PENDING:
            return delivery
        # Only the attempt that holds the current claim moves the schedule.
        current = attempt.number == delivery.attempts
        if result.acknowledged:
            delivery.deliver()
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif current and delivery.attempts >= MAX_ATTEMPTS:
            delivery.exhaust()
            delivery.next_attempt_at = None
            logger.warning("delivery %s exhausted after %s attempts", delivery.pk, delivery.attempts)
        elif current:
            delivery.next_attempt_at = now + RETRY_DELAYS[delivery.attempts - 1]
        if current:
            delivery.claimed_until = None
        delivery.save()
    return delivery


# --- sweeping and resending ------------------------------------------------------------------------------------------
def deliveries_due(*, now: dt.datetime | None = None, batch_size: int = SWEEP_BATCH,
                   budget_seconds: float = SWEEP_BUDGET_SECONDS, clock=time.monotonic) -> list[int]:
    """Enqueue the pending deliveries whose attempt is due and not in flight, oldest due first; returns the ids
    enqueued.

    Run every minute by beat: it dispatches the retries of the ladder, re-sends what a broker outage kept from
    being enqueued, and picks up deliveries whose worker died (their lease lapsed). It reads ``batch_size`` at a
    time and goes on until nothing due is left or ``budget_seconds`` (measured by ``clock``) have passed; what is
    left waits for the next sweep. Each batch is one query outside any transaction: no row is locked, nothing is
    held from one batch to the next. The batches follow (next_attempt_at, id) from where the last one ended, with
    ``now`` fixed when the sweep starts, so one sweep enqueues a delivery at most once — an attempt that fails
    during the sweep is due after ``now``. An attempt already enqueued (by event_emit, a resend or another sweep)
    is skipped until its mark lapses (``_mark_enqueued``). Enqueuing one twice is still harmless: the second task
    finds the delivery claimed or not due.
    """
    now = now or timezone.now()
    started = clock()
    enqueued: list[int] = []
    after: tuple[dt.datetime, int] | None = None
    while True:
        due = Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now, app__active=True).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))  # an inactive app's are held (_claim)
        if after is not None:  # the >= lets the index (state, next_attempt_at) start the scan at the cursor
            due = due.filter(Q(next_attempt_at__gt=after[0]) | Q(next_attempt_at=after[0], pk__gt=after[1]),
                             next_attempt_at__gte=after[0])
        batch = list(due.order_by("next_attempt_at", "pk").values_list("pk", "attempts", "next_attempt_at")
                     [:batch_size])
        keys = [_enqueued_key(*row) for row in batch]
        claimed = [(row[0], key) for row, key, mine in zip(batch, keys, _mark_enqueued(keys), strict=True) if mine]
        for index, (delivery_id, _) in enumerate(claimed):
            try:
                _enqueue(delivery_id)
            except Exception:
                _unmark_enqueued([key for _, key in claimed[index:]])
                raise
            enqueued.append(delivery_id)
        if len(batch) < batch_size:
            return enqueued
        elapsed = clock() - started
        if elapsed >= budget_seconds:
            logger.info("delivery sweep: %s enqueued in %.0f s; the rest waits for the next sweep", len(enqueued),
                        elapsed)
            return enqueued
        after = (batch[-1][2], batch[-1][0])


def deliveries_follow_notify_url(*, app_id: int, old_url: str, new_url: str) -> int:
    """Point the app's undelivered notifications (pending, or exhausted and waiting for a resend) that were going to
    ``old_url`` at ``new_url``; returns how many moved. Called when staff change the app's notify URL
    (merchants.services.apps): a merchant moving its receiver expects the notifications still owed to follow it,
    not to keep failing at the old address for the rest of the ladder. An event that already has a delivery to
    ``new_url`` keeps its old one (one delivery per event and URL). Delivered ones are history and stay."""
    if not old_url or not new_url or old_url == new_url:
        return 0
    return (Delivery.objects
            .filter(app_id=app_id, url=old_url, state__in=(DeliveryState.PENDING, DeliveryState.EXHAUSTED))
            .exclude(event__deliveries__url=new_url)
            .update(url=new_url, updated_at=timezone.now()))


def deliveries_resend(*, delivery_id: int | None = None, merchant: Merchant | None = None, actor,
                      reason: str) -> list[Delivery]:
    """Support sends notifications again: one delivery (any state), or every exhausted delivery of ``merchant``.

    A delivered or exhausted delivery starts a new round of the ladder; a pending one is made due now. Each is
    audited with the reason, in the same transaction (design §5 rule 9).
    """
    require_perm(actor, "trades.resend_delivery")
    if (delivery_id is None) == (merchant is None):
        raise InvalidRequest("give either one delivery or a merchant", param="delivery_id")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("a reason is required to resend notifications", param="reason")
    if "\x00" in reason:  # PostgreSQL refuses it in the audit row's text: refused before anything is resent
        raise InvalidRequest("the reason contains a NUL character: type it again", param="reason")
    now = timezone.now()
    locked = Delivery.objects.select_related("event").select_for_update(of=("self",))
    with transaction.atomic():
        if delivery_id is not None:
            deliveries = list(locked.filter(pk=delivery_id))
            if not deliveries:
                raise NotFound(f"no delivery {delivery_id}")
        else:
            deliveries = list(locked.filter(event__merchant=merchant, state=DeliveryState.EXHAUSTED).order_by("pk"))
        for delivery in deliveries:
            before = delivery.state
            if before != DeliveryState.PENDING:
                delivery.resend()
                delivery.attempts = 0
                delivery.delivered_at = None
                delivery.claimed_until = None
            delivery.next_attempt_at = now
            # A pending delivery whose attempt is in flight keeps its claim: that attempt is the resend asked for,
            # and clearing the claim would post the event a second time beside it (and log the live attempt as
            # abandoned). Its answer decides what comes next; a lapsed claim is a dead worker's, retaken as usual.
            delivery.save()
            audit_log(actor=actor, action="trades.delivery.resent", target=delivery, reason=reason,
                      data={"from": before, "event": delivery.event.event_id, "url": delivery.url})
            _enqueue_after_commit(delivery)
    return deliveries

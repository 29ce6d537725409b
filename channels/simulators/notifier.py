"""Callbacks from a simulator to aggpay, with the channel's retry behaviour until acknowledged.

Pending callbacks are rows in the simulator's store (namespace ``<kind>:outbox``), so a restart of the simulator
process resumes them. A daemon thread sends due callbacks; ``flush()`` sends everything due now (tests).
``is_ack(status, body)`` is per kind: WeChat 200/204, Alipay the body ``success``, the bank plain ``SUCCESS``.
A kind whose channel signs each sending (WeChat Pay: the ``Wechatpay-Timestamp`` of every callback request is the
time it is sent, checked within 5 minutes — channel-protocols.md A.4) passes ``sign_headers``: a callback enqueued
with ``sign`` (what the signer needs, JSON) gets fresh headers at every attempt, so one held back or retried for
longer than the window still reaches aggpay as the channel would send it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from channels.simulators.store import Store

logger = logging.getLogger("aggpay.simulators.notifier")

# Short versions of the channels' schedules (A.4: 15s/15s/30s/3m/…; B.4: 4m/10m/10m/1h/…), in seconds.
DEFAULT_SCHEDULE = (0, 2, 5, 15, 60, 300)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Notifier:
    def __init__(self, store: Store, kind: str, is_ack: Callable[[int, bytes], bool],
                 schedule: tuple[float, ...] = DEFAULT_SCHEDULE,
                 sign_headers: Callable[[dict, bytes], dict[str, str]] | None = None):
        self.store = store
        self.sign_headers = sign_headers
        self.kind = kind
        self.ns = f"{kind}:outbox"
        self.is_ack = is_ack
        self.schedule = schedule
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition()  # guards _in_flight and _busy_origins
        self._in_flight: set[str] = set()  # callback ids being sent now
        self._busy_origins: set[str] = set()  # destinations with a sender thread (_drain) running

    def enqueue(self, *, url: str, body: bytes, headers: dict[str, str], delay: float = 0.0,
                content_type: str = "application/json", sign: dict | None = None) -> str:
        callback_id = uuid.uuid4().hex
        self.store.put(self.ns, callback_id, {
            "url": url, "body": body.decode("utf-8"), "headers": headers, "content_type": content_type,
            "attempt": 0, "due": time.time() + delay, "acked": False, "log": [], "sign": sign,
        })
        self._ensure_thread()
        self._wake.set()
        return callback_id

    def pending(self) -> list[dict]:
        return [dict(v, id=k) for k, v in self.store.items(self.ns) if not v["acked"] and v["attempt"] < len(self.schedule)]

    def all(self) -> list[dict]:
        return [dict(v, id=k) for k, v in self.store.items(self.ns)]

    def flush(self, *, include_future: bool = False) -> int:
        """Send every due (or, with include_future, every pending) callback once, in order, and return how many.
        One the sender threads are sending meanwhile is waited for, not sent twice: when flush returns, every
        callback it counted has been delivered or refused."""
        sent = 0
        for item in self.pending():
            if include_future or item["due"] <= time.time():
                self._send(item)
                sent += 1
        return sent

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"sim-notifier-{self.kind}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._dispatch_due()
            except Exception:  # keep the loop alive; a simulator must not die on one bad callback
                logger.exception("simulator notifier loop failed")
            with self._cond:
                pending = [item for item in self.pending() if item["id"] not in self._in_flight]
            if not pending:
                self._wake.wait(timeout=5)
            else:
                wait = max(0.05, min(item["due"] for item in pending) - time.time())
                self._wake.wait(timeout=min(wait, 5))
            self._wake.clear()

    def _dispatch_due(self) -> None:
        """Start a sender for each destination with callbacks due and none running. A channel notifies many
        receivers at once: one that answers slowly (up to the 5 s timeout) delays only its own callbacks, which go
        out in order."""
        now = time.time()
        with self._cond:
            origins = {_origin(item["url"]) for item in self.pending()
                       if item["due"] <= now and item["id"] not in self._in_flight}
            starting = origins - self._busy_origins
            self._busy_origins |= starting
        for origin in starting:
            threading.Thread(target=self._drain, args=(origin,), name=f"sim-notifier-{self.kind}-send",
                             daemon=True).start()

    def _drain(self, origin: str) -> None:
        try:
            while True:
                due = [item for item in self.pending()
                       if item["due"] <= time.time() and _origin(item["url"]) == origin]
                if not due:
                    return
                for item in due:
                    self._send(item)
        except Exception:
            logger.exception("simulator notifier failed sending to %s", origin)
        finally:
            with self._cond:
                self._busy_origins.discard(origin)
            self._wake.set()

    def _claim(self, item: dict) -> dict | None:
        """The callback's stored state, reserved for this thread to send attempt ``item["attempt"]``; None when it
        is no longer to be sent (acknowledged, or that attempt made by another thread — waited for first)."""
        with self._cond:
            while item["id"] in self._in_flight:
                self._cond.wait()
            current = self.store.get(self.ns, item["id"])
            if current is None or current["acked"] or current["attempt"] != item["attempt"]:
                return None
            self._in_flight.add(item["id"])
            return current

    def _send(self, item: dict) -> None:
        current = self._claim(item)
        if current is None:
            return
        try:
            status, snippet = 0, ""
            body = current["body"].encode("utf-8")
            headers = current["headers"]
            if self.sign_headers is not None and current.get("sign") is not None:
                headers = {**headers, **self.sign_headers(current["sign"], body)}
            try:
                resp = requests.post(current["url"], data=body,
                                     headers={"Content-Type": current["content_type"], **headers}, timeout=5)
                status, snippet = resp.status_code, resp.text[:200]
                acked = self.is_ack(resp.status_code, resp.content)
            except requests.RequestException as exc:
                acked, snippet = False, type(exc).__name__
            attempt = current["attempt"] + 1
            next_due = time.time() + (self.schedule[attempt] if attempt < len(self.schedule) else 0)
            log = current["log"] + [{"at": time.time(), "status": status, "response": snippet}]
            self.store.update(self.ns, item["id"], attempt=attempt, acked=acked, due=next_due, log=log)
        finally:
            with self._cond:
                self._in_flight.discard(item["id"])
                self._cond.notify_all()
            self._wake.set()

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

import requests

from channels.simulators.store import Store

logger = logging.getLogger("aggpay.simulators.notifier")

# Short versions of the channels' schedules (A.4: 15s/15s/30s/3m/…; B.4: 4m/10m/10m/1h/…), in seconds.
DEFAULT_SCHEDULE = (0, 2, 5, 15, 60, 300)


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
        self._send_lock = threading.Lock()

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
        """Send every due (or, with include_future, every pending) callback once. Returns how many were sent."""
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
                self.flush()
            except Exception:  # keep the loop alive; a simulator must not die on one bad callback
                logger.exception("simulator notifier loop failed")
            pending = self.pending()
            if not pending:
                self._wake.wait(timeout=5)
            else:
                wait = max(0.05, min(item["due"] for item in pending) - time.time())
                self._wake.wait(timeout=min(wait, 5))
            self._wake.clear()

    def _send(self, item: dict) -> None:
        with self._send_lock:
            current = self.store.get(self.ns, item["id"])
            if current is None or current["acked"] or current["attempt"] != item["attempt"]:
                return  # another thread got it
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

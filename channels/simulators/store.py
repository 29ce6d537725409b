"""The simulators' own state: a small JSON key-value store in a SQLite file that survives restarts.

Deliberately independent of aggpay's database: a simulator is another party, it must not read our rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: every write survives a restart of the simulator process (what "keeps its own state" needs)
        # without an fsync per write, which made the simulator, not aggpay, the bottleneck of the benchmarks.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, "
            "updated REAL NOT NULL, PRIMARY KEY (ns, k))"
        )

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside are one SQLite transaction (all or none, one WAL commit instead of one per write): a
        simulated create stores its trade and index rows together. Other threads wait for it (the store lock)."""
        with self._lock:
            if self._conn.in_transaction:  # already in a batch of this thread: join it
                yield
                return
            self._conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get(self, ns: str, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT v FROM kv WHERE ns=? AND k=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, ns: str, key: str, value: Any) -> None:
        self.put_many([(ns, key, value)])

    def put_many(self, rows: list[tuple[str, str, Any]]) -> None:
        """``put`` for several (ns, key, value) rows in one statement: a simulated create writes its trade and
        index rows through one call into SQLite instead of one per row (inside ``batch``, one commit too)."""
        now = time.time()
        with self._lock:
            self._conn.executemany(
                "INSERT INTO kv (ns, k, v, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ns, k) DO UPDATE SET v=excluded.v, updated=excluded.updated",
                [(ns, key, json.dumps(value, ensure_ascii=False, sort_keys=True), now) for ns, key, value in rows],
            )

    def put_new(self, ns: str, key: str, value: Any) -> bool:
        """Insert only if absent; True if inserted (idempotency of creates)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO kv (ns, k, v, updated) VALUES (?, ?, ?, ?)",
                (ns, key, json.dumps(value, ensure_ascii=False, sort_keys=True), time.time()),
            )
            return cur.rowcount == 1

    def update(self, ns: str, key: str, **changes: Any) -> dict:
        """Read-modify-write under the store lock; returns the new value."""
        with self._lock:
            value = self.get(ns, key)
            if value is None:
                raise KeyError(f"{ns}/{key}")
            value.update(changes)
            self.put(ns, key, value)
            return value

    def delete(self, ns: str, key: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM kv WHERE ns=? AND k=?", (ns, key))

    def items(self, ns: str) -> list[tuple[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT k, v FROM kv WHERE ns=? ORDER BY updated, k", (ns,)).fetchall()
        return [(k, json.loads(v)) for k, v in rows]

    def clear(self, ns: str | None = None) -> None:
        with self._lock:
            if ns is None:
                self._conn.execute("DELETE FROM kv")
            else:
                self._conn.execute("DELETE FROM kv WHERE ns=?", (ns,))

"""Progress of a running batch pass, visible to the page while the pass's own transaction is still open.

The confirmed import is all-or-nothing, so it runs in one transaction, and the dry run runs inside import-export's
rolled-back one: a counter saved on their connection would not be seen before the end. The reporter writes the
counter through a second connection of its own, in autocommit. It touches only ``processed_rows`` of the job row,
and the pass locks that row only after the reporter is closed, so the two never wait for each other.

SQLite (the embedded demo) allows one writer at a time: there the reporter stays silent and the page shows the
counters the pass saves at its end. The demo runs Celery eagerly anyway, so nobody polls in between.
"""

from __future__ import annotations

import time

from django.db import DEFAULT_DB_ALIAS, connections


class ProgressReporter:
    def __init__(self, *, job_id: int, every_rows: int = 10, every_seconds: float = 0.5):
        self.job_id = job_id
        self.every_rows = every_rows
        self.every_seconds = every_seconds
        self._last_rows = 0
        self._last_time = 0.0
        self._connection = None
        self.writes = 0
        if connections[DEFAULT_DB_ALIAS].vendor != "sqlite":
            # A fresh wrapper of the default database, not the thread's shared one (Django's own factory).
            self._connection = connections.create_connection(DEFAULT_DB_ALIAS)

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, processed: int, *, force: bool = False) -> None:
        if self._connection is None:
            return
        now = time.monotonic()
        if not force and processed - self._last_rows < self.every_rows and now - self._last_time < self.every_seconds:
            return
        self._last_rows, self._last_time = processed, now
        from merchants.models import ImportJob

        table = connections[DEFAULT_DB_ALIAS].ops.quote_name(ImportJob._meta.db_table)
        with self._connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET processed_rows = %s WHERE id = %s", [processed, self.job_id])
        self.writes += 1

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

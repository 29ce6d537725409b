"""Cursors for the few written-out statements every payment runs (routing, order insert, the create's record).

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor) and turns psycopg's automatic
preparation off (``prepare_threshold=None``): each statement reaches the server as new text to parse and plan. For
a statement run on every order the planning costs more than the execution (the routing query: 0.12–0.15 ms to
plan, 0.03 ms to run). ``prepared_cursor`` binds on the server and prepares each statement on the connection the
first time it runs there, so PostgreSQL plans it once per connection (connections are kept: Django's pool or
CONN_MAX_AGE). The cursor is still Django's wrapper: query logging and CaptureQueriesContext (the query budgets of
issue 5) see every statement. Only for SQL written out in this project with plain ``%s`` placeholders — the ORM's
SQL is not written to be prepared (Django ticket #20516). Not for a transaction-pooling proxy (PgBouncer
``pool_mode=transaction`` before 1.21), which does not keep prepared statements; aggpay uses Django's pool.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref

from django.db import DEFAULT_DB_ALIAS, connections


@functools.cache
def _cursor_class():
    import psycopg

    class PreparingCursor(psycopg.Cursor):
        # psycopg's hook between converting a query and sending it (psycopg 3.3): prepare unless told not to, and
        # keep the converted query where Django's query log reads it (psycopg leaves it unset for prepared ones).
        def _maybe_prepare_gen(self, pgq, *, prepare=None, binary=None):
            self._query = pgq
            return super()._maybe_prepare_gen(pgq, prepare=prepare is not False, binary=binary)

    return PreparingCursor


class _KeptCursor:
    """``with`` support for a kept cursor: unlike Django's wrapper, leaving the block does not close it."""

    __slots__ = ("cursor",)

    def __init__(self, cursor):
        self.cursor = cursor

    def __enter__(self):
        return self.cursor

    def __exit__(self, *exc_info) -> bool:
        return False


# psycopg connection -> {statement: the psycopg cursor that runs it there}. psycopg keeps a cursor's adapters (the
# dumper chosen for each parameter type, JSON dumpers included) while the same statement object runs on it again;
# a new cursor per order resolved them all anew — a quarter of the time psycopg spent on the order INSERT's 48
# parameters. Entries go with their connection (weak keys); a connection serves one thread at a time.
_kept_cursors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()


def prepared_cursor(statement: str | None = None):
    """A Django cursor over a server-side-binding, preparing psycopg cursor (other databases: the usual cursor).

    With ``statement`` (the exact string object the caller will execute, a module constant or a cached one), the
    psycopg cursor is kept on the connection for that statement and reused, and leaving the ``with`` block does
    not close it."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the per-attribute proxy
    if db.vendor != "postgresql":
        return db.cursor()
    db.ensure_connection()
    pg = db.connection
    if pg.prepare_threshold is None:
        # Django turns preparation off per connection, which also refuses an explicit prepare=True. A threshold
        # no statement reaches keeps the ORM's statements unprepared (its client-side cursors never prepare
        # anyway) and lets these cursors prepare theirs.
        pg.prepare_threshold = sys.maxsize
    if statement is None:
        raw = _cursor_class()(pg)
        return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)
    kept = _kept_cursors.get(pg)
    if kept is None:
        with _kept_lock:
            kept = _kept_cursors.setdefault(pg, {})
    raw = kept.get(statement)
    if raw is None or raw.closed:
        raw = kept[statement] = _cursor_class()(pg)
    return _KeptCursor(db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw))


def converted_row(model, names: tuple[str, ...], values) -> tuple[list[str], list]:
    """The raw column values of a written-out statement (``names``: field names or attnames, in the statement's
    column order) through each field's ``from_db_value`` (decryption, JSON), as the ORM would convert them: the
    attnames in the model's field order (what ``Model.from_db`` wants) and their values."""
    db = connections[DEFAULT_DB_ALIAS]
    by_attname = {}
    for name, value in zip(names, values, strict=True):
        field = model._meta.get_field(name)
        if value is not None and hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, db)
        by_attname[field.attname] = value
    ordered = [f.attname for f in model._meta.concrete_fields if f.attname in by_attname]
    return ordered, [by_attname[a] for a in ordered]


def instance_from_row(model, names: tuple[str, ...], values):
    """A partly loaded model instance from the raw column values of a written-out statement (see
    ``converted_row``)."""
    attnames, converted = converted_row(model, names, values)
    return model.from_db(DEFAULT_DB_ALIAS, attnames, converted)

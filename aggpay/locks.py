"""A lock on something that has no row yet to ``select_for_update`` — a licence number before its merchant exists.

``transaction_lock(key, scope=…)`` makes transactions that name the same key run one after the other from that point
until their commit or rollback, so a check for a row and the insert of that row (check-then-insert) cannot interleave
with another transaction doing the same for the same key.

``transaction_lock_scope(scope)`` takes every key of a scope at once, for a transaction that writes many of them (a
batch import of thousands of merchants): one lock instead of one per key — each key held is an entry in the server's
shared lock table until the commit (about max_locks_per_transaction × max_connections entries in all, some 12,000
with the defaults), which a few large batches at once would exhaust ("out of shared memory"). A scope lock makes
every transaction that locks a key of the scope wait until its commit, and waits for those that hold one.
"""

from __future__ import annotations

from django.db import transaction

# The first half of the two-int advisory lock of a scope (the second is hashtext(scope)), so that scope locks can
# be told apart in pg_locks from the one-bigint key locks: classid = SCOPE_SPACE, objsubid = 2.
SCOPE_SPACE = 1


def _postgres_cursor():
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("a transaction lock outside transaction.atomic() would be released at once")
    if connection.vendor != "postgresql":
        return None  # SQLite (the demo): transactions begin IMMEDIATE (settings), one writer at a time
    return connection.cursor()


def transaction_lock(key: str, *, scope: str) -> None:
    """Hold a lock on ``key`` (one of ``scope``'s keys) until the current transaction ends; wait while another
    transaction holds it, or holds the whole scope (``transaction_lock_scope``).

    PostgreSQL: the scope's lock shared, then ``pg_advisory_xact_lock(hashtext(key))`` — released by the commit or
    rollback, never by hand; two keys that hash alike only wait for each other needlessly. Nothing more is taken in
    a transaction that already holds the whole scope. Call it inside ``transaction.atomic``, in the transaction that
    writes.
    """
    cursor = _postgres_cursor()
    if cursor is None:
        return
    with cursor:
        cursor.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
            " AND mode = 'ExclusiveLock' AND classid = %s AND objid = hashtext(%s)::oid AND objsubid = 2",
            [SCOPE_SPACE, scope])
        if cursor.fetchone():
            return
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))", [SCOPE_SPACE, scope])
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])


def transaction_lock_scope(scope: str) -> None:
    """Hold every key of ``scope`` until the current transaction ends, with one lock (see the module docstring);
    taking it again in the same transaction adds nothing. Call it inside ``transaction.atomic``."""
    cursor = _postgres_cursor()
    if cursor is None:
        return
    with cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [SCOPE_SPACE, scope])

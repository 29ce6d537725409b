"""A lock on something that has no row yet to ``select_for_update`` — a licence number before its merchant exists.

``transaction_lock(key)`` makes transactions that name the same key run one after the other from that point until
their commit or rollback, so a check for a row and the insert of that row (check-then-insert) cannot interleave with
another transaction doing the same for the same key.
"""

from __future__ import annotations

from django.db import transaction


def transaction_lock(key: str) -> None:
    """Hold a lock on ``key`` until the current transaction ends; wait while another transaction holds it.

    PostgreSQL: ``pg_advisory_xact_lock(hashtext(key))`` — released by the commit or rollback, never by hand; two
    keys that hash alike only wait for each other needlessly. Each key held is an entry in the server's shared lock
    table until then (about max_locks_per_transaction × max_connections entries in all, some 12,000 with the
    defaults), so a transaction that takes thousands — a 5,000-row batch import takes one per row — uses a good part
    of it. SQLite (the demo): nothing to do, its transactions begin IMMEDIATE (settings), one writer at a time.

    Call it inside ``transaction.atomic``, in the transaction that writes: outside one it would end at once.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("transaction_lock() outside transaction.atomic() would be released at once")
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])

"""The hand-written statements every order runs are prepared once per connection (channels/sql.py), so PostgreSQL
may reuse one generic plan for them for as long as the connection lives — whatever the table has grown to since.
Their plans must not depend on statistics the table may not have yet."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection

from trades.services.orders import record_created_sql

pytestmark = pytest.mark.django_db


def _generic_plan_indexes(sql: str, params: list) -> set[str]:
    """The indexes the generic plan of ``sql`` scans (plan_cache_mode=force_generic_plan, as a prepared statement
    gets after five runs)."""
    numbers = iter(range(1, len(params) + 1))
    numbered = re.sub(r"%s", lambda _match: f"${next(numbers)}", sql)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE plan_probe AS {numbered}")
        try:
            literals = ", ".join("NULL" if p is None else "'" + str(p).replace("'", "''") + "'" for p in params)
            cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE plan_probe({literals})")
            plan = cursor.fetchone()[0]
        finally:
            cursor.execute("DEALLOCATE plan_probe")
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found, stack = set(), [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            found.add(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return found


def test_the_creates_record_finds_its_order_by_primary_key_only():
    sql = record_created_sql("updated_at = %s, pay_params = %s")
    params = ["O1", "create", "pending", "", "", "{}", 3, "2026-11-26T00:00:00Z",
              "2026-11-26T00:00:00Z", '{"code_url": "weixin://x"}', "O1", "pending"]
    indexes = _generic_plan_indexes(sql, params)
    assert indexes, "the update must use an index on the order id"
    # The primary key, or Django's varchar_pattern_ops twin of it on the same column: either finds one row.
    assert all(name == "trades_order_pkey" or name.startswith("trades_order_id_") for name in indexes), indexes


def test_orders_carry_only_the_indexes_their_queries_use():
    """Every order writes each index of trades_order (and its call each of trades_channelcall): the LIKE twins of
    the ids and the plain indexes on state and sync_state are gone, partial ones serve the sweepers and queues."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname, indexdef FROM pg_indexes "
                       "WHERE tablename IN ('trades_order', 'trades_channelcall')")
        rows = cursor.fetchall()
    names = {name for _table, name, _definition in rows}
    assert not [name for name in names if name.endswith("_like")], names
    assert not [d for _t, _n, d in rows if re.search(r"\((state|sync_state|merchant_id)\)$", d)], rows
    definitions = {name: definition for _table, name, definition in rows}
    assert "WHERE ((state)::text = 'pending'::text)" in definitions["order_pending_expiry"]
    assert "WHERE (NOT ((sync_state)::text = 'ok'::text))" in definitions["order_sync_attention"]
    assert "WHERE (refund_id IS NOT NULL)" in definitions["channelcall_refund_idx"]

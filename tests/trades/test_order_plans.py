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
    params = ["O1", "create", "pending", "", "", "POST /v3/pay/partner/transactions/native", "{}", 3,
              "2026-11-26T00:00:00Z",
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
    assert "WHERE (paid_at IS NOT NULL)" in definitions["order_merchant_paid"]  # never written by a create


def _plan_index_names(queryset) -> set[str]:
    plan = json.loads(queryset.explain(format="json"))
    names, stack = set(), list(plan)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "Index Name" in node:
                names.add(node["Index Name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def test_statements_and_the_finance_report_read_their_days_through_their_own_indexes(tea_house_app):
    """trades.services.statements: a day's payments and refunds are found by (merchant, time), not by reading all
    of the merchant's history; the partial indexes keep unpaid orders and unsettled refunds out of them."""
    import datetime as dt

    from django.utils import timezone

    from tests.factories import MerchantFactory
    from tests.trades.ledger import paid_order, refunded
    from trades.models import Order, Refund
    from trades.services.statements import _payments, _refunds

    merchant = tea_house_app.merchant
    day = timezone.now() - dt.timedelta(days=3)
    for owner in (merchant, MerchantFactory()):  # a year and a half of history for two merchants
        first = paid_order(owner, f"PLAN{owner.pk}", amount=1000, rate="0.006", paid_at=day)
        refund = refunded(first, f"PLANR{owner.pk}", amount=100, succeeded_at=day)
        order_values = {f.attname: getattr(first, f.attname) for f in Order._meta.concrete_fields if not f.primary_key}
        refund_values = {f.attname: getattr(refund, f.attname) for f in Refund._meta.concrete_fields
                         if not f.primary_key}
        orders = Order.objects.bulk_create(
            Order(**{**order_values, "out_trade_no": f"PLAN{owner.pk}_{n}", "channel_trade_no": f"42PLAN{owner.pk}_{n}",
                     "paid_at": day - dt.timedelta(hours=6 * n)}) for n in range(1, 2000))
        Refund.objects.bulk_create(
            Refund(**{**refund_values, "order_id": order.pk, "out_refund_no": f"PLANR{owner.pk}_{n}",
                      "succeeded_at": order.paid_at}) for n, order in enumerate(orders) if n % 3 == 0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE trades_order")
        cursor.execute("ANALYZE trades_refund")
        assert "order_merchant_paid" in _plan_index_names(_payments(merchant, day, day + dt.timedelta(days=1)))
        assert "refund_merchant_succeeded" in _plan_index_names(_refunds(merchant, day, day + dt.timedelta(days=1)))
        # Finance's report: every merchant's payments and refunds of a week.
        from trades.services import finance

        week = (day - dt.timedelta(days=7), day)
        assert "order_paid" in _plan_index_names(finance._payments(*week))
        assert "refund_succeeded" in _plan_index_names(finance._refunds(*week))

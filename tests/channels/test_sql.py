"""channels/sql.py: written-out statements run on kept, preparing cursors, seen by Django's query log."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.sql import prepared_cursor

pytestmark = pytest.mark.django_db

STATEMENT = "SELECT %s::int + 1"


def test_a_statement_runs_on_the_same_cursor_each_time_and_is_logged_each_time():
    with CaptureQueriesContext(connection) as queries:
        with prepared_cursor(STATEMENT) as cursor:
            cursor.execute(STATEMENT, [1])
            assert cursor.fetchone() == (2,)
            first = cursor.cursor
        with prepared_cursor(STATEMENT) as cursor:
            cursor.execute(STATEMENT, [41])
            assert cursor.fetchone() == (42,)
            assert cursor.cursor is first  # kept: psycopg keeps its parameter adapters on it
    assert not first.closed  # leaving the block does not close a kept cursor
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT $1::int + 1"] * 2  # bound on the server


def test_a_cursor_without_a_statement_is_closed_when_the_block_ends():
    with prepared_cursor() as cursor:
        cursor.execute(STATEMENT, [1])
        raw = cursor.cursor
    assert raw.closed


def test_another_statement_gets_another_cursor():
    other = "SELECT %s::int * 2"
    with prepared_cursor(STATEMENT) as one, prepared_cursor(other) as two:
        assert one.cursor is not two.cursor

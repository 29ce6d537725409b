"""Staging races on purpose (as saleor's race_condition.py does): work released in several threads at the same
moment, each on its own database connection."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection


def in_threads(count: int, work):
    """Run ``work(i)`` for i in range(count) in ``count`` threads released together by a barrier; returns their
    results in order. Each thread closes its own database connection when it is done."""
    gate = threading.Barrier(count)

    def run(i):
        try:
            gate.wait(timeout=30)
            return work(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))

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


def retrying_resets(call):
    """``call()``, again if the connection was reset before the request was read: a test server's listen backlog is
    small when many threads connect at once. Safe only for idempotent requests (an order's out_trade_no, a refund's
    out_refund_no, a channel notice's id), which is all a race test sends."""
    import time

    import requests

    for _ in range(20):
        try:
            return call()
        except requests.ConnectionError:
            time.sleep(0.05)
    return call()

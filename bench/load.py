"""The load driver of ``make bench``: a bounded, threaded HTTP client on loopback, run as its own process.

    python bench/load.py --base-url http://127.0.0.1:PORT --target healthz|merchant --seconds 15 --threads 8 \
        [--app-id ... --secret ...] --out result.json

``merchant`` sends signed ``GET /api/v1/merchant`` through ``aggpay.api.client.AggpayClient`` (which also
verifies every response signature); ``healthz`` sends unsigned ``GET /healthz`` through the same HTTP stack
(a ``requests.Session`` per thread, keep-alive), so the difference between the two is aggpay's work, plus the
client's signing and verification. Each thread stops at the deadline or after ``--max-requests`` in all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggpay.api.client import AggpayClient  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _make_call(args, index: int):
    """A zero-argument function doing one request and returning (HTTP status, whether it is a success)."""
    if args.target == "healthz":
        session = requests.Session()
        url = args.base_url.rstrip("/") + "/healthz"

        def call() -> tuple[int, bool]:
            response = session.get(url, timeout=30)
            response.content  # noqa: B018 - read the body, as the signed client does
            return response.status_code, response.status_code == 200

        return call
    client = AggpayClient(args.base_url, args.app_id, secret=args.secret, timeout=30)

    def call() -> tuple[int, bool]:
        status, _headers, _data = client.request("GET", "/api/v1/merchant")
        return status, status == 200

    return call


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def run(args, make_call=_make_call) -> dict:
    """Run ``args.threads`` workers until the deadline or ``args.max_requests`` in all; ``make_call(args, index)``
    gives each worker its request function (bench/bench_orders.py passes its own)."""
    startup_cpu = _own_cpu()  # imports and setup, spent before the first request
    host = urlsplit(args.base_url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load {host}: the benchmark only targets this machine's loopback")
    deadline = time.monotonic() + args.seconds
    budget = threading.Semaphore(args.max_requests)
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    errors = [0] * args.threads
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(index: int) -> None:
        call = make_call(args, index)
        mine, seen = latencies[index], {}
        while time.monotonic() < deadline and budget.acquire(blocking=False):
            started = time.perf_counter()
            try:
                status, ok = call()
            except Exception:  # a refused/reset connection or a bad signature counts as an error
                errors[index] += 1
                continue
            mine.append((time.perf_counter() - started) * 1000)
            seen[status] = seen.get(status, 0) + 1
            if not ok:
                errors[index] += 1
        with lock:
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    started, cpu_started = time.perf_counter(), _own_cpu()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = _own_cpu() - cpu_started
    return {
        "target": args.target,
        "threads": args.threads,
        "seconds": elapsed,
        "latencies_ms": [value for chunk in latencies for value in chunk],
        "errors": sum(errors),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        # This process's own CPU (all threads) while it sent requests, and before (bench/cpu.py, bench_orders.py).
        "cpu_seconds": cpu,
        "startup_cpu_seconds": startup_cpu,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--target", choices=["healthz", "merchant"], required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--app-id")
    parser.add_argument("--secret")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.target == "merchant" and not (args.app_id and args.secret):
        parser.error("--target merchant needs --app-id and --secret")
    Path(args.out).write_text(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

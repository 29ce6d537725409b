"""bench/bench_orders.py's report: each party's CPU per request over the rounds, and what the figures allow."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_orders():
    sys.path.insert(0, str(BENCH))  # bench_orders imports its neighbours (run, cpu) by name, as when run
    try:
        spec = importlib.util.spec_from_file_location("bench_orders_under_test", BENCH / "bench_orders.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _round(requests: int, *, aggpay, load, startup, postgres=0.0, simulator=0.0, redis=0.0, machine):
    return {"latencies_ms": [1.0] * requests, "cpu_seconds": load, "startup_cpu_seconds": startup,
            "cpu": {"aggpay": aggpay, "postgres": postgres, "simulator": simulator, "redis": redis,
                    "machine": machine, "stolen": 0.0}}


def test_it_divides_each_partys_cpu_by_the_requests_of_all_rounds_and_leaves_out_the_load_start_up():
    bench = _bench_orders()
    rounds = [_round(1000, aggpay=3.0, load=2.0, startup=0.5, postgres=1.0, simulator=1.5, redis=0.1, machine=8.6),
              _round(3000, aggpay=9.0, load=6.0, startup=0.5, postgres=3.0, simulator=4.5, redis=0.3, machine=24.0)]
    cost = bench.cpu_per_request(rounds)
    assert cost["aggpay"] == 3.0  # (3 + 9) s over 4,000 requests
    assert cost["load"] == 2.0
    assert cost["simulator"] == 1.5
    assert abs(cost["machine"] - 7.9) < 1e-9  # (8.6 − 0.5 + 24 − 0.5) s / 4,000
    assert abs(cost["rest"] - (7.9 - 3.0 - 2.0 - 1.0 - 1.5 - 0.1)) < 1e-9


def test_it_has_no_figures_when_a_round_was_not_measured():
    bench = _bench_orders()
    measured = _round(10, aggpay=0.1, load=0.1, startup=0.0, machine=0.2)
    assert bench.cpu_per_request([measured, {"latencies_ms": [1.0]}]) is None
    assert bench.cpu_per_request([]) is None


def test_it_states_the_ceiling_and_aggpays_budget_from_the_figures():
    bench = _bench_orders()
    base = {"aggpay": 2.0, "load": 2.0, "postgres": 0.0, "simulator": 0.0, "redis": 0.0, "rest": 0.0, "machine": 4.0}
    orders = {"aggpay": 6.0, "load": 2.0, "postgres": 1.0, "simulator": 2.0, "redis": 0.0, "rest": 0.0,
              "machine": 11.0}
    text = bench.render_costs({"merchant": base, "orders": orders},
                              {"merchant": {"rps": 400.0}, "orders": {"rps": 145.0}}, cores=2)
    assert "runs at **33%**" in text  # aggpay alone: 2 / 6
    assert "ceiling of **57%**" in text  # 4 / (11 − 6 + 2)
    assert "≤ 3.00 ms per order" in text  # 2 × 4 − (11 − 6)
    assert "80% busy" in text  # 4 ms × 400/s over 2 cores
    orders.update(simulator=6.0, machine=15.0)  # the others alone above 2 × 4 ms
    text = bench.render_costs({"merchant": base, "orders": orders},
                              {"merchant": {"rps": 400.0}, "orders": {"rps": 100.0}}, cores=2)
    assert "No cost of aggpay's server would meet the target here" in text

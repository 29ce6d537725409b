"""Order creation under load (issue 5 "How it is checked"): ``POST /api/v1/orders`` for ``wechat.native`` through
gunicorn (``-k gthread``) + PostgreSQL + the channel simulators in their own process (``manage.py
run_simulators``, answering at once), against the signed ``GET /api/v1/merchant`` baseline in the same run.
Target: order creation at ≥ 50% of the baseline's throughput.

    .venv/bin/python bench/bench_orders.py      # needs PostgreSQL and Redis, like `make test`

Reuses bench/run.py (database, gunicorn, the merchant baseline's load process, percentiles, machine facts) and
adds an order load process (``--load``: this file, each request a new out_trade_no, every answer's signature
verified by AggpayClient). Every order is real: routed, priced, stored, sent to the WeChat Pay simulator over
signed HTTP, its answer verified and applied. Rewrites the "Order creation" section of docs/benchmarks.md.
Settings: the BENCH_* variables of bench/run.py; the database is BENCH_ORDERS_DATABASE_URL (default
``aggpay_bench_orders``, dropped and recreated).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import cpu  # noqa: E402  (bench/cpu.py)
import run as harness  # noqa: E402  (bench/run.py)

DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:orders:start -->", "<!-- bench:orders:end -->"
TARGET_RATIO = 0.5
DATABASE_URL = os.environ.get("BENCH_ORDERS_DATABASE_URL",
                              "postgres://postgres@127.0.0.1:5432/aggpay_bench_orders")


def log(message: str) -> None:
    print(f"[bench-orders] {message}", flush=True)


# --- seeding (runs inside Django, with the server's environment) ----------------------------------------------
def seed(simulator_root: str) -> None:
    """The demo merchant contracted for wechat.native on a WeChat Pay account provisioned at the simulators."""
    import django

    django.setup()
    from decimal import Decimal

    from aggpay.management import demo
    from channels.models import ChannelAccount, ChannelProduct
    from channels.simulators import wechatpay as wechat_sim
    from merchants.models import Contract, ContractRate, Merchant

    merchant = Merchant.objects.get(merchant_no=demo.DEMO_MERCHANT_NO)
    config = wechat_sim.provision(simulator_root, name="bench-orders")
    account = ChannelAccount.objects.create(code="bench-wx", kind="wechatpay", name="bench WeChat Pay",
                                            base_url=f"{simulator_root}/wechatpay", config=config, enabled=True)
    ChannelProduct.objects.create(account=account, product="wechat.native", cost_rate=Decimal("0.0020"),
                                  max_amount=5_000_000)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state="active",
                                       business_code="BENCH-WX", sub_mchid="1900000109")
    ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal("0.0038"))


# --- the order load process ----------------------------------------------------------------------------------
def load_orders(args) -> dict:
    """bench/load.py's bounded threaded loop, each request a signed create with a new out_trade_no."""
    import load

    from aggpay.api.client import AggpayClient

    run_id = uuid.uuid4().hex[:8]

    def make_call(args, index: int):
        client = AggpayClient(args.base_url, args.app_id, secret=args.secret, timeout=30)
        numbers = itertools.count(1)

        def call() -> tuple[int, bool]:
            body = {"out_trade_no": f"B{run_id}{index:02d}{next(numbers):07d}", "amount": 100,
                    "product": "wechat.native", "subject": "bench tea"}
            status, _, data = client.request("POST", "/api/v1/orders", json=body)
            return status, status == 201 and bool((data or {}).get("pay_params", {}).get("code_url"))

        return call

    args.target = "orders"
    return load.run(args, make_call=make_call)


def run_order_load(base_url: str, seconds: float) -> dict:
    from aggpay.management import demo

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, str(Path(__file__)), "--load", "--base-url", base_url, "--seconds", str(seconds),
               "--threads", str(harness.CLIENT_THREADS), "--app-id", demo.DEMO_APP_ID, "--secret",
               demo.DEMO_APP_SECRET, "--out", str(out)]
    try:
        subprocess.run(command, cwd=REPO, check=True, timeout=seconds + 120)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


# --- the run ---------------------------------------------------------------------------------------------------
def start_simulators(state: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = harness.free_port()
    process = subprocess.Popen([sys.executable, "manage.py", "run_simulators", "--port", str(port), "--state",
                                str(state)], cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    root = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(root + "/", timeout=0.5)
            return process, root
        except requests.ConnectionError:
            if process.poll() is not None:
                raise SystemExit("simulators exited: " + process.stderr.read().decode()[-2000:]) from None
            time.sleep(0.1)
    harness.stop(process)
    raise SystemExit("the simulators did not start within 20 s")


PARTIES = (("aggpay", "aggpay (gunicorn: master and workers)"),
           ("load", "load generator (signs, sends, verifies each answer)"),
           ("postgres", "PostgreSQL (every backend and helper process)"),
           ("simulator", "WeChat Pay simulator (verifies our signature, signs its answer, stores the trade)"),
           ("redis", "Redis"),
           ("rest", "rest of the machine (kernel, other processes)"),
           ("machine", "**whole machine**"))


def cpu_per_request(target_runs: list[dict]) -> dict[str, float] | None:
    """Milliseconds of CPU per request of each party over a target's rounds (bench/cpu.py). ``machine`` is what
    all cores spent, less the load processes' start-up (imports, before the first request); ``rest`` is the
    machine's share no party accounts for. None where /proc could not be read."""
    if not target_runs or any("cpu" not in run for run in target_runs):
        return None
    requests = sum(len(run["latencies_ms"]) for run in target_runs)
    if not requests:
        return None
    metered = [name for name, _ in PARTIES if name not in ("load", "rest", "machine")]  # the Meter's parties
    total = {name: 0.0 for name, _ in PARTIES}
    for run in target_runs:
        for name in metered:
            total[name] += run["cpu"][name]
        total["load"] += run.get("cpu_seconds", 0.0)
        total["machine"] += run["cpu"]["machine"] - run.get("startup_cpu_seconds", 0.0)
    total["rest"] = total["machine"] - sum(total[name] for name in (*metered, "load"))
    return {name: seconds * 1000 / requests for name, seconds in total.items()}


def _ms(value: float) -> str:
    return "≈ 0" if abs(value) < 0.1 else f"{value:.2f} ms"  # /proc/stat and the processes disagree by ~2%


def render_costs(costs: dict, results: dict, cores: int) -> str:
    """The per-process table and what it allows: the ratio on aggpay's CPU alone, and the ceiling on this machine
    if an order cost aggpay no more than a baseline call."""
    base, orders = costs["merchant"], costs["orders"]
    rows = "\n".join(f"| {label} | {_ms(base[name])} | {_ms(orders[name])} |" for name, label in PARTIES)
    busy = {target: costs[target]["machine"] * results[target]["rps"] / 1000 / cores for target in costs}
    others = orders["machine"] - orders["aggpay"]
    ceiling = base["machine"] / (others + base["aggpay"])
    budget = TARGET_RATIO ** -1 * base["machine"] - others  # aggpay's CPU per order at which the target is met
    need = (f"Meeting the target here needs aggpay's server at ≤ {budget:.2f} ms per order." if budget > 0 else
            "No cost of aggpay's server would meet the target here: the other parties alone spend more.")
    return f"""CPU per request of each process during the rounds above (bench/cpu.py reads /proc; the load generator
measures itself while it sends):

| process | `GET /api/v1/merchant` | `POST /api/v1/orders` |
|---|---:|---:|
{rows}

The cores were {busy['merchant']:.0%} busy during the baseline's rounds and {busy['orders']:.0%} during the orders',
so throughput follows the whole machine's CPU per request: {base['machine']:.2f} / {orders['machine']:.2f} ms =
{base['machine'] / orders['machine']:.0%}. Of an order's {orders['machine']:.2f} ms, aggpay's server spends
{orders['aggpay']:.2f} ms, {orders['aggpay'] / base['aggpay']:.1f}× what it spends on a baseline call: counting
aggpay's CPU alone, order creation runs at **{base['aggpay'] / orders['aggpay']:.0%}** of the baseline. The other
parties spend {others:.2f} ms per order on the same cores, so even if an order cost aggpay no more than a baseline
call the machine would spend {others + base['aggpay']:.2f} ms per order: a ceiling of **{ceiling:.0%}** of the
baseline on this machine. {need}"""


def render(results: dict, info: dict, costs: dict | None = None) -> str:
    base, orders = results["merchant"], results["orders"]
    ratio = orders["rps"] / base["rps"] if base["rps"] else float("nan")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    rows = "\n".join(
        f"| {label} | {r['requests']:,} | {r['errors']} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} |"
        for label, r in (("`GET /api/v1/merchant` (signed; baseline)", base),
                         ("`POST /api/v1/orders` wechat.native (signed)", orders)))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{START}
## Order creation (bench/bench_orders.py)

{when}, commit {info['commit']}.

| endpoint | requests | errors | requests/s | p50 ms | p99 ms |
|---|---:|---:|---:|---:|---:|
{rows}

**Order creation runs at {ratio:.0%} of the signed baseline's throughput** (target ≥ {TARGET_RATIO:.0%}:
**{verdict}**). Each order is validated, checked, routed, priced, stored, sent to the WeChat Pay simulator over
signed HTTP (its answer verified) and updated with the `code_url` — one round trip to a channel that answers at
once, in its own process (`manage.py run_simulators`). Under load the server, the simulator, the load generator
and PostgreSQL share this run's {info['cores']} cores.

{render_costs(costs, results, info['cores']) if costs and all(costs.values()) else "(No per-process CPU figures: /proc was not readable.)"}

Setup: as the run above — gunicorn `-k gthread` with {harness.WORKERS} workers × {harness.GTHREADS} threads,
DEBUG off, PostgreSQL through Django's psycopg pool, nonces in Redis — load from a separate process with
{harness.CLIENT_THREADS} threads, {harness.ROUNDS} alternating rounds of {harness.SECONDS:g} s per endpoint
after a warm-up. Machine: {info['cpu']}, {info['cores']} cores; load average before the run
{info['load_before']}. Rerun: `.venv/bin/python bench/bench_orders.py` (the BENCH_* settings above apply;
database `BENCH_ORDERS_DATABASE_URL`, default `aggpay_bench_orders`, recreated each run).
{END}"""


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n## History\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    elif "## History" in text:
        at = text.index("## History")
        text = text[:at] + section + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


def main() -> int:
    harness.DATABASE_URL = DATABASE_URL  # server_env() and the seeding read it
    env = harness.server_env()
    load_before = os.getloadavg()
    log(f"recreating {DATABASE_URL.rsplit('/', 1)[-1]} and migrating")
    harness.recreate_database(DATABASE_URL)
    harness.manage(env, "migrate", "--noinput")
    harness.manage(env, "seed_demo", "--allow-published-passwords", "--skip-staff", "--skip-channels")
    with tempfile.TemporaryDirectory() as tmp:
        simulators, sim_root = start_simulators(Path(tmp) / "simulators.sqlite3", env)
        server = None
        try:
            subprocess.run([sys.executable, str(Path(__file__)), "--seed", sim_root], cwd=REPO, env=env,
                           check=True)
            port = harness.free_port()
            base_url = f"http://127.0.0.1:{port}"
            env["AGGPAY_PUBLIC_BASE_URL"] = base_url
            log(f"gunicorn -k gthread --workers {harness.WORKERS} --threads {harness.GTHREADS} on {base_url}; "
                f"simulators on {sim_root}")
            server = harness.start_gunicorn(env, port)
            meter = cpu.Meter({"aggpay": cpu.tree(server.pid), "simulator": cpu.tree(simulators.pid),
                               "postgres": cpu.named("postgres"), "redis": cpu.named("redis-server")})
            runs: dict[str, list[dict]] = {"merchant": [], "orders": []}
            harness.load(base_url, "merchant", harness.WARMUP_SECONDS)
            run_order_load(base_url, harness.WARMUP_SECONDS)
            for round_no in range(1, harness.ROUNDS + 1):
                for target in runs:
                    before = meter.read() if cpu.available() else None
                    result = (harness.load(base_url, "merchant", harness.SECONDS) if target == "merchant"
                              else run_order_load(base_url, harness.SECONDS))
                    if before is not None:
                        result["cpu"] = meter.spent_since(before)
                    runs[target].append(result)
                    quick = harness.summarise([result])
                    log(f"round {round_no}/{harness.ROUNDS} {target:<8} {quick['rps']:8.0f} req/s  "
                        f"p50 {quick['p50']:.1f} ms  p99 {quick['p99']:.1f} ms  errors {quick['errors']}")
            info = harness.machine_info(env, load_before)
        finally:
            if server is not None:
                harness.stop(server)
            harness.stop(simulators)
    results = {target: harness.summarise(target_runs) for target, target_runs in runs.items()}
    costs = {target: cpu_per_request(target_runs) for target, target_runs in runs.items()}
    for target, result in results.items():
        if result["errors"] or result["requests"] == 0:
            log(f"{target}: {result['errors']} errors, statuses {result['statuses']} — not recording this run")
            return 1
    write_doc(render(results, info, costs))
    ratio = results["orders"]["rps"] / results["merchant"]["rps"]
    log(f"order creation at {ratio:.0%} of the baseline (target ≥ {TARGET_RATIO:.0%}); wrote "
        f"{DOC.relative_to(REPO)}")
    if all(costs.values()):
        for target, cost in costs.items():
            log(f"CPU ms per request, {target:<8} " + "  ".join(f"{party} {ms:.2f}" for party, ms in cost.items()))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", metavar="SIMULATOR_ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--app-id")
    parser.add_argument("--secret")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.seed:
        seed(args.seed)
        sys.exit(0)
    if args.load:
        Path(args.out).write_text(json.dumps(load_orders(args)))
        sys.exit(0)
    sys.exit(main())

"""``make bench``: signed ``GET /api/v1/merchant`` against unsigned ``GET /healthz`` on one gunicorn + PostgreSQL.

1. (Re)creates the bench database (BENCH_DATABASE_URL, default ``aggpay_bench`` on the local server), migrates
   it and seeds the demo merchant and its HMAC app (``seed_demo --skip-staff --skip-channels``).
2. Starts gunicorn (``-k gthread``, BENCH_WORKERS workers × BENCH_GTHREADS threads) on a free loopback port,
   production-shaped: DEBUG off, Django's psycopg pool, nonces in Redis (BENCH_REDIS_URL). No Celery broker is
   set, so /healthz costs one ``SELECT 1`` — the baseline of "a Django request that touches the database".
3. Alternates the two targets for BENCH_ROUNDS rounds of BENCH_SECONDS each, every run a separate load process
   (bench/load.py, BENCH_CLIENT_THREADS threads), and merges the rounds.
4. Rewrites the "Latest run" part of docs/benchmarks.md and appends a line to its history.

Everything stays on 127.0.0.1 and every load run is bounded in time and request count.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aggpay.management import demo  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"
HISTORY = "<!-- bench:history -->"
TARGET_COST = 0.25  # issue 2: authentication and signing may cost at most 25% of throughput

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/aggpay_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
GTHREADS = int(os.environ.get("BENCH_GTHREADS", "4"))
CLIENT_THREADS = int(os.environ.get("BENCH_CLIENT_THREADS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP_SECONDS = 2.0
MAX_REQUESTS = 500_000  # per load run, on top of the time bound

LABELS = {"healthz": "`GET /healthz` (unsigned)", "merchant": "`GET /api/v1/merchant` (signed, HMAC)"}


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name.startswith("aggpay_bench"):
        raise SystemExit(f"BENCH_DATABASE_URL must name a database starting with aggpay_bench (got {name!r}): "
                         "the benchmark drops and recreates it")
    with psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, dbname="postgres",
                         user=unquote(parts.username or "postgres"),
                         password=unquote(parts.password or "") or None, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "AGGPAY_SIMULATOR"))}
    env.update(
        DJANGO_SETTINGS_MODULE="aggpay.settings",
        DEBUG="0",
        # Plain HTTP on loopback, as `make up`: no secure-only cookies, no redirect to HTTPS, no HSTS.
        SECURE_COOKIES="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=DATABASE_URL + ("&" if "?" in DATABASE_URL else "?") + "pool=true",
        CACHE_URL=REDIS_URL,
        AGGPAY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        AGGPAY_SIMULATORS="0",
        # The load comes from one app, faster than a merchant's default allowance on a quick machine: the limit
        # stays on (its counter is part of what a call costs) but out of reach.
        AGGPAY_API_RATE_LIMIT_PER_SECOND="1000000",
        LOG_LEVEL="WARNING",
        # The seeded demo app's notify URL is on 127.0.0.1 (aggpay/management/demo.py); nothing is delivered here.
        AGGPAY_NOTIFY_PRIVATE_ADDRESSES="1",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def start_gunicorn(env: dict, port: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "aggpay.wsgi:application", "--worker-class", "gthread", "--workers", str(WORKERS),
         "--threads", str(GTHREADS), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "--keep-alive", "5"],
        cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {process.returncode}")
            try:
                # The first request imports the URLconf and opens the pool: give it time on a busy machine.
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=15).status_code == 200:
                    return process
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise SystemExit("gunicorn did not answer /healthz within 90 s")
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def load(base_url: str, target: str, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, str(REPO / "bench" / "load.py"), "--base-url", base_url, "--target", target,
               "--seconds", str(seconds), "--threads", str(CLIENT_THREADS), "--max-requests", str(MAX_REQUESTS),
               "--out", str(out)]
    if target == "merchant":
        command += ["--app-id", demo.DEMO_APP_ID, "--secret", demo.DEMO_APP_SECRET]
    try:
        subprocess.run(command, cwd=REPO, check=True, timeout=seconds + 120)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    # Nearest-rank percentile: the smallest value with at least `fraction` of the samples at or below it.
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(runs: list[dict]) -> dict:
    latencies = sorted(value for run in runs for value in run["latencies_ms"])
    seconds = sum(run["seconds"] for run in runs)
    statuses: dict[str, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "requests": len(latencies),
        "errors": sum(run["errors"] for run in runs),
        "statuses": statuses,
        "seconds": seconds,
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
    }


def machine_info(env: dict, load_before: tuple[float, float, float]) -> dict:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        memory = f"{int(match.group(1)) / 1024 / 1024:.0f} GiB" if match else memory

    def version(code: str) -> str:
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
        return result.stdout.strip() or "unknown"

    postgres = version("import os, psycopg; c = psycopg.connect(os.environ['DATABASE_URL'].split('?')[0]); "
                       "print(c.execute('SHOW server_version').fetchone()[0].split()[0])")
    redis_version = version("import os, redis; print(redis.Redis.from_url(os.environ['CACHE_URL']).info()"
                            "['redis_version'])")
    packages = version("import django, gunicorn, rest_framework; "
                       "print(f'Django {django.get_version()}, DRF {rest_framework.VERSION}, gunicorn {gunicorn.__version__}')")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True)
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform(),
        "load_before": " / ".join(f"{value:.2f}" for value in load_before),
        "python": platform.python_version(), "postgres": postgres, "redis": redis_version, "packages": packages,
        "commit": (commit.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty.stdout.strip() else ""),
    }


def render_latest(results: dict, info: dict, when: str) -> str:
    base, signed = results["healthz"], results["merchant"]
    cost = 1 - signed["rps"] / base["rps"] if base["rps"] else float("nan")
    verdict = "met" if cost <= TARGET_COST else "NOT met"
    rows = "\n".join(
        f"| {LABELS[name]} | {r['requests']:,} | {r['errors']} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} |"
        for name, r in (("healthz", base), ("merchant", signed))
    )
    return f"""{START}
## Latest run

{when}, commit {info['commit']}.

| endpoint | requests | errors | requests/s | p50 ms | p99 ms |
|---|---:|---:|---:|---:|---:|
{rows}

**Authentication and signing cost: {cost:.1%} of throughput** (1 − signed/unsigned requests per second);
target ≤ {TARGET_COST:.0%}: **{verdict}**. p50 grows by {signed['p50'] - base['p50']:.1f} ms per call.

Setup: gunicorn `-k gthread` with {WORKERS} workers × {GTHREADS} threads, DEBUG off, PostgreSQL through
Django's psycopg pool, nonces in Redis; load from a separate process with {CLIENT_THREADS} threads and
keep-alive; {ROUNDS} alternating rounds of {SECONDS:g} s per endpoint after a {WARMUP_SECONDS:g} s warm-up.
The load generator shares the machine's cores with the server, so absolute numbers are a floor; the ratio is
what the target is about.

Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM; {info['os']}; Python {info['python']};
PostgreSQL {info['postgres']}; Redis {info['redis']}; {info['packages']}. Load average (1/5/15 min) just
before the run: {info['load_before']} — anything else running on the machine lowers both figures.
{END}"""


def write_doc(results: dict, info: dict) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    latest = render_latest(results, info, when)
    base, signed = results["healthz"], results["merchant"]
    cost = 1 - signed["rps"] / base["rps"] if base["rps"] else float("nan")
    history_row = (f"| {when} | {info['commit']} | {base['rps']:,.0f} | {signed['rps']:,.0f} | {cost:.1%} | "
                   f"{base['p99']:.1f} / {signed['p99']:.1f} |")
    text = DOC.read_text() if DOC.exists() else ""
    if START in text and END in text and HISTORY in text:
        text = text[: text.index(START)] + latest + text[text.index(END) + len(END):]
        text = text.rstrip("\n") + "\n" + history_row + "\n"  # the history table ends the file
    else:
        text = f"""# Benchmarks

`make bench` (bench/run.py) measures what the merchant API's front door costs: requests per second and
p50/p99 latency of a signed `GET /api/v1/merchant` (HMAC authentication, nonce check in Redis, the app and
merchant from PostgreSQL, the response signed) against an unsigned `GET /healthz` (one `SELECT 1`), on the same
gunicorn + PostgreSQL server in the same run. Target (issue 2): authentication and signing cost at most 25% of
throughput.

{latest}

## How to rerun

```
make bench                          # needs PostgreSQL and Redis, like `make test`
BENCH_SECONDS=20 BENCH_ROUNDS=5 make bench   # longer runs
.venv/bin/python bench/breakdown.py          # in-process cost of each piece of a signed call
```

Settings (environment): `BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/aggpay_bench`;
dropped and recreated each run, so its name must start with `aggpay_bench`), `BENCH_REDIS_URL` (nonce store,
default `redis://127.0.0.1:6379/13`), `BENCH_WORKERS` (2), `BENCH_GTHREADS` (4), `BENCH_CLIENT_THREADS` (8),
`BENCH_SECONDS` (10), `BENCH_ROUNDS` (3). The run rewrites the "Latest run" section above and appends a line
below.

## History

{HISTORY}
| when | commit | /healthz req/s | /api/v1/merchant req/s | cost | p99 ms (healthz / merchant) |
|---|---|---:|---:|---:|---|
{history_row}
"""
    DOC.write_text(text)


def _terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # unwinds through `finally`, which stops gunicorn


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    env = server_env()
    load_before = os.getloadavg()
    log(f"recreating {DATABASE_URL.rsplit('/', 1)[-1]} and migrating")
    recreate_database(DATABASE_URL)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--allow-published-passwords", "--skip-staff", "--skip-channels")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log(f"gunicorn -k gthread --workers {WORKERS} --threads {GTHREADS} on {base_url}")
    server = start_gunicorn(env, port)
    runs: dict[str, list[dict]] = {"healthz": [], "merchant": []}
    try:
        for target in runs:
            load(base_url, target, WARMUP_SECONDS)
        for round_no in range(1, ROUNDS + 1):
            for target in runs:
                result = load(base_url, target, SECONDS)
                runs[target].append(result)
                quick = summarise([result])
                log(f"round {round_no}/{ROUNDS} {target:<8} {quick['rps']:8.0f} req/s  p50 {quick['p50']:.1f} ms  "
                    f"p99 {quick['p99']:.1f} ms  errors {quick['errors']}")
        info = machine_info(env, load_before)
    finally:
        stop(server)
    results = {target: summarise(target_runs) for target, target_runs in runs.items()}
    for target, result in results.items():
        if result["errors"] or result["requests"] == 0:
            log(f"{target}: {result['errors']} errors, statuses {result['statuses']} — not recording this run")
            return 1
    write_doc(results, info)
    cost = 1 - results["merchant"]["rps"] / results["healthz"]["rps"]
    log(f"authentication + signing cost {cost:.1%} of throughput (target ≤ {TARGET_COST:.0%}); "
        f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

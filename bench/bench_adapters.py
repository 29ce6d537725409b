"""Channel adapters against their simulators (issue 3): round trips per second of create + query through each
adapter, and the CPU cost of signing and verifying per call.

The simulators run in their own process (``manage.py run_simulators``) on a loopback port with a throwaway state
file, answering at once; the adapters run here, one thread, ``BENCH_ADAPTER_CALLS`` create+query pairs per kind.
CPU per call is this process's CPU time (``time.process_time``) over the calls — signing, verifying, JSON and HTTP
client work, not the simulator's. The sign/verify micro-figures time the crypto alone.

Usage: ``python bench/bench_adapters.py`` (``make bench`` runs it); prints a Markdown table and writes it between the
``bench:adapters`` markers of docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggpay.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402

from channels.adapters.base import PaymentRequest, SubMerchant, TradeRef  # noqa: E402
from channels.registry import adapter_class  # noqa: E402

CALLS = int(os.environ.get("BENCH_ADAPTER_CALLS", "300"))
MICRO = int(os.environ.get("BENCH_CRYPTO_ITERATIONS", "300"))
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:adapters:start -->", "<!-- bench:adapters:end -->"
PRODUCT = {"wechatpay": "wechat.native", "alipay": "alipay.qr", "bank": "unionpay.qr"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulators(state: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "run_simulators", "--port", str(port),
                             "--state", str(state)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(root + "/", timeout=0.5)
            return proc, root
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("simulators did not start: " + proc.stderr.read().decode()[-2000:])


def sub_merchant(kind: str, root: str, config: dict) -> SubMerchant:
    session = requests.Session()
    session.trust_env = False
    if kind == "alipay":
        from channels.simulators.alipay import provision_merchant

        merchant = provision_merchant(root, app_id=config["app_id"], name="bench")
        return SubMerchant(sub_mchid=merchant["sub_mchid"], app_auth_token=merchant["app_auth_token"])
    if kind == "bank":
        resp = session.post(root + "/bank/_control/merchants", json={"org_no": config["org_no"], "name": "bench"},
                            timeout=10)
        resp.raise_for_status()
        return SubMerchant(sub_mchid=resp.json()["mch_no"])
    return SubMerchant(sub_mchid="1900000109")


def run_kind(kind: str, root: str) -> dict:
    module = __import__(f"channels.simulators.{kind}", fromlist=["provision"])
    config = module.provision(root, name=f"bench-{kind}")
    adapter_cls = adapter_class(kind)
    adapter = adapter_cls(adapter_cls.config_class(**config), base_url=f"{root}/{kind}")
    sub = sub_merchant(kind, root, config)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    latencies = []

    def one(i: int) -> None:
        no = f"B{kind[:2].upper()}{int(time.time() * 1000) % 10**9}{i:06d}"
        adapter.create_payment(PaymentRequest(product=PRODUCT[kind], sub_merchant=sub, out_trade_no=no,
                                              amount=100 + i, subject="bench", notify_url="http://127.0.0.1:9/n",
                                              expires_at=expires))
        adapter.query_payment(TradeRef(sub_merchant=sub, out_trade_no=no))

    for i in range(10):  # warm up connections and key caches
        one(i)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(CALLS):
        started = time.perf_counter()
        one(1000 + i)
        latencies.append((time.perf_counter() - started) * 1000)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    latencies.sort()
    return {"kind": kind, "pairs_per_s": CALLS / wall, "p50": statistics.median(latencies),
            "p99": latencies[int(len(latencies) * 0.99) - 1], "cpu_ms_per_call": cpu * 1000 / (2 * CALLS)}


def crypto_micro() -> list[tuple[str, float, float]]:
    """(scheme, sign µs, verify µs) with a 2048-bit key over a typical request body."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from channels.adapters import alipay_sign, bank_wire
    from channels.adapters import wechatpay_crypto as wx

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    body = b'{"sp_mchid":"1900000100","sub_mchid":"1900000109","out_trade_no":"T1","amount":{"total":100}}'
    params = {"app_id": "2021", "method": "alipay.trade.precreate", "biz_content": body.decode(), "sign_type": "RSA2",
              "timestamp": "2026-11-26 12:00:00", "version": "1.0", "charset": "utf-8"}

    def timed(fn) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(MICRO):
            fn()
        return (time.perf_counter() - started) * 1e6 / MICRO

    results = []
    message = wx.request_message("POST", "/v3/pay/partner/transactions/native", "1700000000", "N" * 32, body)
    signature = wx.rsa_sign(private_pem, message)
    public = wx.public_key(public_pem)
    results.append(("WeChat Pay v3 (RSA-SHA256 over 5 lines)", timed(lambda: wx.rsa_sign(private_pem, message)),
                    timed(lambda: wx.rsa_verify(public, message, signature))))
    priv, pub = alipay_sign.load_private_key(private_pem), alipay_sign.load_public_key(public_pem)
    content = alipay_sign.request_sign_content(params)
    sign = alipay_sign.rsa2_sign(priv, content)
    results.append(("Alipay RSA2 (sorted params)", timed(lambda: alipay_sign.rsa2_sign(priv, content)),
                    timed(lambda: alipay_sign.rsa2_verify(pub, content, sign))))
    bank_params = dict(params)
    bank_params["sign"] = bank_wire.sign(bank_params, private_pem)
    results.append(("Bank (RSA-SHA256 over canonical k=v)", timed(lambda: bank_wire.sign(params, private_pem)),
                    timed(lambda: bank_wire.verify(bank_params, public_pem))))
    return results


def render(rows: list[dict], micro: list[tuple[str, float, float]]) -> str:
    lines = [START, "",
             f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; {CALLS} create+query pairs per kind, one client thread, simulators "
             "in their own process on loopback.", "",
             "| adapter | create+query pairs/s | p50 ms (pair) | p99 ms (pair) | client CPU ms per call |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['kind']} | {row['pairs_per_s']:.0f} | {row['p50']:.1f} | {row['p99']:.1f} | "
                     f"{row['cpu_ms_per_call']:.2f} |")
    lines += ["", "| signature scheme (2048-bit RSA) | sign µs | verify µs |", "|---|---:|---:|"]
    for name, sign_us, verify_us in micro:
        lines.append(f"| {name} | {sign_us:.0f} | {verify_us:.0f} |")
    lines += ["", "Rerun: `make bench` or `.venv/bin/python bench/bench_adapters.py`.", "", END]
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="aggpay-bench-sim-") as tmp:
        proc, root = start_simulators(Path(tmp) / "sim.sqlite3")
        try:
            rows = [run_kind(kind, root) for kind in ("wechatpay", "alipay", "bank")]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    table = render(rows, crypto_micro())
    print(table)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[: text.index(START)] + table + text[text.index(END) + len(END):]
    else:  # first run: before the history that bench/run.py appends to
        section = "## Channel adapters against their simulators (issue 3)\n\n" + table + "\n\n"
        at = text.find("## History")
        text = text[:at] + section + text[at:] if at >= 0 else text.rstrip() + "\n\n" + section
    DOC.write_text(text)


if __name__ == "__main__":
    main()

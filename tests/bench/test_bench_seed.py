"""The benchmarks seed the demo merchant under the server's own settings (bench/run.py server_env: DEBUG off, as in
production). Since notifications go to public addresses only unless allowed (aggpay/notify_urls.py), the demo app's
127.0.0.1 notify URL stopped `make bench` at its seed; the bench's server allows private addresses, as every party of
it runs on this machine."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
from django.core.management import call_command

from aggpay.env import env_bool
from aggpay.management import demo
from merchants.models import MerchantApp

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _server_env() -> dict:
    spec = importlib.util.spec_from_file_location("bench_run_under_test", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.server_env()


@pytest.mark.django_db
def test_the_bench_seeds_the_demo_app_under_its_servers_settings(settings, monkeypatch):
    env = _server_env()
    monkeypatch.delenv("AGGPAY_NOTIFY_PRIVATE_ADDRESSES", raising=False)
    if "AGGPAY_NOTIFY_PRIVATE_ADDRESSES" in env:
        monkeypatch.setenv("AGGPAY_NOTIFY_PRIVATE_ADDRESSES", env["AGGPAY_NOTIFY_PRIVATE_ADDRESSES"])
    settings.DEBUG = env["DEBUG"] == "1"
    # As aggpay/settings.py reads it in the bench's server process.
    settings.AGGPAY_NOTIFY_PRIVATE_ADDRESSES = env_bool("AGGPAY_NOTIFY_PRIVATE_ADDRESSES", settings.DEBUG)

    call_command("seed_demo", "--allow-published-passwords", "--skip-staff", "--skip-channels", stdout=io.StringIO())

    assert MerchantApp.objects.get(app_id=demo.DEMO_APP_ID).notify_url.startswith("http://127.0.0.1")


def test_the_bench_server_serves_plain_http_without_redirecting_to_https(monkeypatch):
    # DEBUG off turns on the redirect to HTTPS (aggpay/settings.py) unless SECURE_COOKIES is off, as in `make up`:
    # the bench's gunicorn listens on plain HTTP on loopback, so every measured call would be a 301.
    import json
    import subprocess
    import sys

    for name in ("SECURE_COOKIES", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):  # the test run's own (test_settings)
        monkeypatch.delenv(name, raising=False)
    env = _server_env()
    code = ("import json, aggpay.settings as s; "
            "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=BENCH.parent, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, 0, False]

"""Where a signed call's time goes, measured in one process without HTTP: ``.venv/bin/python bench/breakdown.py``.

Complements ``make bench`` (which measures throughput over HTTP): each line is the mean of a few hundred calls of
one piece of the signed ``GET /api/v1/merchant`` path — the whole request through Django's test client (with the
app remembered by the process, and cold), the app lookup query, the nonce check in Redis, the HMAC and Fernet work — beside ``GET /healthz`` and a bare
``SELECT 1``. Uses the bench database (recreated) and BENCH_REDIS_URL, like bench/run.py.
"""

from __future__ import annotations

import io
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import run  # noqa: E402  (bench/run.py: the same database and server settings)


def timed(label: str, call, count: int = 400) -> None:
    for _ in range(30):
        call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    print(f"  {label:<48} {(time.perf_counter() - started) / count * 1000:7.3f} ms")


def main() -> int:
    env = run.server_env()
    env["ALLOWED_HOSTS"] = "testserver"
    os.environ.update(env)
    run.recreate_database(run.DATABASE_URL)

    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from aggpay.api import credentials
    from aggpay.api.client import AggpayClient
    from aggpay.crypto import decrypt_text, encrypt_text
    from aggpay.management import demo
    from merchants.models import MerchantApp

    call_command("migrate", verbosity=0, stdout=io.StringIO())
    call_command("seed_demo", "--allow-published-passwords", "--skip-staff", "--skip-channels", stdout=io.StringIO())
    client = Client()
    signer = AggpayClient("http://testserver", demo.DEMO_APP_ID, secret=demo.DEMO_APP_SECRET)
    token = encrypt_text(demo.DEMO_APP_SECRET)

    def cursor_select_1():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    print("mean per call, in-process (no HTTP, no gunicorn):")
    timed("GET /healthz", lambda: client.get("/healthz"))
    def signed_call():
        return client.get("/api/v1/merchant", HTTP_AUTHORIZATION=signer.authorization("GET", "/api/v1/merchant", b""))

    def cold_signed_call():
        credentials.forget_all()
        return signed_call()

    timed("GET /api/v1/merchant (signed, app remembered)", signed_call)
    timed("GET /api/v1/merchant (signed, cold: app read)", cold_signed_call)
    timed("SELECT 1", cursor_select_1)
    timed("app lookup: select_related('merchant')", lambda: MerchantApp.objects.select_related("merchant")
          .filter(app_id=demo.DEMO_APP_ID, active=True).first())
    timed("app lookup without the merchant", lambda: MerchantApp.objects.filter(app_id=demo.DEMO_APP_ID).first())
    timed("nonce check: cache.add on Redis", lambda: cache.add("bench:" + secrets.token_hex(8), 1, 60))
    timed("nonce claim + generation token (one pipeline)",
          lambda: credentials.nonce_claim("bench:" + secrets.token_hex(8), 60))
    timed("Fernet decrypt of the app secret", lambda: decrypt_text(token))
    timed("client: sign one request (HMAC)", lambda: signer.authorization("GET", "/api/v1/merchant", b""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared fixtures: named personas, merchants with apps, and the channel simulators on their own port."""

from __future__ import annotations

import os
import uuid

import pytest

from channels.simulators.server import SimulatorThread
from channels.simulators.store import Store
from merchants.services.merchants import merchant_activate
from tests.factories import MerchantAppFactory, MerchantFactory

# Playwright's sync API runs an event loop in the test thread; Django's ORM guard must not trip on it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _front_door_starts_cold():
    """Each test starts with nothing remembered by the API front door (aggpay.api.credentials): personas reuse
    app_ids across tests whose rows are rolled back."""
    from aggpay.api import credentials

    credentials.forget_all()
    yield


@pytest.fixture(autouse=True)
def _no_sign_in_failures_on_the_loopback():
    """Each test starts with no failed sign-ins counted against the test client's address (aggpay.staff
    .login_throttle): the counters live in the test run's Redis cache for 15 minutes, so the few failed sign-ins of
    each run (a non-staff account refused, …) would add up over runs in a row and lock the address for later ones."""
    from django.core.cache import cache

    from aggpay.staff.login_throttle import cache_keys

    cache.delete_many([*cache_keys("address", "127.0.0.1")])


@pytest.fixture
def local_midday():
    """Keeps the test clear of local midnight (settings.TIME_ZONE, Asia/Shanghai; 16:00 UTC): within three hours of
    it, the clock moves forward to the next local noon and keeps ticking; otherwise it is left alone. Yields the
    time the test starts at.

    For tests that stage rows minutes or hours before or after now and then filter by local day: run near midnight,
    such a row falls on the other day and the filter rightly drops it — CI failed so on 2026-11-28 at 00:10 +08:00.
    Dates such a test filters by are taken inside the test, never at collection. Only forward: certificates and
    keys the session made at the real time stay valid. The clock moves for this process only (the simulators'
    thread included); PostgreSQL's ``now()`` does not."""
    import datetime as dt

    import time_machine
    from django.utils import timezone

    now = timezone.localtime()
    if dt.time(3) <= now.time() < dt.time(21):
        yield now
        return
    day = now.date() if now.time() < dt.time(3) else now.date() + dt.timedelta(days=1)
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=now.tzinfo)
    with time_machine.travel(noon, tick=True):
        yield noon


@pytest.fixture
def tea_house(db):
    """Persona: an active merchant, 'Tea House', with an HMAC payments app."""
    merchant = MerchantFactory(short_name="Tea House", legal_name="Hangzhou Tea House Co., Ltd.")
    merchant = merchant_activate(merchant_id=merchant.pk, actor=None, reason="test persona")
    return merchant


@pytest.fixture
def tea_house_app(tea_house):
    return MerchantAppFactory(merchant=tea_house, app_id="app_teahouse0001", secret="tea-house-secret-0123456789")


@pytest.fixture(scope="session")
def simulator_server(tmp_path_factory):
    """The channel simulators in a background thread on their own loopback port, with a fresh state file.

    Adapters reach them only over HTTP at ``simulator_server.base_url + "/<kind>"``.
    """
    store = Store(tmp_path_factory.mktemp("sim") / "simulators.sqlite3")
    server = SimulatorThread(store).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _simulator_faults_end_with_their_test(request):
    """A fault a test injected and did not use up (``times`` left, a ``match`` that never came) is dropped when the
    test ends: the simulators live for the session, and a leftover rule would fall on a later test's traffic (two
    rules holding back every WeChat REFUND notice once starved a refund-callback test on the same worker)."""
    yield
    if "simulator_server" in request.fixturenames:
        for app in request.getfixturevalue("simulator_server").app.apps.values():
            app.faults.clear()


class _Receiver:
    """Records what is POSTed to it and answers with a configurable status and body."""

    def __init__(self):
        import threading

        self.requests: list[dict] = []
        self.status = 200
        self.body = b"SUCCESS"
        self.event = threading.Event()
        self.server = None
        # A per-receiver path: a port reused by a later test must not receive an earlier test's retried callbacks.
        self.token = uuid.uuid4().hex

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/notify/{self.token}"

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            self.event.wait(0.05)
            self.event.clear()
        return self.requests


@pytest.fixture
def callback_receiver():
    """A loopback HTTP endpoint standing in for a merchant's notify_url or aggpay's callback URL in unit tests."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    receiver = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - stdlib naming
            length = int(self.headers.get("Content-Length") or 0)
            if not self.path.startswith(f"/notify/{receiver.token}"):
                self.rfile.read(length)
                self.send_response(410)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            receiver.requests.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": self.rfile.read(length)}
            )
            self.send_response(receiver.status)
            self.send_header("Content-Length", str(len(receiver.body)))
            self.end_headers()
            self.wfile.write(receiver.body)
            receiver.event.set()

        def log_message(self, *args):
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


# --- merchant API (H1): RSA keys, an RSA app, and signed requests through Django's test client ----------------


@pytest.fixture(scope="session")
def merchant_rsa_keypair():
    """A merchant's RSA-2048 key pair as (private PEM, public PEM), generated once per test session."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


@pytest.fixture
def fresh_platform_key():
    """Forget the in-process platform key around a test: each test's database starts without one."""
    from aggpay.platform_keys import platform_key_cache_clear

    platform_key_cache_clear()
    yield
    platform_key_cache_clear()


@pytest.fixture
def tea_house_rsa_app(tea_house, merchant_rsa_keypair, fresh_platform_key):
    """Tea House's second app, signing with RSA; its private key is ``merchant_rsa_keypair[0]``."""
    return MerchantAppFactory(
        merchant=tea_house, app_id="app_teahousersa01", sign_type="rsa", secret="",
        public_key_pem=merchant_rsa_keypair[1],
    )


class SignedApi:
    """Merchant-API requests through Django's test client, signed for ``app`` the documented way.

    Keyword overrides exist to send something other than what was signed (tampering tests):
    ``sign_target``/``sign_body``/``sign_method`` change what is signed, ``authorization`` replaces the header.
    """

    def __init__(self, client, app, *, secret=None, private_key_pem=None):
        self.client = client
        self.app = app
        self.secret = secret if secret is not None else (app.secret if app.sign_type == "hmac" else None)
        self.private_key_pem = private_key_pem

    def authorization(self, method, target, body, *, timestamp=None, nonce=None):
        import time

        from aggpay.api import signing

        return signing.sign_request(
            method, target, body, app_id=self.app.app_id,
            timestamp=int(time.time()) if timestamp is None else timestamp, nonce=nonce or signing.new_nonce(),
            secret=None if self.private_key_pem else self.secret, private_key=self.private_key_pem,
        )

    def request(self, method, target, *, json=None, body=None, timestamp=None, nonce=None, sign_target=None,
                sign_body=None, sign_method=None, authorization=None, headers=None, content_type="application/json"):
        import json as jsonlib

        if body is None:
            body = b"" if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        if authorization is None:
            authorization = self.authorization(
                sign_method or method, sign_target if sign_target is not None else target,
                sign_body if sign_body is not None else body, timestamp=timestamp, nonce=nonce,
            )
        extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        return self.client.generic(method, target, data=body, content_type=content_type, **extra)

    def get(self, target, **kwargs):
        return self.request("GET", target, **kwargs)

    def post(self, target, **kwargs):
        return self.request("POST", target, **kwargs)


@pytest.fixture
def signed_api(client):
    """``signed_api(app)`` (HMAC) or ``signed_api(app, private_key_pem=...)`` (RSA) → a SignedApi."""

    def make(app, **kwargs):
        return SignedApi(client, app, **kwargs)

    return make


# --- staff (H2): one user per role of aggpay.roles.ROLES ----------------------------------------------------


@pytest.fixture
def staff_member(db):
    """``staff_member("operations")`` → an active staff user holding that role (created through the service).

    Role slugs: onboarding_clerk, risk_officer, support_agent, operations, finance, admin. The password is
    ``STAFF_PASSWORD``; pass ``username=`` to make several users of one role.
    """
    from aggpay.staff.services import staff_user_create

    def make(role: str, *, username: str | None = None):
        return staff_user_create(username=username or f"{role}-user", password=STAFF_PASSWORD, role=role)

    return make


STAFF_PASSWORD = "correct horse battery staple"


def _wechatpay_account(simulator_server, name: str):
    from channels.adapters.wechatpay import WechatPayAdapter, WechatPayConfig
    from channels.simulators.wechatpay import provision

    config = WechatPayConfig(**provision(simulator_server.base_url, name=name[:60]))
    return WechatPayAdapter(config, base_url=simulator_server.base_url + "/wechatpay", read_timeout=2)


@pytest.fixture(scope="module")
def wechatpay_adapter(simulator_server, request):
    """The WeChat Pay adapter on an account at the simulator shared by one test module (key generation is
    the slow part); tests keep apart by unique out_trade_no. Short read timeout for fault tests."""
    return _wechatpay_account(simulator_server, request.node.name)


@pytest.fixture(scope="module")
def wechatpay_config(wechatpay_adapter):
    return wechatpay_adapter.config


@pytest.fixture
def fresh_wechatpay_adapter(simulator_server, request):
    """An adapter on its own new account: for tests that change the account's simulator settings."""
    return _wechatpay_account(simulator_server, request.node.name)


@pytest.fixture
def alipay_config(simulator_server, request):
    """A fresh Alipay ISV app registered at the simulator, as AlipayConfig (our key pair, its Alipay key)."""
    from channels.adapters.alipay import AlipayConfig
    from channels.simulators.alipay import provision

    return AlipayConfig(**provision(simulator_server.base_url, name=request.node.name[:60]))


@pytest.fixture
def alipay_adapter(simulator_server, alipay_config):
    """The Alipay adapter pointed at the simulator, with a short read timeout for fault tests."""
    from channels.adapters.alipay import AlipayAdapter

    return AlipayAdapter(alipay_config, base_url=simulator_server.base_url + "/alipay", read_timeout=2)


@pytest.fixture
def alipay_merchant(simulator_server, alipay_config):
    """A merchant that authorised our Alipay app (B.6): SubMerchant with its smid and app_auth_token."""
    from channels.adapters.base import SubMerchant
    from channels.simulators.alipay import provision_merchant

    made = provision_merchant(simulator_server.base_url, app_id=alipay_config.app_id, name="Tea House")
    return SubMerchant(sub_mchid=made["sub_mchid"], app_auth_token=made["app_auth_token"])


# --- partner onboarding and notifications (H10) -------------------------------------------------------------


@pytest.fixture
def westlake_agency(db):
    """Persona: 'Westlake Agency', a partner (agent) that onboards merchants through the API."""
    return MerchantFactory(short_name="Westlake Agency", legal_name="Hangzhou Westlake Agency Co., Ltd.",
                           is_partner=True)


@pytest.fixture
def westlake_app(westlake_agency):
    """Westlake Agency's HMAC app with the ``onboarding`` scope (no notify URL until a test gives it one)."""
    return MerchantAppFactory(merchant=westlake_agency, app_id="app_westlake0001", scopes=["onboarding"],
                              secret="westlake-agency-secret-0123456789", notify_url="")


# --- onboarding workbench (H9): staff personas signed in through Django's test client --------------------------


@pytest.fixture
def clerk_wang(staff_member):
    """Persona: Wang, an onboarding clerk (the real role group, as the pages see it)."""
    return staff_member("onboarding_clerk", username="wang.clerk")


@pytest.fixture
def risk_zhao(staff_member):
    """Persona: Zhao, a risk officer."""
    return staff_member("risk_officer", username="zhao.risk")


@pytest.fixture
def drafted_tea_house(clerk_wang):
    """The sample Tea House record (tests/merchants/records.py) drafted by Wang with every required document."""
    from merchants.services.onboarding import document_add, merchant_onboard_draft
    from tests.merchants.records import png, record

    application = merchant_onboard_draft(actor=clerk_wang, data=record())
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        document_add(merchant_id=application.merchant_id, actor=clerk_wang, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    return application


# --- orders and refunds (H13) -------------------------------------------------------------------------------


@pytest.fixture
def quiet_channels(simulator_server):
    """After the test, stop the WeChat simulator's pending callbacks (delayed refund notices) and let in-flight
    ones finish, so no callback reaches the live server while the test database is being flushed."""
    import time

    import requests

    yield
    requests.delete(f"{simulator_server.base_url}/wechatpay/_control/callbacks", timeout=10)
    time.sleep(0.5)


@pytest.fixture
def payer_on_plain_http(settings):
    """The payer's phone talks to live_server over plain http: Secure cookies would never come back from it. The
    simulated wallet bridge stands in for the wallets' JS bridges on the pay page."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.AGGPAY_PAYER_STANDIN = True

"""aggpay settings: everything from the environment (see the settings table in README.md).

Unset variables give the embedded default (SQLite, eager Celery, in-process simulators off unless asked for),
so ``make demo`` needs nothing but Python. Production sets DATABASE_URL, CELERY_BROKER_URL, CACHE_URL, SECRET_KEY,
AGGPAY_ENCRYPTION_KEYS and ALLOWED_HOSTS.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dj_database_url
from kombu import Queue

from aggpay.env import ConfigError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("AGGPAY_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "insecure-dev-only-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_celery_beat",
    "django_htmx",
    "import_export",
    "aggpay.apps.AggpayConfig",
    "merchants.apps.MerchantsConfig",
    "channels.apps.PaymentChannelsConfig",
    "trades.apps.TradesConfig",
    "risk.apps.RiskConfig",
]

# The staff pages' session, CSRF, user, messages and htmx are skipped for /api/, which authenticates each call by its
# signature (aggpay/staff/outside_api.py says which of these the API still gets, and why).
MIDDLEWARE = [
    "aggpay.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "aggpay.staff.outside_api.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "aggpay.staff.outside_api.CsrfViewMiddleware",
    "aggpay.staff.outside_api.AuthenticationMiddleware",
    "aggpay.staff.session_age.SessionMaxAgeMiddleware",
    "aggpay.staff.outside_api.MessageMiddleware",
    "aggpay.staff.nul_guard.StaffNulGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "aggpay.staff.outside_api.HtmxMiddleware",
]
# `check --deploy`'s security.W003 looks for Django's CSRF middleware by its dotted name only; the subclass above is
# that middleware outside /api/ (tests/aggpay/test_staff_outside_api.py proves a staff POST without a token is still
# refused), so the warning is wrong here.
SILENCED_SYSTEM_CHECKS = ["security.W003"]

if not DEBUG:
    # Static files served by the app itself in `make up` (collected into STATIC_ROOT) without a proxy in front;
    # with DEBUG on, runserver serves them from the apps.
    MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                      "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "aggpay.urls"
WSGI_APPLICATION = "aggpay.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "aggpay.roles.roles_context",
            ],
        },
    },
]


def _database_from_url(url: str | None) -> dict:
    """DATABASE_URL → Django DATABASES entry. ``?pool=true`` turns on psycopg's connection pool."""
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "aggpay.sqlite3"),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    pool = query.pop("pool", "false").lower()
    if pool not in {"true", "false", "1", "0"}:
        raise ConfigError(f"DATABASE_URL pool={pool!r} must be true or false")
    cleaned = urlunsplit(parts._replace(query=urlencode(query)))
    config = dj_database_url.parse(cleaned, conn_max_age=0 if pool in {"true", "1"} else 60)
    if pool in {"true", "1"}:
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN", 2),
            "max_size": env_int("DATABASE_POOL_MAX", 10),
            "timeout": 10,
        }
    return config


DATABASES = {"default": _database_from_url(env_str("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_cache_url = env_str("CACHE_URL") or env_str("REDIS_URL")
if _cache_url:
    CACHES = {"default": {"BACKEND": "aggpay.cache.RedisCache", "LOCATION": _cache_url}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "aggpay"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/staff/login/"
LOGIN_REDIRECT_URL = "/staff/"
LOGOUT_REDIRECT_URL = "/staff/login/"

LANGUAGE_CODE = "en"
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "aggpay" / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

# --- encryption at rest (design §5 rule 10) -------------------------------------------------------------
# Comma-separated Fernet keys, newest first. The demo writes one into var/encryption.keys (git-ignored).
_keys_file = VAR_DIR / "encryption.keys"
AGGPAY_ENCRYPTION_KEYS = env_list("AGGPAY_ENCRYPTION_KEYS")
if not AGGPAY_ENCRYPTION_KEYS and _keys_file.exists():
    AGGPAY_ENCRYPTION_KEYS = [k.strip() for k in _keys_file.read_text().split(",") if k.strip()]
# The key of the lookup digests (blind indexes) of encrypted values, e.g. a 小微 owner's ID number (aggpay/crypto.py
# ``lookup_digest``): at least 32 characters. Unset, it is derived from the oldest encryption key; set it before a key
# rotation drops that key, since digests stored under one key do not match under another.
AGGPAY_LOOKUP_KEY = env_str("AGGPAY_LOOKUP_KEY", "")

# --- merchant API ------------------------------------------------------------------------------------
AGGPAY_SIGNATURE_WINDOW_SECONDS = 300
# Partner document uploads arrive base64 in JSON (merchant-api.md is JSON-only): 5 MB files need ~7 MB bodies.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
AGGPAY_DELIVERY_LEASE_SECONDS = env_int("AGGPAY_DELIVERY_LEASE_SECONDS", 60)
# Merchant notifications go to public addresses only (aggpay/notify_urls.py: a notify_url must not reach inside our
# network); the demo and the tests post to receivers on 127.0.0.1, so DEBUG allows private ones.
AGGPAY_NOTIFY_PRIVATE_ADDRESSES = env_bool("AGGPAY_NOTIFY_PRIVATE_ADDRESSES", DEBUG)
# A payment that arrives after its order was closed is refunded automatically (design §5 rule 3); 0 queues it for
# support instead.
AGGPAY_LATE_PAYMENT_AUTO_REFUND = env_bool("AGGPAY_LATE_PAYMENT_AUTO_REFUND", True)
AGGPAY_NONCE_TTL_SECONDS = 15 * 60
# merchant-api.md "Errors" 429 `rate_limited`: signed calls per app per second (one counter per app and second, in
# the Redis round trip that claims the nonce). A runaway integration slows itself, not the other merchants. 0 = off.
AGGPAY_API_RATE_LIMIT_PER_SECOND = env_int("AGGPAY_API_RATE_LIMIT_PER_SECOND", 500)
AGGPAY_PUBLIC_BASE_URL = env_str("AGGPAY_PUBLIC_BASE_URL", "http://127.0.0.1:8000")

# --- channel simulators (channels/simulators) --------------------------------------------------------
AGGPAY_SIMULATORS = env_bool("AGGPAY_SIMULATORS", False)
# One-code-pay pages offer a "simulated wallet" button (the wallets' JS bridges exist only inside the real apps):
# on with the simulators, off otherwise.
AGGPAY_PAYER_STANDIN = env_bool("AGGPAY_PAYER_STANDIN", AGGPAY_SIMULATORS or DEBUG)
AGGPAY_SIMULATOR_STATE = Path(env_str("AGGPAY_SIMULATOR_STATE", str(VAR_DIR / "simulators.sqlite3")))
AGGPAY_SIMULATOR_BASE_URL = env_str("AGGPAY_SIMULATOR_BASE_URL", AGGPAY_PUBLIC_BASE_URL + "/_sim")
AGGPAY_CHANNEL_CONNECT_TIMEOUT = float(env_str("AGGPAY_CHANNEL_CONNECT_TIMEOUT", "3"))
AGGPAY_CHANNEL_READ_TIMEOUT = float(env_str("AGGPAY_CHANNEL_READ_TIMEOUT", "10"))

# --- REST framework / OpenAPI ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["aggpay.api.authentication.MerchantSignatureAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["aggpay.api.permissions.IsMerchantApp"],
    "DEFAULT_RENDERER_CLASSES": ["aggpay.api.renderers.UTF8JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "aggpay.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "aggpay merchant API",
    "DESCRIPTION": "One API in front of WeChat Pay, Alipay and UnionPay. See docs/api.md for signing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Stable enum component names: several resources have a ``state`` field (merchant, order, refund).
    "ENUM_NAME_OVERRIDES": {
        "MerchantStateEnum": "merchants.models.MerchantState",
        "SignTypeEnum": "merchants.models.SignType",
        "AppScopeEnum": "merchants.models.AppScope",
    },
}

# --- Celery (aggpay/celery.py) -------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("notify"), Queue("channel"), Queue("recon")]
# Longer than the longest countdown/ETA we schedule (6 h notification retries), so Redis does not
# redeliver a task that is merely waiting for its ETA.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7 * 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The demo has no beat process: the periodic jobs run in a thread of the web process (aggpay/inprocess_beat.py).
AGGPAY_INPROCESS_BEAT = env_bool("AGGPAY_INPROCESS_BEAT", False)
AGGPAY_INPROCESS_BEAT_SECONDS = env_int("AGGPAY_INPROCESS_BEAT_SECONDS", 5)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ROUTES = {
    "trades.tasks.deliver_*": {"queue": "notify"},
    "channels.tasks.*": {"queue": "channel"},
    "merchants.tasks.submit_contract": {"queue": "channel"},
    "merchants.tasks.poll_contract": {"queue": "channel"},
    "trades.tasks.reconcile_*": {"queue": "recon"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "aggpay.middleware.RequestIdLogFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The demo's in-process beat runs five jobs every few seconds: their success lines would drown the log.
        **({"celery.app.trace": {"level": "WARNING"}} if env_bool("AGGPAY_INPROCESS_BEAT", False) else {}),
        # Eager Celery (no broker) still takes a producer from its pool to read the serializer, and building the
        # pool logs "No hostname was supplied" for the unset broker URL, once a process; nothing connects.
        **({"kombu.connection": {"level": "ERROR"}} if CELERY_BROKER_URL is None else {}),
    },
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"


def _proxy_ssl_header(value: str | None) -> tuple[str, str] | None:
    """``X-Forwarded-Proto`` (meaning ``X-Forwarded-Proto: https``) or ``Name=value`` → SECURE_PROXY_SSL_HEADER."""
    if not value:
        return None
    name, _, expected = value.partition("=")
    name, expected = name.strip(), expected.strip() or "https"
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ConfigError(f"SECURE_PROXY_SSL_HEADER={value!r} must be a header name, optionally =value")
    return "HTTP_" + name.upper().replace("-", "_"), expected


# HTTPS. A deployment served over HTTPS (SECURE_COOKIES, on unless DEBUG) redirects plain HTTP to it and sends HSTS
# for a year; `make up` and the demo serve plain HTTP on loopback, so their SECURE_COOKIES=0 / DEBUG turn both off.
# Behind a TLS-terminating proxy, SECURE_PROXY_SSL_HEADER names the header by which it says the request was HTTPS
# (without it the redirect would loop). /healthz stays reachable over plain HTTP for load-balancer probes.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("SECURE_PROXY_SSL_HEADER"))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SESSION_COOKIE_SECURE and not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if SESSION_COOKIE_SECURE and not DEBUG else 0)
# Subdomains and preload bind other hosts of the domain (and, preloaded, every browser for months): the operator's call.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# --- staff sessions and sign-in -------------------------------------------------------------------------
# A back office that moves money must not stay open on an unattended screen: a session ends after
# AGGPAY_SESSION_IDLE_SECONDS without a request (PCI DSS v4.0 req. 8.2.8 asks for re-authentication after 15 idle
# minutes) — Django's SESSION_COOKIE_AGE, renewed by saving the session on every staff request (one small UPDATE per
# page, nothing next to the page's own queries; /api/ has no session) — and in any case AGGPAY_SESSION_MAX_AGE_SECONDS
# after its sign-in (12 h, a working shift: aggpay/staff/session_age.py), so a stolen cookie kept busy dies too.
SESSION_COOKIE_AGE = env_int("AGGPAY_SESSION_IDLE_SECONDS", 15 * 60)
SESSION_SAVE_EVERY_REQUEST = True
AGGPAY_SESSION_MAX_AGE_SECONDS = env_int("AGGPAY_SESSION_MAX_AGE_SECONDS", 12 * 3600)
# Failed sign-ins on /staff/login/ and /admin/login/ (aggpay/staff/login_throttle.py): after this many within the
# window, the user name (or client address: higher, as colleagues may share one NAT) is refused for the lockout. 0 = off.
AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME = env_int("AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME", 5)
AGGPAY_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("AGGPAY_LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS = env_int("AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
AGGPAY_LOGIN_LOCKOUT_SECONDS = env_int("AGGPAY_LOGIN_LOCKOUT_SECONDS", 15 * 60)
# Behind a proxy every client has the proxy's REMOTE_ADDR: name the header it puts the client's address in (e.g.
# X-Real-IP, or X-Forwarded-For whose last entry is the one it appended). Unset: REMOTE_ADDR. Only set it when the
# proxy overwrites or appends that header, else a client chooses its own address.
AGGPAY_CLIENT_ADDRESS_HEADER = env_str("AGGPAY_CLIENT_ADDRESS_HEADER", "")

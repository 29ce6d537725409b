"""Test settings: the same settings module with test-only overrides in one place (style.md §14).

Tests run on PostgreSQL (DATABASE_URL, default the local server); Celery is eager and propagates errors
unless a test starts a real worker (see tests/aggpay/test_celery_worker.py).
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/aggpay")
os.environ.setdefault("SECURE_COOKIES", "0")

from aggpay.settings import *  # noqa: E402,F403

# A fixed, test-only key; production keys come from AGGPAY_ENCRYPTION_KEYS.
AGGPAY_ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWtleS1hZ2dwYXktdGVzdHMtMDAwMDA="]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_BROKER_URL = None
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
ALLOWED_HOSTS = ["*"]
# Uploaded documents from tests go to a throwaway folder, never into the work tree.
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="aggpay-test-media-"))
# Parallel test processes (pytest-xdist) share one Redis: each keeps its own keys, so that one process's saves
# (which replace the API front door's generation token, aggpay.api.credentials) do not make another's warm calls cold.
CACHES["default"]["KEY_PREFIX"] = "aggpay-test-" + os.environ.get("PYTEST_XDIST_WORKER", "main")  # noqa: F405
# Requests served by the live test server close their database connection when they end (production keeps them
# 60 s, or pools them). A live-server thread still waiting on a kept-alive client socket when the session ends
# held its connection open, and the test database could not be dropped ("being accessed by other users").
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

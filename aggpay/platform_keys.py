"""aggpay's own RSA key pair: signs responses and notifications for RSA apps (merchant-api.md, signing).

Generated once per deployment on first use. Several web processes may ask at the same moment on a fresh
database, so creation relies on the unique ``key_id``: the next id is derived from the same snapshot that found
no active key, so every racer proposes the same id, one insert wins, the others get an IntegrityError and read
the winner's row. The private half is stored encrypted
(``EncryptedTextField``). Each process keeps the loaded key for a short while so that signing a response does
not cost a query and a PEM parse; after a rotation a process picks up the new key within that time, and
merchants verifying during a rotation should accept both public keys (the old row is kept, inactive).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import IntegrityError, connection, transaction

from aggpay.api.signing import load_private_key
from aggpay.models import PlatformKey

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
KEY_BITS = 2048  # the scheme is AGGPAY-SHA256-RSA2048


@dataclass(frozen=True)
class LoadedPlatformKey:
    row: PlatformKey
    private_key: rsa.RSAPrivateKey

    @property
    def key_id(self) -> str:
        return self.row.key_id

    @property
    def public_key_pem(self) -> str:
        return self.row.public_key_pem


_lock = threading.Lock()
_cached: tuple[float, LoadedPlatformKey] | None = None


def platform_key() -> PlatformKey:
    """The active PlatformKey (newest active row), generating the first one if there is none."""
    return loaded_platform_key().row


def loaded_platform_key() -> LoadedPlatformKey:
    """The active key with its private half already parsed, cached in-process for ``CACHE_SECONDS``."""
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and cached[0] > now:
        return cached[1]
    with _lock:
        row, created = _active_or_create()
        loaded = LoadedPlatformKey(row=row, private_key=load_private_key(row.private_key_pem))
        # A key created inside the caller's transaction may yet be rolled back: remember it only once it is
        # certainly in the database (the next call finds it there).
        if not (created and connection.in_atomic_block):
            _cached = (time.monotonic() + CACHE_SECONDS, loaded)
    return loaded


def platform_key_cache_clear() -> None:
    """Forget the in-process copy (tests, and a rotation command that wants the new key at once)."""
    global _cached
    with _lock:
        _cached = None


def _active_or_create() -> tuple[PlatformKey, bool]:
    # One query gives a consistent snapshot: whether an active key exists and how many rows there are.
    snapshot = list(PlatformKey.objects.order_by("-created_at", "-id").values_list("pk", "active"))
    active = [pk for pk, is_active in snapshot if is_active]
    if active:
        return PlatformKey.objects.get(pk=active[0]), False
    return _create_row(key_id=f"pk_{len(snapshot) + 1:04d}")


def _create_row(*, key_id: str) -> tuple[PlatformKey, bool]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    try:
        with transaction.atomic():
            row = PlatformKey.objects.create(key_id=key_id, private_key_pem=private_pem, public_key_pem=public_pem)
    except IntegrityError:
        # Another process won the race for this key_id: use its key.
        row = PlatformKey.objects.filter(key_id=key_id, active=True).first()
        if row is None:
            raise
        return row, False
    logger.info("generated platform signing key %s", key_id)
    return row, True

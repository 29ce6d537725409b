"""Encryption at rest with MultiFernet over AGGPAY_ENCRYPTION_KEYS (newest first) — design §5 rule 10.

Rotating keys: put the new key first, keep the old ones after it, run ``manage.py rotate_encryption`` (later),
then drop the old key. A value that no configured key can open raises ``DecryptionError``: we never hand
ciphertext back to the caller as if it were the secret.

Ciphertext has a fresh IV each time, so an encrypted value cannot be looked up. Where one must be (is this person
already onboarded?), a *blind index* is stored beside it: ``lookup_digest``, an HMAC-SHA256 under a key of its own
(never the raw value, never an unkeyed hash — ID numbers are few enough to enumerate). The key is
AGGPAY_LOOKUP_KEY when set, else derived (HKDF) from the oldest configured encryption key, which stays through a
rotation until the old key is dropped. Stored digests follow their key: set AGGPAY_LOOKUP_KEY before the first key
rotation drops that oldest key, or recompute the digests (merchants' 0009 migration shows how) when it changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """Stored ciphertext could not be decrypted with any configured key."""


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "AGGPAY_ENCRYPTION_KEYS is not set: generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"AGGPAY_ENCRYPTION_KEYS holds a malformed Fernet key: {exc}") from exc


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.AGGPAY_ENCRYPTION_KEYS))


def encrypt_text(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise DecryptionError("stored value cannot be decrypted with the configured AGGPAY_ENCRYPTION_KEYS") from exc


def rotate_text(token: str) -> str:
    """Re-encrypt with the newest key."""
    try:
        return fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise DecryptionError("stored value cannot be decrypted with the configured keys") from exc


@lru_cache(maxsize=8)
def _lookup_key_for(configured: str, keys: tuple[str, ...]) -> bytes:
    if configured:
        if len(configured) < 32:
            raise ImproperlyConfigured("AGGPAY_LOOKUP_KEY must be at least 32 characters of secret material")
        return configured.encode("utf-8")
    if not keys:
        raise ImproperlyConfigured("neither AGGPAY_LOOKUP_KEY nor AGGPAY_ENCRYPTION_KEYS is set: lookup digests "
                                   "need a key")
    try:
        root = base64.urlsafe_b64decode(keys[-1].encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ImproperlyConfigured(f"AGGPAY_ENCRYPTION_KEYS holds a malformed Fernet key: {exc}") from exc
    # A separate key for a separate purpose: the encryption key itself is never used as the HMAC key.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aggpay lookup digest v1").derive(root)


def lookup_digest(value: str, *, purpose: str) -> str:
    """Hex HMAC-SHA256 of ``value`` for an equality lookup of an encrypted column (a blind index).

    ``purpose`` (e.g. ``"merchants.legal_person_id_number"``) separates the digests of different kinds of value, so
    equal text in two columns never gives equal digests. The caller normalises ``value`` first; equal digests mean
    equal values under the current lookup key only (see the module docstring).
    """
    key = _lookup_key_for(getattr(settings, "AGGPAY_LOOKUP_KEY", "") or "", tuple(settings.AGGPAY_ENCRYPTION_KEYS))
    message = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()

"""Encryption at rest with MultiFernet over AGGPAY_ENCRYPTION_KEYS (newest first) — design §5 rule 10.

Rotating keys: put the new key first, keep the old ones after it, run ``manage.py rotate_encryption`` (later),
then drop the old key. A value that no configured key can open raises ``DecryptionError``: we never hand
ciphertext back to the caller as if it were the secret.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
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

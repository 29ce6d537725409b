"""Uploaded batch files are kept in MEDIA_ROOT encrypted with the platform's Fernet keys (design §5 rule 10):
the sheet carries ID and bank account numbers, the ZIP pictures of ID cards."""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.db.models.fields.files import FieldFile

from aggpay.crypto import DecryptionError, fernet


def store_encrypted(field_file: FieldFile, *, name: str, content: bytes) -> None:
    """Put ``content`` encrypted into ``field_file`` (the model is saved by the caller)."""
    field_file.save(name + ".enc", ContentFile(fernet().encrypt(content)), save=False)


def read_encrypted(field_file: FieldFile) -> bytes:
    with field_file.open("rb") as handle:
        token = handle.read()
    try:
        return fernet().decrypt(token)
    except Exception as exc:  # cryptography's InvalidToken, or a file that is not a token at all
        raise DecryptionError(f"{field_file.name} cannot be decrypted with the configured keys") from exc


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()

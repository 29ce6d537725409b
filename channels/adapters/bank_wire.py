"""The bank gateway's wire format, our side (docs/channels/bank.md §3): canonical string, RSA2, field encryption.

Pure functions over plain values so they can be checked against the worked example of bank.md §3.5. The
simulator implements the same page independently (channels/simulators/bank_wire.py): two readings of one spec.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# bank.md §2: every time on the wire is Beijing time (UTC+8, no DST) as yyyyMMddHHmmss.
CST = dt.timezone(dt.timedelta(hours=8), "CST")
TIME_FORMAT = "%Y%m%d%H%M%S"


def canonical_string(params: Mapping[str, Any]) -> str:
    """bank.md §3.1: ``k=v`` of every non-empty top-level field except ``sign``, sorted by key, joined by ``&``.

    Empty means null, "" , [] or {}. Strings go in raw (no URL-encoding), integers in decimal, booleans as
    ``true``/``false``, objects and arrays as compact JSON with sorted keys and unescaped non-ASCII.
    """
    parts = []
    for key in sorted(params):
        value = params[key]
        if key == "sign" or _is_empty(value):
            continue
        parts.append(f"{key}={canonical_value(value)}")
    return "&".join(parts)


def canonical_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    raise TypeError(f"bank.md §3.1 has no canonical form for {type(value).__name__}")


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


@lru_cache(maxsize=64)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the bank gateway signs with RSA keys only (bank.md §3.2)")
    return key


@lru_cache(maxsize=64)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the bank gateway signs with RSA keys only (bank.md §3.2)")
    return key


def sign(params: Mapping[str, Any], private_key_pem: str) -> str:
    """bank.md §3.2: base64(RSASSA-PKCS1-v1_5(SHA-256, utf8(canonical_string)))."""
    message = canonical_string(params).encode("utf-8")
    signature = load_private_key(private_key_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(params: Mapping[str, Any], public_key_pem: str) -> bool:
    """True if ``params["sign"]`` is the RSA2 signature of the canonical string of ``params``."""
    signature = params.get("sign")
    if not isinstance(signature, str) or not signature:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        message = canonical_string(params).encode("utf-8")
        load_public_key(public_key_pem).verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError, TypeError, RecursionError):
        return False
    return True


def encrypt_field(value: str, bank_public_key_pem: str) -> str:
    """bank.md §9.2: sensitive apply fields are RSA-OAEP(SHA-256, MGF1-SHA-256) under the bank's key, base64."""
    ciphertext = load_public_key(bank_public_key_pem).encrypt(
        value.encode("utf-8"),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return base64.b64encode(ciphertext).decode("ascii")


def new_nonce() -> str:
    """bank.md §3.3: 32 characters from [0-9a-f], never reused."""
    return secrets.token_hex(16)


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("bank times must be aware datetimes")
    return value.astimezone(CST).strftime(TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    """A bank time (yyyyMMddHHmmss, Beijing) as an aware datetime. Raises ValueError when malformed."""
    if not isinstance(text, str) or len(text) != 14 or not text.isdigit():
        raise ValueError(f"{text!r} is not a yyyyMMddHHmmss time")
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=CST)

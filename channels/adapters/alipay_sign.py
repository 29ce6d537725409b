"""Alipay RSA2 signing and verification, our side (channel-protocols.md B.2–B.4).

Pure functions over strings so they can be tested with known answers:
  * ``request_sign_content`` — B.2: every sent param except ``sign`` and empty values, ``sign_type`` INCLUDED,
    sorted by key, ``k=v`` joined with ``&`` over raw (un-URL-encoded) values;
  * ``notify_sign_content`` — B.4: the same but ``sign_type`` EXCLUDED too (the asymmetry is Alipay's);
  * ``response_substring`` — B.3: the exact text of the ``…_response`` JSON value in the raw body, which is what
    Alipay signed (re-serialising would change spacing, key order or escapes and break the signature).
"""

from __future__ import annotations

import base64
import binascii
import re
import textwrap
from collections.abc import Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def request_sign_content(params: Mapping[str, str]) -> str:
    """B.2 sign content of a request (``sign`` excluded, ``sign_type`` included, empty values dropped)."""
    return _join({k: v for k, v in params.items() if k != "sign"})


def notify_sign_content(params: Mapping[str, str]) -> str:
    """B.4 sign content of an async notify: both ``sign`` and ``sign_type`` excluded."""
    return _join({k: v for k, v in params.items() if k not in ("sign", "sign_type")})


def _join(params: Mapping[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v is not None and v != "")


def _pem(text: str, label: str) -> bytes:
    # The Alipay portal hands out keys as bare base64 (no PEM armour); accept both forms.
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return text.encode("ascii")
    body = "\n".join(textwrap.wrap("".join(text.split()), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode("ascii")


@lru_cache(maxsize=64)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Our app private key: PKCS#8 or PKCS#1 PEM, or the portal's bare base64 PKCS#8."""
    try:
        key = serialization.load_pem_private_key(_pem(pem, "PRIVATE KEY"), password=None)
    except ValueError:
        key = serialization.load_pem_private_key(_pem(pem, "RSA PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the Alipay app key must be an RSA key")
    return key


@lru_cache(maxsize=64)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """The Alipay public key: SubjectPublicKeyInfo PEM (or bare base64), or PKCS#1 ``RSA PUBLIC KEY``."""
    try:
        key = serialization.load_pem_public_key(_pem(pem, "PUBLIC KEY"))
    except ValueError:
        key = serialization.load_pem_public_key(_pem(pem, "RSA PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the Alipay public key must be an RSA key")
    return key


def rsa2_sign(private_key: rsa.RSAPrivateKey, content: str) -> str:
    """``base64(RSA-PKCS1v1.5-SHA256(utf8(content)))`` — B.2 step 3 for sign_type RSA2."""
    signature = private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(public_key: rsa.RSAPublicKey, content: str, sign: str) -> bool:
    try:
        signature = base64.b64decode(sign.encode("ascii"), validate=False)
        public_key.verify(signature, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return True


def response_substring(raw: str, key: str) -> str | None:
    """The exact raw text of the JSON object value of ``key`` in ``raw`` (B.3), or None if absent.

    A JSON-aware scan (it skips braces inside string values, unlike some SDKs' naive brace counting), so a
    ``}`` inside a ``sub_msg`` cannot truncate what we verify.
    """
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*(?=\{)', raw)
    if not match:
        return None
    start = match.end()
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(raw)):
        char = raw[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return raw[start:index + 1]
    return None

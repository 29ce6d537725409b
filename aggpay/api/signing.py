"""The merchant API signing scheme as pure functions (merchant-api.md "Authentication and signing").

The server (``aggpay.api.authentication``, ``aggpay.api.views``), the Python client (``aggpay.api.client``), the
tests, the benchmarks and docs/api.md all build and check signatures with these functions, so there is exactly
one definition of what gets signed. Nothing here touches Django or the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HMAC_SCHEME = "AGGPAY-HMAC-SHA256"
RSA_SCHEME = "AGGPAY-SHA256-RSA2048"
SCHEMES = (HMAC_SCHEME, RSA_SCHEME)

TIMESTAMP_HEADER = "Aggpay-Timestamp"
NONCE_HEADER = "Aggpay-Nonce"
SIGNATURE_HEADER = "Aggpay-Signature"

AUTHORIZATION_KEYS = frozenset({"app_id", "timestamp", "nonce", "signature"})
NONCE_RE = re.compile(r"^[A-Za-z0-9]{16,64}$")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")
# Digits beyond _TIMESTAMP_RE's twelve: milliseconds (JavaScript's Date.now() has 13) or finer, not seconds (10 until
# the year 2286). Bug: refused as "digits only", which a 13-digit timestamp is.
_MILLISECONDS_RE = re.compile(r"^[0-9]{13,}$")
_NONCE_CHARACTER = re.compile(r"[A-Za-z0-9]")
_APP_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
# One `key="value"` pair; values are quoted and hold no quote or backslash (nothing we issue needs escaping).
_PAIR_RE = re.compile(r'\s*([a-z_]+)="([^"\\]*)"\s*')

SignableKey = str | bytes | rsa.RSAPrivateKey
VerifiableKey = str | bytes | rsa.RSAPublicKey


class AuthorizationError(ValueError):
    """The Authorization header is missing or malformed; the message says what is wrong."""


def new_nonce() -> str:
    """32 random hex characters (128 bits; within the contract's [A-Za-z0-9]{16,64}). One urandom read rather than
    one per character: every response is signed with a fresh nonce."""
    return secrets.token_hex(16)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def string_to_sign(method: str, target: str, timestamp: str | int, nonce: str, body: bytes) -> bytes:
    """METHOD \\n PATH_AND_QUERY \\n TIMESTAMP \\n NONCE \\n BODY \\n — the body as the exact bytes sent."""
    head = f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n".encode()
    return head + _as_bytes(body or b"") + b"\n"


def response_message(timestamp: str | int, nonce: str, body: bytes) -> bytes:
    """TIMESTAMP \\n NONCE \\n BODY \\n — what aggpay signs on responses and notifications."""
    return f"{timestamp}\n{nonce}\n".encode() + _as_bytes(body or b"") + b"\n"


def hmac_sign(secret: str | bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(_as_bytes(secret), message, hashlib.sha256).digest()).decode("ascii")


def hmac_verify(secret: str | bytes, message: bytes, signature: str) -> bool:
    if not secret:
        return False  # an HMAC over an empty key proves nothing
    return hmac.compare_digest(hmac_sign(secret, message).encode("ascii"), _as_bytes(signature))


def load_private_key(private_key: SignableKey) -> rsa.RSAPrivateKey:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key
    key = serialization.load_pem_private_key(_as_bytes(private_key), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key")
    return key


def load_public_key(public_key: VerifiableKey) -> rsa.RSAPublicKey:
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key
    key = serialization.load_pem_public_key(_as_bytes(public_key))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key


def rsa_sign(private_key_pem: SignableKey, message: bytes) -> str:
    """base64(RSA-PKCS1v1.5-SHA256). Accepts a PEM or an already loaded key (the server caches its key)."""
    key = load_private_key(private_key_pem)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(public_key_pem: VerifiableKey, message: bytes, signature: str) -> bool:
    try:
        key = load_public_key(public_key_pem)
        raw = base64.b64decode(_as_bytes(signature), validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        return False
    return True


def parse_authorization(header: str | None) -> tuple[str, dict[str, str]]:
    """``SCHEME app_id="..",timestamp="..",nonce="..",signature=".."`` → (SCHEME, pairs).

    Strict: one of our two schemes, exactly the four keys once each in any order, quoted values, the timestamp
    in unix seconds and the nonce 16-64 characters of [A-Za-z0-9]. Raises ``AuthorizationError`` saying what is
    wrong, so a merchant debugging an integration is told which part to fix.
    """
    if not header or not header.strip():
        raise AuthorizationError(
            f"missing Authorization header: send '{HMAC_SCHEME} app_id=\"...\",timestamp=\"...\",nonce=\"...\","
            f"signature=\"...\"' (or {RSA_SCHEME} for RSA apps)"
        )
    scheme, _, params = header.strip().partition(" ")
    # Auth schemes are case-insensitive (RFC 9110 §11.1); we answer in the canonical spelling.
    scheme = scheme.upper()
    if scheme not in SCHEMES:
        raise AuthorizationError(f"Authorization scheme must be {HMAC_SCHEME} or {RSA_SCHEME}")
    pairs: dict[str, str] = {}
    for part in params.split(","):
        match = _PAIR_RE.fullmatch(part)
        if match is None:
            raise AuthorizationError('Authorization parameters must be key="value" pairs separated by commas')
        key, value = match.groups()
        if key not in AUTHORIZATION_KEYS:
            raise AuthorizationError(f"unknown Authorization parameter {key!r}")
        if key in pairs:
            raise AuthorizationError(f"Authorization parameter {key!r} appears more than once")
        pairs[key] = value
    missing = sorted(AUTHORIZATION_KEYS - pairs.keys())
    if missing:
        raise AuthorizationError(f"Authorization is missing {', '.join(missing)}")
    if not _APP_ID_RE.match(pairs["app_id"]):
        raise AuthorizationError("app_id is malformed")
    if _MILLISECONDS_RE.match(pairs["timestamp"]):
        raise AuthorizationError(f"timestamp must be unix seconds, not milliseconds: {len(pairs['timestamp'])} "
                                 "digits is too many (now is 10 digits; in JavaScript Math.floor(Date.now() / 1000))")
    if not _TIMESTAMP_RE.match(pairs["timestamp"]):
        raise AuthorizationError("timestamp must be unix seconds (digits only)")
    if not NONCE_RE.match(pairs["nonce"]):
        raise AuthorizationError(_nonce_problem(pairs["nonce"]))
    if not pairs["signature"]:
        raise AuthorizationError("signature is empty")
    return scheme, pairs


def _nonce_problem(nonce: str) -> str:
    """What is wrong with a nonce NONCE_RE refuses, naming the first character outside [A-Za-z0-9]. Bug: "must be
    16-64 characters of [A-Za-z0-9]" alone left a merchant with a UUID (its '-') or base64 (a '+', '/' or '=' in many
    of them) guessing which rule it broke."""
    rule = "nonce must be 16-64 characters of [A-Za-z0-9]"
    stray = next((character for character in nonce if not _NONCE_CHARACTER.fullmatch(character)), None)
    if stray is not None:
        return f"{rule}; {stray!r} is not one of them (hex will do: 16 random bytes are 32 hex digits)"
    return f"{rule}; this one has {len(nonce)} characters"


def build_authorization(scheme: str, *, app_id: str, timestamp: str | int, nonce: str, signature: str) -> str:
    return f'{scheme} app_id="{app_id}",timestamp="{timestamp}",nonce="{nonce}",signature="{signature}"'


def sign_request(
    method: str,
    target: str,
    body: bytes,
    *,
    app_id: str,
    timestamp: str | int,
    nonce: str,
    secret: str | bytes | None = None,
    private_key: SignableKey | None = None,
) -> str:
    """The Authorization header value for one request: HMAC with ``secret`` or RSA with ``private_key``."""
    if (secret is None) == (private_key is None):
        raise ValueError("give exactly one of secret (HMAC apps) or private_key (RSA apps)")
    message = string_to_sign(method, target, timestamp, nonce, body)
    if secret is not None:
        return build_authorization(HMAC_SCHEME, app_id=app_id, timestamp=timestamp, nonce=nonce,
                                   signature=hmac_sign(secret, message))
    return build_authorization(RSA_SCHEME, app_id=app_id, timestamp=timestamp, nonce=nonce,
                               signature=rsa_sign(private_key, message))


def sign_response(
    body: bytes, *, timestamp: str | int, nonce: str, secret: str | bytes | None = None,
    private_key: SignableKey | None = None,
) -> dict[str, str]:
    """The three Aggpay-* headers for a response or notification body."""
    if (secret is None) == (private_key is None):
        raise ValueError("give exactly one of secret (HMAC apps) or private_key (platform key, RSA apps)")
    message = response_message(timestamp, nonce, body)
    signature = hmac_sign(secret, message) if secret is not None else rsa_sign(private_key, message)
    return {TIMESTAMP_HEADER: str(timestamp), NONCE_HEADER: nonce, SIGNATURE_HEADER: signature}


def verify_response(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str | bytes | None = None,
    platform_public_key_pem: VerifiableKey | None = None,
) -> bool:
    """True when a response (or notification) carries a valid aggpay signature.

    One routine for both kinds of app (merchant-api.md): HMAC apps pass their ``secret``, RSA apps pass the
    platform public key shown with their app. Header names are matched case-insensitively.
    """
    if (secret is None) == (platform_public_key_pem is None):
        raise ValueError("give exactly one of secret (HMAC apps) or platform_public_key_pem (RSA apps)")
    lowered = {str(name).lower(): value for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    nonce = lowered.get(NONCE_HEADER.lower())
    signature = lowered.get(SIGNATURE_HEADER.lower())
    if not timestamp or not nonce or not signature:
        return False
    message = response_message(timestamp, nonce, body)
    if secret is not None:
        return hmac_verify(secret, message, signature)
    return rsa_verify(platform_public_key_pem, message, signature)

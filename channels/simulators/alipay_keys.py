"""The Alipay simulator's own RSA2 code (channel-protocols.md B.2–B.4), written apart from the adapter's on purpose:
the simulator is another party, and two independent implementations catch each other's mistakes."""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from channels.simulators.keys import load_private as _private
from channels.simulators.keys import load_public as _public
from channels.simulators.keys import new_key_pair as generate_keypair  # noqa: F401 (used as keys.generate_keypair)


def sign(private_pem: str, content: str) -> str:
    raw = _private(private_pem).sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify(public_pem: str, content: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        _public(public_pem).verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def request_content(params: dict[str, str]) -> str:
    """B.2: all params but ``sign`` and empty ones, ``sign_type`` kept, sorted, raw ``k=v`` joined by ``&``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def notify_content(params: dict[str, str]) -> str:
    """B.4: as B.2 but ``sign_type`` is left out too."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type") and params[k] != "")

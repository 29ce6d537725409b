"""The Alipay simulator's own RSA2 code (channel-protocols.md B.2–B.4), written apart from the adapter's on purpose:
the simulator is another party, and two independent implementations catch each other's mistakes."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def generate_keypair() -> tuple[str, str]:
    """(PKCS#8 private PEM, SubjectPublicKeyInfo public PEM), RSA-2048 as the Alipay portal issues."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return private_pem, public_pem


@lru_cache(maxsize=256)
def _private(pem: str):
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


@lru_cache(maxsize=256)
def _public(pem: str):
    return serialization.load_pem_public_key(pem.encode("ascii"))


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

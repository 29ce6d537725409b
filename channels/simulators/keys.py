"""RSA key handling shared by the simulators (the channels' side; the adapters keep their own).

Only key generation and PEM loading live here: each simulator still writes its own signing and verification rules,
so a mistake in one channel's wire format cannot hide behind another's.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def new_key_pair() -> tuple[str, str]:
    """(PKCS#8 private PEM, SubjectPublicKeyInfo public PEM), RSA-2048 as the channels' portals issue."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return private_pem, public_pem


@lru_cache(maxsize=256)
def load_private(pem: str):
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


@lru_cache(maxsize=256)
def load_public(pem: str):
    return serialization.load_pem_public_key(pem.encode("ascii"))

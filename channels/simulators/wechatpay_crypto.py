"""The WeChat Pay simulator's own cryptography (the channel's side of channel-protocols.md A.2-A.5).

Deliberately separate from the adapter's helpers: the simulator is another party and must not share our code,
so a mistake on one side cannot hide the same mistake on the other.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from channels.simulators.keys import load_private as _private
from channels.simulators.keys import load_public as _public


def new_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def public_pem(private_pem: str) -> str:
    return _private(private_pem).public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def self_signed_certificate(private_pem: str, common_name: str) -> tuple[str, str]:
    """A platform certificate (A.3 mode 1) for the key: (PEM, serial as uppercase hex)."""
    key = _private(private_pem)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay.com (simulator)")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1825)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), format(cert.serial_number, "X")


def sign(private_pem: str, message: bytes) -> str:
    return base64.b64encode(_private(private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(public_key_pem: str, message: bytes, signature_b64: str) -> bool:
    try:
        _public(public_key_pem).verify(base64.b64decode(signature_b64, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def aes_encrypt(apiv3_key: str, plaintext: bytes, associated_data: str) -> dict:
    """An A.4 ``resource``: AES-256-GCM with the APIv3 key, a 12-character nonce, base64(ciphertext ‖ tag)."""
    nonce = secrets.token_urlsafe(9)[:12]
    data = AESGCM(apiv3_key.encode("utf-8")).encrypt(nonce.encode("utf-8"), plaintext, associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(data).decode("ascii"),
            "associated_data": associated_data, "nonce": nonce}


def aes_decrypt(apiv3_key: str, resource: dict) -> bytes | None:
    try:
        return AESGCM(apiv3_key.encode("utf-8")).decrypt(
            resource["nonce"].encode("utf-8"), base64.b64decode(resource["ciphertext"]),
            (resource.get("associated_data") or "").encode("utf-8"))
    except (InvalidTag, KeyError, ValueError):
        return None


_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


def oaep_decrypt(private_pem: str, ciphertext_b64: str) -> str | None:
    """A.5: the channel opens a sensitive field with its private key; None if it was not encrypted for it."""
    try:
        return _private(private_pem).decrypt(base64.b64decode(ciphertext_b64, validate=True), _OAEP).decode("utf-8")
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def oaep_encrypt(public_key_pem: str, text: str) -> str:
    return base64.b64encode(_public(public_key_pem).encrypt(text.encode("utf-8"), _OAEP)).decode("ascii")

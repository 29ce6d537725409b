"""WeChat Pay cryptography, merchant side: v3 request signing and answer verification, AES-256-GCM resources,
RSA-OAEP-SHA1 sensitive fields, and the API v2 XML sign rule (channel-protocols.md A.2-A.5, A.11).

Pure functions over ``cryptography``; no HTTP, no Django. Keys arrive as PEM strings (as stored in the account's
config) and are parsed once per process (``lru_cache``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from functools import lru_cache
from xml.etree import ElementTree

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509 import load_pem_x509_certificate

SCHEME = "WECHATPAY2-SHA256-RSA2048"  # A.2: "WECHATPAY2-" + signer algorithm
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"  # A.3: WeChat's deliberate bad-signature probes
TIMESTAMP_WINDOW = 300  # A.3: SDKs reject |now - timestamp| >= 5 minutes


class CryptoError(Exception):
    """A key, ciphertext or signature could not be used (callers map it to a ChannelError subclass)."""


# --- keys ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise CryptoError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError("WeChat Pay keys are RSA keys")
    return key


@lru_cache(maxsize=64)
def public_key(pem: str) -> rsa.RSAPublicKey:
    """A PEM public key, or the public key of a PEM certificate (platform certificate mode, A.3)."""
    try:
        if "BEGIN CERTIFICATE" in pem:
            key = load_pem_x509_certificate(pem.encode("ascii")).public_key()
        else:
            key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise CryptoError(f"not a PEM public key or certificate: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError("WeChat Pay keys are RSA keys")
    return key


def certificate_serial(pem: str) -> str:
    """The platform certificate serial as WeChat writes it in Wechatpay-Serial: uppercase hex (A.3)."""
    try:
        return format(load_pem_x509_certificate(pem.encode("ascii")).serial_number, "X")
    except (ValueError, UnicodeEncodeError) as exc:
        raise CryptoError(f"not a PEM certificate: {exc}") from exc


def nonce_str() -> str:
    # A.2: SDKs use 32 uppercase hex characters.
    return secrets.token_hex(16).upper()


# --- v3 request signing (A.2) -------------------------------------------------------------------------------
def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """``METHOD\\nCANONICAL_URL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` — the URL is path + raw query as sent (A.2)."""
    return f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def rsa_sign(private_key_pem: str, message: bytes) -> str:
    signature = private_key(private_key_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def authorization(*, mchid: str, serial_no: str, private_key_pem: str, method: str, target: str, body: bytes,
                  timestamp: str | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header value for one request (A.2)."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or nonce_str()
    signature = rsa_sign(private_key_pem, request_message(method, target, timestamp, nonce, body))
    return (f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp}",'
            f'serial_no="{serial_no}",signature="{signature}"')


# --- v3 answer / callback verification (A.3) ----------------------------------------------------------------
def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """``TIMESTAMP\\nNONCE\\nBODY\\n``; an empty body (204) gives ``TIMESTAMP\\nNONCE\\n\\n`` (A.3)."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def check_answer_signature(*, headers, body: bytes, keys: dict[str, str], now: float | None = None) -> None:
    """Verify Wechatpay-* headers over ``body`` with the key named by ``Wechatpay-Serial``.

    ``headers`` is case-insensitive (requests' CaseInsensitiveDict or a dict of lower-case names). ``keys`` maps
    serial (PUB_KEY_ID_… or platform certificate serial) → PEM. Raises CryptoError with the reason.
    """
    def get(name: str) -> str:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.lower())
        return value if isinstance(value, str) else ""

    signature = get("Wechatpay-Signature")
    timestamp = get("Wechatpay-Timestamp")
    nonce = get("Wechatpay-Nonce")
    serial = get("Wechatpay-Serial")
    signature_type = get("Wechatpay-Signature-Type")
    if not (signature and timestamp and nonce and serial):
        raise CryptoError("missing Wechatpay-Signature/Timestamp/Nonce/Serial headers")
    # A.3: the only algorithm is RSA; a missing type defaults to it (Go SDK), any other value is refused.
    if signature_type and signature_type != SCHEME:
        raise CryptoError(f"unsupported Wechatpay-Signature-Type {signature_type!r}")
    if signature.startswith(SIGNTEST_PREFIX):
        raise CryptoError("WECHATPAY/SIGNTEST probe: signature deliberately invalid")
    try:
        ts = int(timestamp)
    except ValueError:
        raise CryptoError("Wechatpay-Timestamp is not an integer") from None
    if abs((now if now is not None else time.time()) - ts) >= TIMESTAMP_WINDOW:
        raise CryptoError("Wechatpay-Timestamp outside the 5-minute window")
    pem = _key_for_serial(keys, serial)
    if pem is None:
        raise CryptoError(f"unknown Wechatpay-Serial {serial!r}")
    try:
        key = public_key(pem)
    except CryptoError as exc:
        raise CryptoError(f"configured WeChat Pay key for {serial!r} is unusable: {exc}") from exc
    if not rsa_verify(key, answer_message(timestamp, nonce, body), signature):
        raise CryptoError("Wechatpay-Signature does not verify")


def _key_for_serial(keys: dict[str, str], serial: str) -> str | None:
    if serial in keys:
        return keys[serial]
    # Certificate serials are hex; compare numerically as the SDKs do (leading zeros, case).
    try:
        wanted = int(serial, 16)
    except ValueError:
        return None
    for known, pem in keys.items():
        if known.startswith("PUB_KEY_ID_"):
            continue
        try:
            if int(known, 16) == wanted:
                return pem
        except ValueError:
            continue
    return None


# --- AES-256-GCM resources (A.4) ----------------------------------------------------------------------------
def aes_gcm_decrypt(*, apiv3_key: str, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    try:
        key = apiv3_key.encode("utf-8")
        data = base64.b64decode(ciphertext, validate=True)
        return AESGCM(key).decrypt(nonce.encode("utf-8"), data, associated_data.encode("utf-8"))
    except InvalidTag:
        raise CryptoError("resource does not decrypt with the APIv3 key (wrong key or tampered)") from None
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise CryptoError(f"resource is not AES-256-GCM ciphertext: {exc}") from None


def aes_gcm_encrypt(*, apiv3_key: str, nonce: str, associated_data: str, plaintext: bytes) -> str:
    data = AESGCM(apiv3_key.encode("utf-8")).encrypt(nonce.encode("utf-8"), plaintext,
                                                     associated_data.encode("utf-8"))
    return base64.b64encode(data).decode("ascii")


# --- RSA-OAEP-SHA1 sensitive fields (A.5) -------------------------------------------------------------------
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


def oaep_encrypt(public_key_pem: str, text: str) -> str:
    return base64.b64encode(public_key(public_key_pem).encrypt(text.encode("utf-8"), _OAEP)).decode("ascii")


def oaep_decrypt(private_key_pem: str, ciphertext_b64: str) -> str:
    try:
        return private_key(private_key_pem).decrypt(base64.b64decode(ciphertext_b64), _OAEP).decode("utf-8")
    except (ValueError, binascii.Error) as exc:
        raise CryptoError(f"field does not decrypt with the merchant key: {exc}") from None


# --- API v2 XML and its MD5 / HMAC-SHA256 sign rule (A.11) --------------------------------------------------
def v2_sign_string(params: dict[str, str], key: str) -> str:
    """Non-empty params except ``sign``, ASCII-sorted ``k=v`` joined by ``&``, then ``&key=<APIv2 key>``."""
    pairs = [f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v not in ("", None)]
    return "&".join(pairs) + f"&key={key}"


def v2_sign(params: dict[str, str], key: str, sign_type: str = "MD5") -> str:
    text = v2_sign_string(params, key).encode("utf-8")
    if sign_type == "MD5":
        return hashlib.md5(text).hexdigest().upper()  # noqa: S324 - the channel's algorithm, not our choice
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode("utf-8"), text, hashlib.sha256).hexdigest().upper()
    raise CryptoError(f"unknown v2 sign_type {sign_type!r}")


def v2_verify(params: dict[str, str], key: str) -> bool:
    """Check ``sign`` with the algorithm named by ``sign_type`` (MD5 when absent); extra fields are tolerated."""
    given = params.get("sign", "")
    try:
        expected = v2_sign(params, key, params.get("sign_type") or "MD5")
    except CryptoError:
        return False
    return hmac.compare_digest(given.upper(), expected)


def v2_to_xml(params: dict[str, str]) -> bytes:
    parts = []
    for k, v in params.items():
        text = str(v).replace("]]>", "]]]]><![CDATA[>")
        parts.append(f"<{k}><![CDATA[{text}]]></{k}>")
    return ("<xml>" + "".join(parts) + "</xml>").encode("utf-8")


def v2_from_xml(data: bytes) -> dict[str, str]:
    """Parse a flat v2 ``<xml>`` document. DTDs are refused outright (no entity expansion of any kind)."""
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise CryptoError("v2 XML must not carry a DTD")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise CryptoError(f"malformed v2 XML: {exc}") from None
    if root.tag != "xml":
        raise CryptoError("v2 XML root must be <xml>")
    return {child.tag: (child.text or "") for child in root}

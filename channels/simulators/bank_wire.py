"""The bank simulator's own reading of docs/channels/bank.md §3 (signing) and §9.2 (field encryption).

Written apart from channels/adapters/bank_wire.py on purpose: the simulator is the other party, and two
independent implementations of the page are what catches an ambiguity in it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.simulators.keys import load_private as _private
from channels.simulators.keys import load_public as _public
from channels.simulators.keys import new_key_pair  # noqa: F401 (used as wire.new_key_pair)

BEIJING = dt.timezone(dt.timedelta(hours=8))
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class NotCanonical(ValueError):
    """A value bank.md §3.1 gives no canonical form (floats): the message is a PARAM_ERROR."""


def _text(value) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raise NotCanonical(f"{type(value).__name__} values are not allowed at top level")


def sign_content(message: dict) -> str:
    pairs = []
    for key, value in message.items():
        if key == "sign" or value is None or (isinstance(value, str | list | dict) and not value):
            continue
        pairs.append((key, _text(value)))
    pairs.sort(key=lambda pair: pair[0])
    return "&".join(key + "=" + value for key, value in pairs)






def check_public_key(pem: str) -> None:
    """Raises ValueError unless ``pem`` is an RSA public key (what the portal accepts for registration)."""
    if not isinstance(pem, str) or not isinstance(_public(pem), rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")


def rsa2_sign(text: str, private_pem: str) -> str:
    return base64.b64encode(_private(private_pem).sign(text.encode("utf-8"), padding.PKCS1v15(),
                                                       hashes.SHA256())).decode("ascii")


def rsa2_verify(message: dict, public_pem: str) -> bool:
    """Raises NotCanonical for values without a canonical form; False for any other mismatch."""
    signature = message.get("sign")
    if not isinstance(signature, str):
        return False
    return rsa2_verify_text(sign_content(message), signature, public_pem)


def rsa2_verify_text(text: str, signature: str, public_pem: str) -> bool:
    """Whether ``signature`` (base64) is the RSA2 signature of ``text`` itself, as a wallet checks the ``paySign``
    the bank gave a JSAPI payment (§6.2); False for anything malformed."""
    try:
        raw = base64.b64decode(str(signature).encode("ascii"), validate=True)
        _public(public_pem).verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return False
    return True


def decrypt(ciphertext: str, private_pem: str) -> str:
    """bank.md §9.2: base64 RSA-OAEP-SHA256 → text. Raises ValueError when it does not open."""
    try:
        return _private(private_pem).decrypt(base64.b64decode(ciphertext, validate=True), OAEP).decode("utf-8")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("does not decrypt with the bank key") from exc


def now_text(at: float | None = None) -> str:
    return dt.datetime.fromtimestamp(time.time() if at is None else at, BEIJING).strftime("%Y%m%d%H%M%S")


def parse_text_time(text: str) -> float:
    return dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING).timestamp()


def digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))

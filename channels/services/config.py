"""Typed per-kind channel config: which fields a kind has, which are secret, validation and masked display.

Each adapter module defines a frozen dataclass ``config_class`` and ``CONFIG_SECRET_FIELDS`` (channels.md); the
account row stores ``dataclasses.asdict`` of it. Issue 3: credentials are write-only in every page — secrets and
PEM keys are never shown back (secrets as "•••••• (set)", PEM public keys as a fingerprint).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import typing
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aggpay.masking import mask_secret
from channels.models import ChannelConfigInvalid
from channels.registry import adapter_class

# Names that mark a secret even if an adapter forgot to list it in CONFIG_SECRET_FIELDS (defence in depth).
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
_SECRET_HINTS = ("private", "secret", "apiv3", "api_v3", "apiv2", "api_v2", "password", "aes_key")
_SECRET_SUFFIXES = ("_token", "_key")  # access/refresh tokens, symmetric keys — but not "_key_id", "_token_url"


@dataclass(frozen=True)
class ConfigField:
    name: str
    type: str  # "str", "bool", "int" or "list" (of PEM blocks): how the form asks for it
    secret: bool  # never shown back, not even masked partially
    pem: bool  # a PEM block (key or certificate): asked for in a textarea, shown as a fingerprint
    required: bool
    default: Any = None

    @property
    def write_only(self) -> bool:
        """Blank input keeps the stored value; the form never pre-fills it."""
        return self.secret or self.pem

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


def kind_adapter(kind: str):
    """The adapter class of ``kind``, or a clear ChannelConfigInvalid if it is unknown or not installed."""
    if not isinstance(kind, str):
        raise ChannelConfigInvalid("kind must be a text", param="kind")
    try:
        return adapter_class(kind)
    except ValueError as exc:
        raise ChannelConfigInvalid(str(exc), param="kind") from exc
    except ImportError as exc:
        raise ChannelConfigInvalid(f"the {kind} adapter is not available yet ({exc})", param="kind") from exc


def kind_available(kind: str) -> bool:
    try:
        kind_adapter(kind)
    except ChannelConfigInvalid:
        return False
    return True


def _type_name(config_class, field: dataclasses.Field) -> str:
    try:
        hint = typing.get_type_hints(config_class).get(field.name, str)
    except Exception:  # noqa: BLE001 - unresolvable string annotations: fall back to the raw annotation
        hint = field.type
    origin = typing.get_origin(hint)
    if hint is list or origin is list or (isinstance(hint, str) and hint.startswith("list")):
        return "list"
    text = hint if isinstance(hint, str) else getattr(hint, "__name__", str(hint))
    if text in ("bool",):
        return "bool"
    if text in ("int",):
        return "int"
    return "str"


def _looks_pem_by_name(name: str) -> bool:
    lowered = name.lower()
    if lowered.endswith(("_id", "_serial", "_serial_no", "_sn", "_no")):
        return False
    return lowered.endswith("_pem") or "private_key" in lowered or "public_key" in lowered or "cert" in lowered


def config_fields(kind: str) -> list[ConfigField]:
    cls = kind_adapter(kind)
    config_class = cls.config_class
    if not dataclasses.is_dataclass(config_class):
        raise ChannelConfigInvalid(f"{cls.__name__}.config_class is not a dataclass", param="kind")
    declared = set(getattr(cls, "CONFIG_SECRET_FIELDS", ()) or ())
    specs = []
    for field in dataclasses.fields(config_class):
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        default = None
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        lowered = field.name.lower()
        secret = (field.name in declared or any(h in lowered for h in _SECRET_HINTS)
                  or (lowered.endswith(_SECRET_SUFFIXES) and "public" not in lowered))
        specs.append(ConfigField(
            name=field.name, type=_type_name(config_class, field), secret=secret,
            pem=_looks_pem_by_name(field.name), required=not has_default, default=default,
        ))
    return specs


def secret_field_names(kind: str) -> frozenset[str]:
    return frozenset(f.name for f in config_fields(kind) if f.write_only)


def _check_pem(name: str, value: str) -> None:
    """A value that is (or must be) a PEM block has to load, so a pasted half key fails here, not at the channel."""
    text = value.strip()
    param = f"config.{name}"
    if not text.startswith("-----BEGIN "):
        raise ChannelConfigInvalid(f"{name} must be a PEM block (-----BEGIN …)", param=param)
    header = text.splitlines()[0]
    data = text.encode()
    try:
        if "PRIVATE KEY" in header:
            key = serialization.load_pem_private_key(data, password=None)
        elif "PUBLIC KEY" in header:
            key = serialization.load_pem_public_key(data)
        elif "CERTIFICATE" in header:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            raise ValueError(f"unexpected PEM type {header!r}")
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # The exception text never contains the key material itself.
        raise ChannelConfigInvalid(f"{name} is not a valid PEM key or certificate: {type(exc).__name__}",
                                   param=param) from exc
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        # Every kind signs and verifies with RSA (channel-protocols.md A.2 and B.2, bank.md §3.2): an EC key passed
        # this check and was saved, and every call on the account then failed at signing or verifying.
        raise ChannelConfigInvalid(f"{name} must be an RSA key, not {type(key).__name__.removeprefix('_')}",
                                   param=param)


def build_config(kind: str, data: dict[str, Any]):
    """Validate ``data`` into the kind's typed config (the adapter's frozen dataclass) and return it.

    Errors name the field as ``config.<field>``. Unknown keys are refused rather than silently dropped.
    """
    cls = kind_adapter(kind)
    specs = {spec.name: spec for spec in config_fields(kind)}
    if not isinstance(data, dict):
        raise ChannelConfigInvalid("config must be a mapping of field names to values", param="config")
    for key in data:
        if key not in specs:
            raise ChannelConfigInvalid(f"{key} is not a {kind} config field", param=f"config.{key}")
    values = {}
    for name, spec in specs.items():
        if is_blank(data.get(name)):
            if spec.required:
                raise ChannelConfigInvalid(f"{name} is required", param=f"config.{name}")
            continue
        value = data[name]
        _check_type(spec, value)
        if spec.type == "list":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ChannelConfigInvalid(f"{name} must be a list of texts", param=f"config.{name}")
            value = list(value)
            for item in value:
                if spec.pem or item.lstrip().startswith("-----BEGIN "):
                    _check_pem(name, item)
        elif isinstance(value, str) and (spec.pem or value.lstrip().startswith("-----BEGIN ")):
            _check_pem(name, value)
        values[name] = value
    try:
        return cls.config_class(**values)
    except (TypeError, ValueError) as exc:
        raise ChannelConfigInvalid(f"invalid {kind} config: {exc}", param="config") from exc


# What each ConfigField.type must hold. The dataclasses do not check their annotations, so without this a number
# or a dict sent for a text field (by an admin action or an API; the page only sends texts) was stored as it came.
_TYPE_CHECKS = {
    "str": (lambda v: isinstance(v, str), "a text"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_type(spec: ConfigField, value: Any) -> None:
    check = _TYPE_CHECKS.get(spec.type)
    if check is not None and not check[0](value):
        raise ChannelConfigInvalid(f"{spec.name} must be {check[1]}, not {type(value).__name__}",
                                   param=f"config.{spec.name}")


def is_blank(value: Any) -> bool:
    """No input: None, a text of only spaces, or an empty list (a write-only field left blank keeps its stored
    value). The pages strip what is typed, so a field of spaces is blank there; the services say the same."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == [] or value == ()


def split_pem_blocks(text: str) -> list[str]:
    """Several PEM blocks pasted into one textarea (e.g. platform certificates) → one string per block."""
    return [match.group(0) + "\n" for match in _PEM_BLOCK.finditer(text or "")]


def config_as_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def pem_summary(value: str) -> str:
    """A PEM block as its type and a short SHA-256 fingerprint, so staff can compare keys without seeing them."""
    text = value.strip()
    header = text.splitlines()[0].strip("- ").removeprefix("BEGIN ").title() if text else "PEM"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{header} · sha256 {digest}"


def config_display(kind: str, config: dict[str, Any]) -> list[dict[str, str]]:
    """Rows ``{name, value}`` safe to render: ids as they are, secrets masked, PEM blocks as fingerprints."""
    try:
        specs = config_fields(kind)
    except ChannelConfigInvalid:
        # Adapter missing: show only which keys are stored, never their values.
        return [{"name": key, "value": mask_secret(value)} for key, value in sorted(config.items())]
    rows = []
    for spec in specs:
        value = config.get(spec.name)
        if spec.secret:
            shown = mask_secret(value)
        elif isinstance(value, list):
            shown = "; ".join(pem_summary(v) if v.lstrip().startswith("-----BEGIN ") else mask_secret(v)
                              for v in value) or "(not set)"
        elif isinstance(value, str) and (spec.pem or value.lstrip().startswith("-----BEGIN ")):
            shown = pem_summary(value) if value else "(not set)"
        elif value in (None, ""):
            shown = "(not set)"
        else:
            shown = str(value)
        rows.append({"name": spec.name, "value": shown, "secret": spec.secret})
    return rows

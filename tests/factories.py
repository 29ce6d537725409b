"""factory_boy factories for volume; named personas live in conftest.py."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from merchants.models import Merchant, MerchantApp


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery")


class MerchantFactory(factory.django.DjangoModelFactory):
    """A merchant row. Its state is protected: use merchants.services to move it (see ``active_merchant``)."""

    class Meta:
        model = Merchant

    merchant_no = factory.Sequence(lambda n: f"M26112600{n:06d}")
    legal_name = factory.Sequence(lambda n: f"Hangzhou Tea House No.{n} Co., Ltd.")
    short_name = factory.Sequence(lambda n: f"Tea House {n}")


class MerchantAppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MerchantApp

    merchant = factory.SubFactory(MerchantFactory)
    app_id = factory.Sequence(lambda n: f"app_test{n:08d}")
    scopes = factory.LazyFunction(lambda: ["payments"])
    sign_type = "hmac"
    secret = factory.Sequence(lambda n: f"test-secret-{n:04d}-0123456789abcdef")
    notify_url = "http://127.0.0.1:9/notify"


# --- channel configuration (H4): typed per-kind configs built from fresh keys, and account rows ----------------


def ec_pem(*, private: bool) -> str:
    """A fresh EC (P-256) key as PEM — private PKCS#8 or public SPKI: a key that loads but is not the RSA every
    channel signs with (channels.services.config._check_pem, the adapters' key checks)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _rsa_pem_pair(label: str) -> tuple[str, str]:
    """An RSA-2048 key pair (private PKCS#8 PEM, public SPKI PEM), one per label per test session."""
    cached = _RSA_PAIRS.get(label)
    if cached is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cached = (
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        )
        _RSA_PAIRS[label] = cached
    return cached


_RSA_PAIRS: dict[str, tuple[str, str]] = {}


def channel_config(kind: str, **overrides) -> dict:
    """A complete config dict for ``<Kind>Config(**d)`` with real keys (not registered at any simulator).

    For tests that need the channel to accept the credentials, use the simulator's ``provision()`` instead.
    """
    ours, _ = _rsa_pem_pair(f"{kind}:ours")
    _, theirs = _rsa_pem_pair(f"{kind}:channel")
    if kind == "wechatpay":
        config = {"sp_mchid": "1900000100", "sp_appid": "wx8888888888888888", "private_key_pem": ours,
                  "serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
                  "apiv3_key": "a7cde1ab98b74fd5b1c9f1e3d2a8b6c4", "wechatpay_public_key_pem": theirs,
                  "wechatpay_public_key_id": "PUB_KEY_ID_0119000001002024112600000000000001"}
    elif kind == "alipay":
        config = {"app_id": "2021000000000001", "app_private_key": ours, "alipay_public_key": theirs,
                  "isv_pid": "2088000000000001"}
    elif kind == "bank":
        config = {"org_no": "ORG0001", "key_id": "K0001", "private_key_pem": ours, "bank_key_id": "BK0001",
                  "bank_public_key_pem": theirs}
    else:
        raise ValueError(kind)
    config.update(overrides)
    return config


class ChannelAccountFactory(factory.django.DjangoModelFactory):
    """A channel account row with a valid config (for volume; services create the ones under test)."""

    class Meta:
        model = "channels.ChannelAccount"
        django_get_or_create = ("code",)

    kind = "bank"
    code = factory.Sequence(lambda n: f"bank-{n}")
    name = factory.LazyAttribute(lambda a: a.code.replace("-", " ").title())
    base_url = factory.LazyAttribute(lambda a: f"http://127.0.0.1:9/{a.kind}")
    config = factory.LazyAttribute(lambda a: channel_config(a.kind))
    enabled = True

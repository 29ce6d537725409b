"""Merchant and app services: creating apps and their credentials."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import serialization
from django.db import transaction

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest
from merchants.models import AppScope, Merchant, MerchantApp, SignType


def new_app_id() -> str:
    return "app_" + secrets.token_hex(8)


def new_app_secret() -> str:
    return secrets.token_urlsafe(32)


def merchant_app_create(
    *,
    merchant: Merchant,
    actor,
    scopes: list[str],
    sign_type: str = SignType.HMAC,
    notify_url: str = "",
    public_key_pem: str = "",
    name: str = "default",
    app_id: str | None = None,
    secret: str | None = None,
) -> tuple[MerchantApp, str | None]:
    """Issue an API app. Returns the app and, for HMAC apps, the plaintext secret (shown once, then encrypted)."""
    unknown = set(scopes) - set(AppScope.values)
    if not scopes or unknown:
        raise InvalidRequest(f"scopes must be a non-empty subset of {sorted(AppScope.values)}", param="scopes")
    if sign_type not in SignType.values:
        raise InvalidRequest("sign_type must be hmac or rsa", param="sign_type")
    plaintext = None
    if sign_type == SignType.RSA:
        try:
            key = serialization.load_pem_public_key(public_key_pem.encode())
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"public_key_pem is not a PEM public key: {exc}", param="public_key_pem")
        if getattr(key, "key_size", 0) < 2048:
            raise InvalidRequest("public_key_pem must be an RSA key of at least 2048 bits", param="public_key_pem")
    else:
        plaintext = secret or new_app_secret()
    with transaction.atomic():
        app = MerchantApp.objects.create(
            merchant=merchant,
            app_id=app_id or new_app_id(),
            name=name,
            scopes=sorted(set(scopes)),
            sign_type=sign_type,
            secret=plaintext or "",
            public_key_pem=public_key_pem if sign_type == SignType.RSA else "",
            notify_url=notify_url,
        )
        audit_log(actor=actor, action="merchants.app.created", target=app,
                  data={"scopes": app.scopes, "sign_type": sign_type, "merchant_no": merchant.merchant_no})
    return app, plaintext

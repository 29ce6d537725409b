"""Merchant API apps and their credentials (merchant-api.md "Authentication and signing"): issuing an app, and the
staff workbench's changes to one — its notify URL, a new HMAC secret, a new RSA public key, deactivating and
reactivating it — and making a merchant a partner (whose apps may have the ``onboarding`` scope).

What the API front door checks on every signed call (the app's key, active flag and scopes, the merchant's
``is_partner``) is remembered per process (aggpay.api.credentials); every save of a MerchantApp or Merchant replaces
the shared generation token, so a change saved here takes effect on the next call in every process. That is why
these services change rows with ``save()``, never ``QuerySet.update()`` (which sends no signal).
"""

from __future__ import annotations

import hashlib
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.notify_urls import notify_url_refusal
from aggpay.permissions import require_perm
from merchants.models import AppScope, Merchant, MerchantApp, MerchantState, SignType
from merchants.services.locks import lock_app, lock_merchant

ISSUE_PERM = "merchants.add_merchantapp"
CHANGE_PERM = "merchants.change_merchantapp"
# Making a merchant a partner lets its apps onboard other merchants (merchant-api.md "Partner onboarding"): not a
# clerk's routine change but a decision over who may act for aggpay, carved out of the clerks' "merchants.*"
# (aggpay/roles.py). Superusers hold it; no role does.
PARTNER_PERM = "merchants.designate_partner"

RSA_MIN_BITS = 2048  # the scheme is AGGPAY-SHA256-RSA2048 (merchant-api.md)
NAME_MAX = 64  # MerchantApp.name
NOTIFY_URL_MAX = 512  # MerchantApp.notify_url
_http_url = URLValidator(schemes=["http", "https"])


def new_app_id() -> str:
    return "app_" + secrets.token_hex(8)


def new_app_secret() -> str:
    return secrets.token_urlsafe(32)


# --- checks shared by the services ---------------------------------------------------------------------------
def clean_notify_url(value: str | None) -> str:
    """An http(s) URL of at most 512 characters, or "" (no default notify URL: events go nowhere for this app)."""
    value = (value or "").strip()
    if not value:
        return ""
    if len(value) > NOTIFY_URL_MAX:
        raise InvalidRequest(f"notify_url must be at most {NOTIFY_URL_MAX} characters", param="notify_url")
    try:
        _http_url(value)
    except ValidationError:
        raise InvalidRequest("notify_url must be an http or https URL, such as https://shop.example.com/aggpay/notify",
                             param="notify_url")
    refusal = notify_url_refusal(value)
    if refusal:
        raise InvalidRequest(f"notify_url: {refusal}", param="notify_url")
    return value


def clean_public_key_pem(value: str | None) -> str:
    """The merchant's RSA public key (≥ 2048 bits) as SubjectPublicKeyInfo PEM, whatever PEM spelling was pasted
    (``openssl pkey -pubout`` or PKCS#1 ``RSA PUBLIC KEY``, CRLF line ends from a browser)."""
    text = (value or "").strip().replace("\r\n", "\n")
    if not text:
        raise InvalidRequest("public_key_pem is required for an RSA app: paste the merchant's merchant_public.pem",
                             param="public_key_pem")
    if "PRIVATE KEY" in text:
        # Never stored, never echoed: the merchant must make a new key pair, this one is no longer private.
        raise InvalidRequest("public_key_pem is a PRIVATE key: it is not kept. The merchant must make a new key pair "
                             "(its private key has been shared) and send only the public half", param="public_key_pem")
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError, UnicodeError):
        raise InvalidRequest("public_key_pem is not a PEM public key (-----BEGIN PUBLIC KEY----- …)",
                             param="public_key_pem")
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidRequest("public_key_pem must be an RSA key (the scheme is AGGPAY-SHA256-RSA2048)",
                             param="public_key_pem")
    if key.key_size < RSA_MIN_BITS:
        raise InvalidRequest(f"public_key_pem must be an RSA key of at least {RSA_MIN_BITS} bits "
                             f"(this one has {key.key_size})", param="public_key_pem")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_key_fingerprint(public_key_pem: str) -> str:
    """SHA-256 of the key's DER encoding, hex: what the audit log and the staff page name a key by."""
    key = serialization.load_pem_public_key(public_key_pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _clean_scopes(scopes) -> list[str]:
    unknown = set(scopes or []) - set(AppScope.values)
    if not scopes or unknown:
        raise InvalidRequest(f"scopes must be a non-empty subset of {sorted(AppScope.values)}", param="scopes")
    return sorted(set(scopes))


def _locked_app(app_id: str) -> MerchantApp:
    try:
        return lock_app(app_id)  # after its merchant (merchants/services/locks.py)
    except MerchantApp.DoesNotExist:
        raise NotFound(f"no app {app_id}", param="app_id")


# --- issuing -------------------------------------------------------------------------------------------------
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
    scopes = _clean_scopes(scopes)
    if sign_type not in SignType.values:
        raise InvalidRequest("sign_type must be hmac or rsa", param="sign_type")
    notify_url = clean_notify_url(notify_url)
    plaintext = None
    if sign_type == SignType.RSA:
        public_key_pem = clean_public_key_pem(public_key_pem)
    else:
        plaintext = secret or new_app_secret()
    with transaction.atomic():
        app = MerchantApp.objects.create(
            merchant=merchant,
            app_id=app_id or new_app_id(),
            name=name,
            scopes=scopes,
            sign_type=sign_type,
            secret=plaintext or "",
            public_key_pem=public_key_pem if sign_type == SignType.RSA else "",
            notify_url=notify_url,
        )
        data = {"scopes": app.scopes, "sign_type": sign_type, "merchant_no": merchant.merchant_no}
        if sign_type == SignType.RSA:
            data["public_key_sha256"] = public_key_fingerprint(app.public_key_pem)
        audit_log(actor=actor, action="merchants.app.created", target=app, data=data)
    return app, plaintext


def merchant_app_issue(
    *,
    merchant_id: int,
    actor,
    name: str,
    scopes: list[str],
    sign_type: str,
    notify_url: str = "",
    public_key_pem: str = "",
) -> tuple[MerchantApp, str | None]:
    """Staff issue an app to a merchant. An HMAC app's secret is returned to be shown to this staff member now —
    the one time it is shown (like ``app_secret_reveal``); an RSA app carries the merchant's public key instead.

    Refused: a closed merchant; the ``onboarding`` scope for a merchant that is not a partner (the partner API
    would refuse every call of it)."""
    require_perm(actor, ISSUE_PERM)
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise InvalidRequest(f"name is required (at most {NAME_MAX} characters)", param="name")
    scopes = _clean_scopes(scopes)
    with transaction.atomic():
        merchant = lock_merchant(merchant_id)
        if merchant.state == MerchantState.CLOSED:
            raise InvalidState(f"merchant {merchant.merchant_no} is closed; it gets no new apps", param="merchant")
        if AppScope.ONBOARDING in scopes and not merchant.is_partner:
            raise InvalidRequest(f"scopes: onboarding is for partners, and {merchant.merchant_no} is not one",
                                 param="scopes")
        app, plaintext = merchant_app_create(merchant=merchant, actor=actor, scopes=scopes, sign_type=sign_type,
                                             notify_url=notify_url, public_key_pem=public_key_pem, name=name)
        if plaintext is not None:
            app.secret_revealed_at = timezone.now()
            app.save(update_fields=["secret_revealed_at"])
            audit_log(actor=actor, action="merchants.app.secret_revealed", target=app)
    return app, plaintext


# --- changing an app -----------------------------------------------------------------------------------------
def merchant_app_notify_url_set(*, app_id: str, actor, notify_url: str) -> MerchantApp:
    """Set (or clear, with "") the app's default notify URL; events emitted from now on go there, and the
    notifications still owed at the old URL follow (``deliveries_follow_notify_url``)."""
    require_perm(actor, CHANGE_PERM)
    notify_url = clean_notify_url(notify_url)
    with transaction.atomic():
        app = _locked_app(app_id)
        before = app.notify_url
        if before == notify_url:
            return app
        app.notify_url = notify_url
        app.save(update_fields=["notify_url"])
        # Notifications still owed at the old address follow the app to the new one (lazy: trades depends on
        # merchants, not the other way round).
        from trades.services.events import deliveries_follow_notify_url

        moved = deliveries_follow_notify_url(app_id=app.pk, old_url=before, new_url=notify_url)
        audit_log(actor=actor, action="merchants.app.notify_url_changed", target=app,
                  data={"from": before, "to": notify_url, "deliveries_moved": moved})
    return app


def merchant_app_secret_rotate(*, app_id: str, actor, reason: str = "") -> tuple[MerchantApp, str]:
    """A new HMAC secret, returned to be shown to this staff member now (the one time it is shown). The old secret
    stops working on the next call in every process (aggpay.api.credentials); there is no grace period
    (docs/api.md "Credentials"). Works on a deactivated app too: deactivate, rotate, reactivate."""
    require_perm(actor, CHANGE_PERM)
    with transaction.atomic():
        app = _locked_app(app_id)
        if app.sign_type != SignType.HMAC:
            raise InvalidState(f"{app_id} signs with RSA: it has no secret; replace its public key instead",
                               param="app_id")
        plaintext = new_app_secret()
        app.secret = plaintext
        app.secret_revealed_at = timezone.now()
        app.save(update_fields=["secret", "secret_revealed_at"])
        audit_log(actor=actor, action="merchants.app.secret_rotated", target=app, reason=reason)
        audit_log(actor=actor, action="merchants.app.secret_revealed", target=app)
    return app, plaintext


def merchant_app_public_key_replace(*, app_id: str, actor, public_key_pem: str, reason: str = "") -> MerchantApp:
    """Register the merchant's new RSA public key; requests signed with the old private key are refused from the
    next call on."""
    require_perm(actor, CHANGE_PERM)
    public_key_pem = clean_public_key_pem(public_key_pem)
    with transaction.atomic():
        app = _locked_app(app_id)
        if app.sign_type != SignType.RSA:
            raise InvalidState(f"{app_id} signs with HMAC: it has no public key; rotate its secret instead",
                               param="app_id")
        if app.public_key_pem == public_key_pem:
            raise InvalidRequest("public_key_pem is the key already registered on this app", param="public_key_pem")
        before = public_key_fingerprint(app.public_key_pem) if app.public_key_pem else ""
        app.public_key_pem = public_key_pem
        app.save(update_fields=["public_key_pem"])
        audit_log(actor=actor, action="merchants.app.public_key_replaced", target=app, reason=reason,
                  data={"from_sha256": before, "to_sha256": public_key_fingerprint(public_key_pem)})
    return app


def merchant_app_deactivate(*, app_id: str, actor, reason: str = "") -> MerchantApp:
    """The app's calls are refused (401 ``unknown_app``) from the next one on, and it gets no notifications."""
    require_perm(actor, CHANGE_PERM)
    with transaction.atomic():
        app = _locked_app(app_id)
        if not app.active:
            raise InvalidState(f"{app_id} is already inactive", param="app_id")
        app.active = False
        app.save(update_fields=["active"])
        audit_log(actor=actor, action="merchants.app.deactivated", target=app, reason=reason)
    return app


def merchant_app_reactivate(*, app_id: str, actor, reason: str = "") -> MerchantApp:
    """The app may call again with the key it has now (rotate first if the old one leaked)."""
    require_perm(actor, CHANGE_PERM)
    with transaction.atomic():
        app = _locked_app(app_id)
        if app.active:
            raise InvalidState(f"{app_id} is already active", param="app_id")
        merchant = lock_merchant(app.merchant_id)  # held already (lock_app)
        if merchant.state == MerchantState.CLOSED:
            raise InvalidState(f"merchant {merchant.merchant_no} is closed; its apps stay inactive", param="app_id")
        app.active = True
        app.save(update_fields=["active"])
        audit_log(actor=actor, action="merchants.app.reactivated", target=app, reason=reason)
    return app


# --- partners ------------------------------------------------------------------------------------------------
def merchant_partner_set(*, merchant_id: int, actor, is_partner: bool, reason: str) -> Merchant:
    """Make a merchant a partner (its apps may be given the ``onboarding`` scope and onboard merchants through the
    API), or stop it being one (its onboarding calls are refused from the next call on: 403 ``forbidden``)."""
    require_perm(actor, PARTNER_PERM)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("reason is required (for example the partner agreement's number)", param="reason")
    with transaction.atomic():
        merchant = lock_merchant(merchant_id)
        if merchant.is_partner == bool(is_partner):
            raise InvalidState(f"{merchant.merchant_no} is {'already' if is_partner else 'not'} a partner",
                               param="is_partner")
        if is_partner and merchant.state == MerchantState.CLOSED:
            raise InvalidState(f"merchant {merchant.merchant_no} is closed", param="is_partner")
        merchant.is_partner = bool(is_partner)
        merchant.save(update_fields=["is_partner", "updated_at"])
        audit_log(actor=actor, action="merchants.merchant.partner_set" if is_partner
                  else "merchants.merchant.partner_unset", target=merchant, reason=reason)
    return merchant

"""A merchant becomes active when its first contract is (design §4); its payments app is issued then."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import audit_log
from aggpay.errors import InvalidState
from merchants.models import Contract, Merchant, MerchantApp, MerchantState
from merchants.services.apps import merchant_app_create
from merchants.services.locks import lock_application, lock_merchant


def merchant_activate_on_contract(*, contract: Contract) -> Merchant:
    """Called inside the transaction that activated ``contract``: completes the application, activates the
    merchant and issues its payments app (HMAC; the secret is revealed once to staff — ``app_secret_reveal``).

    The caller locked the contract after its application and merchant (``locks.lock_contract``), so taking them
    again here waits for nothing; locking them only now, after the contract, would deadlock with a clerk's action
    on the application (merchants/services/locks.py)."""
    if contract.application_id:
        application = lock_application(contract.application_id)
        merchant = application.merchant
        if can_proceed(application.complete):
            application.complete()
            application.save()
            audit_log(actor=None, action="merchants.application.completed", target=application,
                      data={"first_active_contract": contract.pk})
    else:
        merchant = lock_merchant(contract.merchant_id)
    if merchant.state == MerchantState.ONBOARDING:
        merchant.activate()
        merchant.save()
        audit_log(actor=None, action="merchants.merchant.activate", target=merchant,
                  reason=f"first active contract on {contract.channel_account.code}")
        if merchant.partner_id:  # the partner is told (merchant-api.md "Partner onboarding")
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=merchant.pk, type="merchant.activated")
    # Checked in Python: JSON containment lookups are PostgreSQL-only and the demo runs on SQLite.
    if not any(app.has_scope("payments") for app in merchant.apps.all()):
        merchant_app_create(merchant=merchant, actor=None, scopes=["payments"], name="payments")
    return merchant


def app_secret_reveal(*, app_id: str, actor) -> str:
    """Show an HMAC app's secret to staff exactly once; afterwards it can only be rotated."""
    from aggpay.permissions import require_perm

    require_perm(actor, "merchants.change_merchantapp")
    with transaction.atomic():
        app = MerchantApp.objects.select_for_update(no_key=True).get(app_id=app_id)
        if app.secret_revealed_at is not None:
            raise InvalidState(f"the secret of {app_id} was already shown on {app.secret_revealed_at:%Y-%m-%d %H:%M}"
                               "; rotate it to issue a new one")
        app.secret_revealed_at = timezone.now()
        app.save(update_fields=["secret_revealed_at"])
        audit_log(actor=actor, action="merchants.app.secret_revealed", target=app)
    return app.secret

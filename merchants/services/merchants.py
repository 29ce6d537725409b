"""Merchant lifecycle services (the onboarding issue adds the application and contracts)."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, InvalidState
from aggpay.permissions import require_perm
from merchants.models import Contract, ContractState, Merchant
from merchants.services.locks import lock_merchant
from merchants.validation import required_reason


def new_merchant_no() -> str:
    # M + yymmdd + 8 random digits: readable on the phone, unique by constraint.
    return "M" + timezone.localdate().strftime("%y%m%d") + "".join(secrets.choice("0123456789") for _ in range(8))


def merchant_create(*, actor, legal_name: str, short_name: str, merchant_no: str | None = None) -> Merchant:
    require_perm(actor, "merchants.add_merchant")  # the admin's add page needs it; so does the service (rule 11)
    if not legal_name or len(legal_name) > 128:
        raise InvalidRequest("legal_name is required (at most 128 characters)", param="legal_name")
    if not short_name or len(short_name) > 64:
        raise InvalidRequest("short_name is required (at most 64 characters)", param="short_name")
    with transaction.atomic():
        merchant = Merchant.objects.create(
            merchant_no=merchant_no or new_merchant_no(), legal_name=legal_name, short_name=short_name
        )
        audit_log(actor=actor, action="merchants.merchant.created", target=merchant)
    return merchant


def _transition(*, merchant_id: int, actor, name: str, reason: str = "") -> Merchant:
    with transaction.atomic():
        merchant = lock_merchant(merchant_id)
        method = getattr(merchant, name)
        if not can_proceed(method):
            raise InvalidState(f"merchant {merchant.merchant_no} is {merchant.state}; cannot {name}")
        before = merchant.state
        method()
        merchant.save()
        audit_log(actor=actor, action=f"merchants.merchant.{name}", target=merchant, reason=reason,
                  data={"from": before, "to": merchant.state})
        if name in PARTNER_TOLD and merchant.partner_id:
            # The partner runs the merchant it onboarded: it hears that it stopped (or may again) take payments —
            # the state, not risk's reason (docs/api.md "Partner onboarding").
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=merchant.pk, type=PARTNER_TOLD[name])
    return merchant


# The transitions a partner is told of, with their event (aggpay.api.partner_resource.MERCHANT_EVENT_TYPES).
PARTNER_TOLD = {"freeze": "merchant.frozen", "unfreeze": "merchant.unfrozen"}


# Activating by hand is risk's decision: the admin action is gated on it (merchants.admin ``risk_decision``).
ACTIVATE_PERM = "aggpay.access_risk"


def merchant_activate(*, merchant_id: int, actor, reason: str = "") -> Merchant:
    """Activate an onboarding merchant by hand. A merchant is active when at least one of its contracts is (issue 4
    "Flow", MerchantState.ACTIVE): ``merchant_activate_on_contract`` does it on the first active contract, so a person
    only needs this for one whose contract became active another way (``contract_register_existing``), and is refused
    for one with none — it could not trade. System callers (fixtures, the demo seed) set a merchant up before its
    contracts and are trusted by their caller, as ``require_perm`` trusts them."""
    require_perm(actor, ACTIVATE_PERM)
    staff = actor is not None and not isinstance(actor, str)
    if staff:
        reason = required_reason(reason, verb="activate a merchant")
    with transaction.atomic():
        if staff and not Contract.objects.filter(merchant_id=merchant_id, state=ContractState.ACTIVE).exists():
            raise InvalidState("the merchant has no active contract; it becomes active when a channel contract does")
        return _transition(merchant_id=merchant_id, actor=actor, name="activate", reason=reason)


FREEZE_PERM, UNFREEZE_PERM = "merchants.freeze_merchant", "merchants.unfreeze_merchant"


def merchant_freeze(*, merchant_id: int, actor, reason: str) -> Merchant:
    require_perm(actor, FREEZE_PERM)
    reason = required_reason(reason, verb="freeze a merchant")
    return _transition(merchant_id=merchant_id, actor=actor, name="freeze", reason=reason)


def merchant_unfreeze(*, merchant_id: int, actor, reason: str) -> Merchant:
    require_perm(actor, UNFREEZE_PERM)
    reason = required_reason(reason, verb="unfreeze a merchant")
    return _transition(merchant_id=merchant_id, actor=actor, name="unfreeze", reason=reason)

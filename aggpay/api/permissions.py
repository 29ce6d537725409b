"""Who may call what (merchant-api.md "Errors": 403 ``forbidden`` — wrong scope, merchant not active)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from merchants.models import MerchantApp, MerchantState


class IsMerchantApp(BasePermission):
    """An app authenticated by its signature (``request.auth`` is the MerchantApp)."""

    message = "a signed request from an active app is required"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, MerchantApp)


class HasScope(BasePermission):
    """The app holds ``scope`` (``payments``, ``onboarding``). Used as ``permission_classes = [HasScope("payments")]``.

    DRF instantiates each entry of ``permission_classes``; an instance answers that call with itself.
    """

    code = "forbidden"

    def __init__(self, scope: str):
        self.scope = scope
        self.message = f"this app does not have the {scope!r} scope"

    def __call__(self) -> HasScope:
        return self

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, MerchantApp) and request.auth.has_scope(self.scope)


class MerchantIsActive(BasePermission):
    """Payment operations need an active merchant (design §4: onboarding, frozen and closed merchants may not
    trade). Refunds of a frozen merchant are allowed (design §4) and use ``MerchantMayRefund`` instead."""

    allowed_states = frozenset({MerchantState.ACTIVE})

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, MerchantApp):
            return False
        state = request.auth.merchant.state
        if state in self.allowed_states:
            return True
        self.message = f"merchant not active (state: {state})"
        return False


class MerchantMayRefund(MerchantIsActive):
    allowed_states = frozenset({MerchantState.ACTIVE, MerchantState.FROZEN})

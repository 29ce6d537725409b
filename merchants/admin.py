"""Django admin for merchants: created and moved only through merchants.services (style.md §15).

Merchant state is never edited as a field; freeze/unfreeze/activate are admin actions that ask for a reason
and call the services, which lock, re-check and audit. API secrets are never displayed, only whether set.
"""

from __future__ import annotations

from django.contrib import admin

from aggpay.masking import mask_secret
from aggpay.staff.admin_actions import reasoned_action
from merchants.models import Merchant, MerchantApp
from merchants.services.merchants import (
    merchant_activate,
    merchant_create,
    merchant_freeze,
    merchant_unfreeze,
)

MERCHANT_FIELDS = ("merchant_no", "legal_name", "short_name", "state", "created_at", "updated_at")
APP_FIELDS = ("app_id", "merchant", "name", "scopes", "sign_type", "masked_secret", "public_key_pem",
              "notify_url", "active", "created_at")


class MerchantAppInline(admin.TabularInline):
    model = MerchantApp
    fields = ("app_id", "name", "scopes", "sign_type", "masked_secret", "notify_url", "active", "created_at")
    readonly_fields = fields
    exclude = ("secret",)
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="secret")
    def masked_secret(self, obj):
        return mask_secret(obj.secret)


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("merchant_no", "short_name", "legal_name", "state", "created_at")
    list_filter = ("state",)
    search_fields = ("=merchant_no", "legal_name", "short_name")
    date_hierarchy = "created_at"
    actions = [
        # Risk decides (design §8): gated on the risk section permission, not on change_merchant.
        reasoned_action(merchant_freeze, name="freeze", verb="freeze", id_kwarg="merchant_id",
                        permissions=("risk_decision",)),
        reasoned_action(merchant_unfreeze, name="unfreeze", verb="unfreeze", id_kwarg="merchant_id",
                        permissions=("risk_decision",)),
        reasoned_action(merchant_activate, name="activate", verb="activate", id_kwarg="merchant_id",
                        permissions=("risk_decision",)),
    ]

    def has_risk_decision_permission(self, request):
        return request.user.has_perm("aggpay.access_risk")

    def get_fields(self, request, obj=None):
        return ("merchant_no", "legal_name", "short_name") if obj is None else MERCHANT_FIELDS

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else MERCHANT_FIELDS

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "merchant_no" in form.base_fields:
            form.base_fields["merchant_no"].required = False
            form.base_fields["merchant_no"].help_text = "Leave blank to generate one."
        return form

    def get_inlines(self, request, obj):
        return [MerchantAppInline] if obj is not None else []

    def has_change_permission(self, request, obj=None):
        # No update service yet: editing a merchant's record arrives with the onboarding issue, through a
        # service that audits it. Until then the change page is view-only for everyone.
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # merchants are closed, never deleted (audit rows and trades point at them)

    def save_model(self, request, obj, form, change):
        created = merchant_create(actor=request.user, legal_name=obj.legal_name, short_name=obj.short_name,
                                  merchant_no=obj.merchant_no or None)
        # The admin goes on to log the addition and redirect using ``obj``: make it the created row.
        obj.pk, obj.merchant_no, obj.created_at, obj.updated_at = (
            created.pk, created.merchant_no, created.created_at, created.updated_at
        )
        obj._state.adding, obj._state.db = False, created._state.db


@admin.register(MerchantApp)
class MerchantAppAdmin(admin.ModelAdmin):
    """View-only: apps are issued by merchants.services.apps (the secret is shown once, at issue)."""

    list_display = ("app_id", "merchant", "name", "sign_type", "scopes", "active", "masked_secret", "created_at")
    list_filter = ("sign_type", "active")
    list_select_related = ("merchant",)
    search_fields = ("=app_id", "=merchant__merchant_no", "merchant__short_name")
    fields = APP_FIELDS
    exclude = ("secret",)

    @admin.display(description="secret")
    def masked_secret(self, obj):
        return mask_secret(obj.secret)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

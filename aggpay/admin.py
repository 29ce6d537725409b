"""Django admin for the platform models: the audit log and platform keys are read-only for everyone."""

from __future__ import annotations

from django.contrib import admin
from django.utils.text import Truncator

from aggpay.models import AuditLog, PlatformKey
from aggpay.staff.forms import AdminLoginForm

admin.site.site_header = "aggpay back office"
admin.site.site_title = "aggpay back office"
admin.site.index_title = "Administration"
# The staff workbench, not the admin index, is where people start (design §8).
admin.site.site_url = "/staff/"
# Failed sign-ins are throttled here as on /staff/login/ (aggpay/staff/login_throttle.py).
admin.site.login_form = AdminLoginForm


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete for anyone, superusers included: these rows are records, not settings."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ActionNamespaceFilter(admin.SimpleListFilter):
    """Filter by the first segment of the namespaced action (``merchants``, ``channels``, ``aggpay``...)."""

    title = "action namespace"
    parameter_name = "namespace"

    def lookups(self, request, model_admin):
        actions = AuditLog.objects.order_by().values_list("action", flat=True).distinct()
        namespaces = sorted({action.split(".", 1)[0] for action in actions})
        return [(ns, ns) for ns in namespaces]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action__startswith=self.value() + ".")
        return queryset


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "target_type", "target_id", "target_repr", "short_reason")
    list_filter = (ActionNamespaceFilter, "target_type", "created_at")
    search_fields = ("=actor_label", "action", "=target_id", "target_repr", "reason", "=request_id")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    # The log grows without bound: skip the unfiltered COUNT(*) on every page (style.md §15).
    show_full_result_count = False
    fields = ("created_at", "actor", "actor_label", "action", "target_type", "target_id", "target_repr",
              "reason", "data", "request_id")

    @admin.display(description="reason")
    def short_reason(self, obj):
        return Truncator(obj.reason).chars(60)

    def has_view_permission(self, request, obj=None):
        # Either the model's own view permission or the explicit "read the audit log" one (AuditLog.Meta).
        return request.user.has_perm("aggpay.view_auditlog") or request.user.has_perm("aggpay.view_audit")


@admin.register(PlatformKey)
class PlatformKeyAdmin(ReadOnlyAdmin):
    """The private half is never rendered: it is not among ``fields`` and the form excludes it."""

    list_display = ("key_id", "active", "created_at", "private_key")
    list_filter = ("active",)
    fields = ("key_id", "active", "created_at", "public_key_pem", "private_key")
    exclude = ("private_key_pem",)

    @admin.display(description="private key")
    def private_key(self, obj):
        return "encrypted at rest, never shown"


# Users and groups: Django's stock admins replaced by ones the ``admin`` role cannot escalate through.
from aggpay import admin_users  # noqa: E402,F401

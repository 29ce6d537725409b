"""Django admin for events and deliveries: read-only history; resending goes through the service (style.md §15).

Events are append-only and deliveries move only through ``trades.services.events``; the one action, resend, asks
for a reason and is audited (design §5 rule 9).
"""

from __future__ import annotations

from django.contrib import admin

from aggpay.admin import ReadOnlyAdmin as BaseReadOnlyAdmin
from aggpay.staff.admin_actions import reasoned_action
from trades.models import Delivery, DeliveryAttempt, Event
from trades.services.events import deliveries_resend


class ReadOnlyAdmin(BaseReadOnlyAdmin):
    show_full_result_count = False


class RelatedAsTextMixin:
    """A read-only foreign key links to the related object's admin page only for who may open that page.

    Django links it whatever the user may see (``django.contrib.admin.helpers.AdminReadonlyField.get_admin_url``):
    support and finance, who read events and deliveries but not merchants, got a 403 behind the merchant and app
    links (tests/aggpay/test_staff_crawl.py). For them ``<field>_text`` shows the related object as plain text.
    """

    related_as_text: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), *(f"{name}_text" for name in self.related_as_text))

    def get_fields(self, request, obj=None):
        text = {name: f"{name}_text" for name in self.related_as_text}
        fields = [name for name in super().get_fields(request, obj) if name not in text.values()]
        return [text[name] if name in text and not self._may_open(request, name) else name for name in fields]

    def _may_open(self, request, name: str) -> bool:
        related = self.admin_site._registry.get(self.model._meta.get_field(name).related_model)
        return related is not None and related.has_view_or_change_permission(request)

    @admin.display(description="merchant")
    def merchant_text(self, obj):
        return str(obj.merchant) if obj.merchant_id else "-"

    @admin.display(description="app")
    def app_text(self, obj):
        return str(obj.app) if obj.app_id else "-"


class DeliveryInline(RelatedAsTextMixin, admin.TabularInline):
    model = Delivery
    fields = ("url", "app", "state", "attempts", "next_attempt_at", "delivered_at")
    readonly_fields = fields
    related_as_text = ("app",)
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "status_code", "duration_ms", "error", "response_snippet")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(RelatedAsTextMixin, ReadOnlyAdmin):
    list_display = ("event_id", "type", "merchant", "object_type", "object_id", "sequence", "created_at")
    list_filter = ("type",)
    list_select_related = ("merchant",)
    search_fields = ("=event_id", "=object_id", "=merchant__merchant_no")
    raw_id_fields = ("merchant", "app")
    readonly_fields = ("event_id", "merchant", "app", "type", "object_type", "object_id", "sequence", "data",
                       "created_at")
    related_as_text = ("merchant", "app")
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(RelatedAsTextMixin, ReadOnlyAdmin):
    list_display = ("pk", "event", "url", "state", "attempts", "next_attempt_at", "delivered_at")
    list_filter = ("state",)
    list_select_related = ("event",)
    search_fields = ("=event__event_id", "=event__object_id", "=event__merchant__merchant_no")
    raw_id_fields = ("event", "app")
    readonly_fields = ("event", "app", "url", "state", "attempts", "next_attempt_at", "claimed_until",
                       "delivered_at", "created_at", "updated_at")
    related_as_text = ("app",)
    inlines = [DeliveryAttemptInline]
    actions = [reasoned_action(deliveries_resend, name="resend", verb="resend", id_kwarg="delivery_id",
                               permissions=("resend",))]

    def has_resend_permission(self, request):
        return request.user.has_perm("trades.resend_delivery")

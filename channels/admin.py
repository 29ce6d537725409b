"""Django admin for channel configuration (style.md §15): it cannot bypass the domain.

Config is never displayed (only the masked summary the ops pages show), states are read-only, and every change —
enable/disable, product edits, evaluation transitions — goes through ``channels.services`` so it is audited and
kept in the configuration history. Creating accounts and filling checklists happens on the ops pages, whose
forms handle write-only credentials and the checklist properly.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.forms.models import construct_instance
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from aggpay.errors import ApplicationError
from channels.models import ChannelAccount, ChannelConfigChange, ChannelProduct, InterfaceEvaluation
from channels.services import accounts as account_services
from channels.services import evaluations as evaluation_services
from channels.services.config import config_display
from channels.services.products import PRODUCT_FIELDS, channel_product_prepare, channel_product_set


class AdminReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


def _with_reason(modeladmin, request, queryset, *, title: str, run, required: bool = True):
    """An admin action that first asks for a reason on an intermediate page, then calls ``run(obj, reason)``."""
    form = AdminReasonForm(request.POST if "apply" in request.POST else None)
    if not required:
        form.fields["reason"].required = False
    if "apply" in request.POST and form.is_valid():
        done, failed = 0, []
        for obj in queryset:
            try:
                run(obj, form.cleaned_data["reason"])
                done += 1
            except ApplicationError as exc:
                failed.append(f"{obj}: {exc.message}")
        if done:
            modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
        for line in failed:
            modeladmin.message_user(request, line, messages.ERROR)
        return None
    return TemplateResponse(request, "channels/admin/reason.html", {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "objects": queryset,
        "form": form,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
    })


class _ReadOnlyChangeView:
    """Every field is read-only: changes go through the ops pages or the admin actions (services)."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                         "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        pass  # never write the row outside the services, even for a hand-crafted POST

    def save_related(self, request, form, formsets, change):
        pass


class ChannelProductInline(admin.TabularInline):
    model = ChannelProduct
    extra = 0
    can_delete = False
    fields = ("product", "cost_rate", "isv_rebate_rate", "min_amount", "max_amount", "daily_cap", "enabled")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChannelAccount)
class ChannelAccountAdmin(_ReadOnlyChangeView, admin.ModelAdmin):
    list_display = ("code", "name", "kind", "mode", "enabled", "updated_at")
    list_filter = ("kind", "mode", "enabled")
    search_fields = ("code", "name")
    fields = ("code", "name", "kind", "mode", "base_url", "credentials", "enabled", "notes", "ops_page",
              "created_at", "updated_at")
    readonly_fields = fields
    inlines = [ChannelProductInline]
    actions = ["enable_accounts", "disable_accounts", "start_evaluations"]

    def has_add_permission(self, request):
        return False  # the ops page's form takes write-only credentials per kind

    def has_delete_permission(self, request, obj=None):
        return False  # history and trades refer to accounts; disable instead

    @admin.display(description="credentials (masked)")
    def credentials(self, obj):
        return format_html("<dl>{}</dl>", format_html_join(
            "", "<dt><code>{}</code></dt><dd>{}</dd>",
            ((row["name"], row["value"]) for row in config_display(obj.kind, obj.config or {})),
        ))

    @admin.display(description="ops page")
    def ops_page(self, obj):
        return format_html('<a href="{}">edit on the channel pages</a>',
                           reverse("channels:account_detail", args=[obj.code]))

    @admin.action(description="Enable selected channel accounts", permissions=["change"])
    def enable_accounts(self, request, queryset):
        return _with_reason(self, request, queryset, title="Enable channel accounts", run=lambda obj, reason:
                            account_services.channel_account_enable(account_id=obj.pk, actor=request.user,
                                                                    reason=reason))

    @admin.action(description="Disable selected channel accounts", permissions=["change"])
    def disable_accounts(self, request, queryset):
        return _with_reason(self, request, queryset, title="Disable channel accounts", run=lambda obj, reason:
                            account_services.channel_account_disable(account_id=obj.pk, actor=request.user,
                                                                     reason=reason))

    def has_start_evaluation_permission(self, request):
        # What the ops page asks to start one (channels.views.evaluation_start), not the account's "change".
        return request.user.has_perm("channels.add_interfaceevaluation")

    @admin.action(description="Start an interface evaluation", permissions=["start_evaluation"])
    def start_evaluations(self, request, queryset):
        return _with_reason(self, request, queryset, title="Start interface evaluations", required=False,
                            run=lambda obj, reason: evaluation_services.interface_evaluation_start(
                                account_id=obj.pk, actor=request.user, reason=reason))


class ChannelProductAdminForm(forms.ModelForm):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Required when changing a product; kept in the configuration history.")

    class Meta:
        model = ChannelProduct
        fields = ("account", "product", "cost_rate", "isv_rebate_rate", "min_amount", "max_amount", "daily_cap",
                  "enabled", "onboards_merchants")

    def clean(self):
        """Run the service's validation (without writing) so its errors show on the fields."""
        data = super().clean()
        account = data.get("account") or getattr(self.instance, "account", None)
        product = data.get("product") or self.instance.product
        if self.errors or account is None:
            return data
        if not self.instance.pk and ChannelProduct.objects.filter(account=account, product=product).exists():
            # The model's unique check is skipped (_post_clean), and the service would change the existing product:
            # an "add" that silently rewrote its rates, or said "added" beside "not saved".
            self.add_error("product", f"{account.code} already serves {product}: change that product instead.")
            return data
        try:
            channel_product_prepare(
                account=account, product=product, existing=self.instance if self.instance.pk else None,
                reason=data.get("reason", ""), **{name: data.get(name) for name in PRODUCT_FIELDS},
            )
        except ApplicationError as exc:
            self.add_error(exc.param if exc.param in self.fields else None, exc.message)
        return data

    def _post_clean(self):
        # Fill the instance (the admin logs and redirects with it) but skip the model's full_clean: the service
        # validated in clean() and writes the row itself.
        self.instance = construct_instance(self, self.instance, self._meta.fields, self._meta.exclude)


@admin.register(ChannelProduct)
class ChannelProductAdmin(admin.ModelAdmin):
    form = ChannelProductAdminForm
    list_display = ("account", "product", "cost_rate", "isv_rebate_rate", "min_amount", "max_amount", "daily_cap",
                    "enabled", "onboards_merchants")
    list_filter = ("account__kind", "account", "enabled")
    list_select_related = ("account",)
    search_fields = ("account__code", "product")
    raw_id_fields = ("account",)

    def get_readonly_fields(self, request, obj=None):
        return ("account", "product") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # disable a product instead; history refers to it

    def save_model(self, request, obj, form, change):
        """Go through the service (validation, history, audit) instead of saving the form's instance."""
        data = form.cleaned_data
        try:
            row = channel_product_set(
                account_id=obj.account_id, product=obj.product, actor=request.user, reason=data.get("reason", ""),
                cost_rate=data["cost_rate"], isv_rebate_rate=data["isv_rebate_rate"], min_amount=data["min_amount"],
                max_amount=data["max_amount"], daily_cap=data.get("daily_cap"), enabled=data["enabled"],
                onboards_merchants=data["onboards_merchants"],
            )
        except ApplicationError as exc:
            # Only a concurrent change can get here (the form ran the same validation); nothing was written.
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return
        obj.pk = row.pk

    def save_related(self, request, form, formsets, change):
        pass  # no relations to save; the service wrote the row


class _EvaluationTransitionActions:
    def _transition(self, request, queryset, *, title: str, service, required: bool):
        return _with_reason(self, request, queryset, title=title, required=required,
                            run=lambda obj, reason: service(evaluation_id=obj.pk, actor=request.user, reason=reason))

    @admin.action(description="Approve (verdict)", permissions=["change"])
    def approve(self, request, queryset):
        return self._transition(request, queryset, title="Approve evaluations", required=True,
                                service=evaluation_services.interface_evaluation_approve)

    @admin.action(description="Reject (verdict)", permissions=["change"])
    def reject(self, request, queryset):
        return self._transition(request, queryset, title="Reject evaluations", required=True,
                                service=evaluation_services.interface_evaluation_reject)

    @admin.action(description="Start integrating", permissions=["change"])
    def start_integrating(self, request, queryset):
        return self._transition(request, queryset, title="Start integrating", required=False,
                                service=evaluation_services.interface_evaluation_start_integrating)

    @admin.action(description="Go live", permissions=["change"])
    def go_live(self, request, queryset):
        return self._transition(request, queryset, title="Go live", required=False,
                                service=evaluation_services.interface_evaluation_go_live)


@admin.register(InterfaceEvaluation)
class InterfaceEvaluationAdmin(_ReadOnlyChangeView, _EvaluationTransitionActions, admin.ModelAdmin):
    list_display = ("id", "account", "state", "score", "reviewer", "decided_at", "created_at")
    list_filter = ("state", "account__kind")
    list_select_related = ("account", "reviewer")
    fields = ("account", "state", "score", "checklist_table", "verdict_notes", "reviewer", "decided_at", "ops_page",
              "created_at", "updated_at")
    readonly_fields = fields
    actions = ["approve", "reject", "start_integrating", "go_live"]

    def has_add_permission(self, request):
        return False  # started from the account (admin action or ops page)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="overall score")
    def score(self, obj):
        return obj.overall_score if obj.overall_score is not None else "—"

    @admin.display(description="checklist")
    def checklist_table(self, obj):
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            ((item["label"], "—" if item["score"] is None else item["score"], item["finding"] or "—")
             for item in obj.items()),
        ))

    @admin.display(description="ops page")
    def ops_page(self, obj):
        return format_html('<a href="{}">fill the checklist on the channel pages</a>',
                           reverse("channels:evaluation_detail", args=[obj.account.code, obj.pk]))


@admin.register(ChannelConfigChange)
class ChannelConfigChangeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "account", "action", "target_repr", "reason")
    list_filter = ("target_type", "action")
    list_select_related = ("account",)
    search_fields = ("account__code", "target_repr", "reason", "actor_label")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "actor", "actor_label", "account", "target_type", "target_id", "target_repr",
                       "action", "changes", "reason")
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

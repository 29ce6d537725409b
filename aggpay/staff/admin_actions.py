"""Django admin actions that move state through a service with a reason (style.md §15, design §5 rule 9).

``reasoned_action`` turns a service such as ``merchant_freeze(*, merchant_id, actor, reason)`` into an admin
action: it first shows a page asking for the reason, then calls the service once per selected row (each call
is its own transaction and writes its own audit row) and reports how many moved and which were skipped.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from aggpay.errors import ApplicationError


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=1000,
                             help_text="Written to the audit log with your name.")

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


def reasoned_action(service, *, name: str, verb: str, id_kwarg: str, permissions=("change",)):
    """Build an admin action calling ``service(**{id_kwarg: pk}, actor=user, reason=...)`` for each row."""

    @admin.action(description=f"{verb.capitalize()} selected … (asks for a reason)", permissions=permissions)
    def action(modeladmin, request, queryset):
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            opts = modeladmin.model._meta
            return TemplateResponse(request, "staff/admin/transition_reason.html", {
                **modeladmin.admin_site.each_context(request),
                "title": f"{verb.capitalize()} {opts.verbose_name_plural}",
                "description": f"{verb.capitalize()} these {queryset.count()} {opts.verbose_name_plural}:",
                "opts": opts,
                "queryset": queryset,
                "form": form,
                "action": name,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            })
        done, skipped = 0, []
        for pk in queryset.values_list("pk", flat=True):
            try:
                service(**{id_kwarg: pk}, actor=request.user, reason=form.cleaned_data["reason"])
            except ApplicationError as exc:
                skipped.append(exc.message)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"{verb.capitalize()}: {done} done.", messages.SUCCESS)
        if skipped:
            modeladmin.message_user(
                request, f"{verb.capitalize()}: {len(skipped)} skipped — " + "; ".join(skipped), messages.WARNING
            )
        return None

    action.__name__ = name
    return action

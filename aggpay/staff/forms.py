"""Forms of the staff shell: sign-in (staff only) and the list filters."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Q

from aggpay.days import on_days
from aggpay.staff.login_throttle import login_failure_record, login_locked_message, login_success_record


class ThrottledLoginMixin:
    """Failed sign-ins are counted and a locked name or address is refused before its password is checked
    (aggpay/staff/login_throttle.py); both sign-in pages' forms use it."""

    def clean(self):
        username = str(self.data.get("username") or "")
        if message := login_locked_message(self.request, username):
            raise forms.ValidationError(message, code="locked")
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                login_failure_record(self.request, username)
            raise
        if self.get_user() is not None:  # not a form missing its password, which never reached authenticate()
            login_success_record(self.request, username)
        return cleaned


class StaffAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """Only staff accounts open the back office; merchants use the API, never this page."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "not_staff": "This account has no access to the back office.",
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise forms.ValidationError(self.error_messages["not_staff"], code="not_staff")


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """/admin/login/ (``admin.site.login_form``): the same throttle as the staff sign-in page."""


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150,
                            widget=forms.TextInput(attrs={"placeholder": "user name or label"}))
    action = forms.CharField(required=False, max_length=100, label="Action starts with",
                             widget=forms.TextInput(attrs={"placeholder": "e.g. merchants.merchant."}))
    target = forms.CharField(required=False, max_length=200,
                             widget=forms.TextInput(attrs={"placeholder": "type#id, type, id or name"}))
    # A bad date is reported naming its field, above the rows as well as beside the box: a browser's date box shows
    # nothing for "xx" typed into the address, and the log listed every row as if it had been taken.
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}),
                                error_messages={"invalid": "From is not a date: enter it as YYYY-MM-DD."})
    date_to = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}),
                              error_messages={"invalid": "To is not a date: enter it as YYYY-MM-DD."})

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "To must not be before From")
        return cleaned

    def unapplied(self) -> list[str]:
        """Each error of a filter left out (``apply`` filters by the valid fields only), naming its field."""
        if not self.is_bound:
            return []
        lines = []
        for name, messages in self.errors.items():
            label = str(self.fields[name].label or name) if name in self.fields else ""
            lines += [message if not label or message.startswith(label) else f"{label}: {message}"
                      for message in messages]
        return lines

    def apply(self, queryset):
        """Filters the valid fields only, so one bad date does not hide the whole log."""
        self.is_valid()
        data = {name: value for name, value in getattr(self, "cleaned_data", {}).items() if name not in self.errors}
        if actor := (data.get("actor") or "").strip():
            queryset = queryset.filter(Q(actor_label__iexact=actor) | Q(actor__username__iexact=actor))
        if action := (data.get("action") or "").strip():
            queryset = queryset.filter(action__startswith=action)
        if target := (data.get("target") or "").strip():
            from trades.workbench import trade_audit_targets

            target_type, hash_, target_id = target.partition("#")
            if hash_:  # "merchants.merchant#12", as the table shows it
                queryset = queryset.filter(target_type__iexact=target_type.strip(), target_id=target_id.strip())
            elif (trade := trade_audit_targets(target)) is not None:
                # An order id or out_trade_no: every row about that trade — its refunds' (a staff refund's row is
                # about the refund), deliveries' and late payment's too — through the log's target index.
                queryset = queryset.filter(trade)
            else:
                queryset = queryset.filter(
                    Q(target_type__iexact=target) | Q(target_id=target) | Q(target_repr__icontains=target)
                )
        # Dates are the staff's local calendar days (TIME_ZONE), not UTC ones.
        return on_days(queryset, "created_at", date_from=data.get("date_from"), date_to=data.get("date_to"))

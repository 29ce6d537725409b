"""Forms of the channel configuration pages. They only parse input; the services validate and change rows.

Credentials are write-only (issue 3): secret and PEM fields are never pre-filled, and a blank one keeps the stored
value. Rates are entered in percent (ops think "0.38%") and handed to the services as exact Decimal fractions.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms

from aggpay.errors import ApplicationError
from aggpay.money import MoneyError, format_yuan, plain_yuan_to_fen
from channels.models import CHECKLIST_ITEMS, MAX_SCORE, ChannelAccount, ChannelMode, ChannelProduct
from channels.services.config import ConfigField, split_pem_blocks

CONFIG_PREFIX = "config__"
HUNDRED = Decimal(100)


def add_service_error(form: forms.Form, error: ApplicationError, *, aliases: dict[str, str] | None = None) -> None:
    """Show a service error on the field it names (``param``), or on the form when no field matches."""
    param = error.param or ""
    name = (aliases or {}).get(param, param)
    if name.startswith("config."):
        name = CONFIG_PREFIX + name.removeprefix("config.")
    form.add_error(name if name in form.fields else None, error.message)


def account_filter_choices() -> list[tuple[str, str]]:
    """The choices of a staff list's "Channel account" filter: any, then every account by its code."""
    return [("", "any account"), *ChannelAccount.objects.order_by("code").values_list("code", "code")]


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Why — kept in the history and the audit log.")


_PEM_ATTRS = {"rows": 4, "class": "mono", "autocomplete": "off", "spellcheck": "false"}


class PemListField(forms.CharField):
    """Several PEM blocks pasted one after the other, cleaned to a list of blocks."""

    widget = forms.Textarea(attrs=_PEM_ATTRS)

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return []
        blocks = split_pem_blocks(text)
        if not blocks:
            raise forms.ValidationError("Paste one or more PEM blocks (-----BEGIN … -----END …).")
        return blocks


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value: a key pasted into a form the page rejects is not echoed back into its
    HTML (design: credentials are write-only, never shown) — the ops user pastes it again."""

    def format_value(self, value):
        return None


def _pem_widget(spec: ConfigField) -> forms.Textarea:
    return (WriteOnlyTextarea if spec.write_only else forms.Textarea)(attrs=_PEM_ATTRS)


class _ConfigFieldsMixin:
    """Adds the kind's config fields (``config__<name>``) to a form."""

    def add_config_fields(self, specs: list[ConfigField], *, current: dict | None) -> None:
        self.config_specs = specs
        for spec in specs:
            name = CONFIG_PREFIX + spec.name
            if spec.type == "bool":
                field = forms.BooleanField(required=False, label=spec.label)
            elif spec.type == "int":
                field = forms.IntegerField(required=False, label=spec.label)
            elif spec.type == "list":
                field = PemListField(required=False, label=spec.label, widget=_pem_widget(spec))
            elif spec.pem:
                field = forms.CharField(required=False, label=spec.label, strip=False, widget=_pem_widget(spec))
            elif spec.secret:
                field = forms.CharField(required=False, label=spec.label,
                                        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
            else:
                field = forms.CharField(required=False, label=spec.label, max_length=2000)
            if spec.write_only:
                if self.is_bound and self.data.get(name):
                    # Shown only when the form is refused: what was pasted is not sent back, so say so.
                    field.widget.attrs["placeholder"] = "not shown back — paste it again" + (
                        " (blank keeps the stored one)" if current and current.get(spec.name) else "")
                elif current and current.get(spec.name):
                    field.widget.attrs["placeholder"] = "•••••• stored — leave blank to keep"
                else:
                    field.widget.attrs["placeholder"] = "paste here"
                field.help_text = "write-only: never shown again after saving"
            elif current is not None:
                field.initial = current.get(spec.name)
            elif spec.default not in (None, ""):
                field.initial = spec.default
            field.required = False  # the service names missing required fields (config.<name>)
            self.fields[name] = field

    def config_data(self) -> dict:
        data = {}
        for spec in self.config_specs:
            value = self.cleaned_data.get(CONFIG_PREFIX + spec.name)
            if spec.type == "str" and value is None:
                value = ""
            if spec.type == "list" and value is None:
                value = []
            data[spec.name] = value
        return data

    def config_bound_fields(self):
        return [self[CONFIG_PREFIX + spec.name] for spec in self.config_specs]

    def common_bound_fields(self):
        return [field for field in self if not field.name.startswith(CONFIG_PREFIX) and field.name != "reason"]


class AccountCreateForm(_ConfigFieldsMixin, forms.Form):
    code = forms.SlugField(max_length=40, help_text="short stable id, e.g. bank-c")
    name = forms.CharField(max_length=100)
    mode = forms.ChoiceField(choices=ChannelMode.choices)
    base_url = forms.CharField(max_length=255, help_text="the channel's gateway root")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reason = forms.CharField(required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, specs: list[ConfigField], default_mode: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mode"].initial = default_mode
        self.add_config_fields(specs, current=None)


class AccountEditForm(_ConfigFieldsMixin, forms.Form):
    name = forms.CharField(max_length=100)
    mode = forms.ChoiceField(choices=ChannelMode.choices)
    base_url = forms.CharField(max_length=255)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Why — kept in the history and the audit log.")

    def __init__(self, *args, account, specs: list[ConfigField], **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("name", "mode", "base_url", "notes"):
            self.fields[name].initial = getattr(account, name)
        self.add_config_fields(specs, current=account.config or {})


def percent_to_rate(value: Decimal | None) -> Decimal | None:
    return None if value is None else value / HUNDRED


def rate_to_percent(rate: Decimal) -> Decimal:
    return (rate * HUNDRED).normalize()


class YuanField(forms.CharField):
    """An amount typed in yuan ("1,234.50"), cleaned to integer fen."""

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            # Plain digits only (thousands commas aside): Decimal would read "1e1" as 10 yuan, and "Infinity".
            return plain_yuan_to_fen(value.replace(",", ""))
        except MoneyError:
            raise forms.ValidationError("Enter an amount in yuan with at most two decimals, e.g. 1234.50")


class ProductForm(forms.Form):
    """Add a product or edit its rates and limits (rates in percent, amounts in yuan)."""

    product = forms.ChoiceField()
    cost_rate = forms.DecimalField(label="Cost rate (%)", min_value=0, max_digits=10, decimal_places=4,
                                   help_text="e.g. 0.23 for 0.23%")
    isv_rebate_rate = forms.DecimalField(label="ISV rebate (%)", min_value=0, max_digits=10, decimal_places=4,
                                         initial=0, required=False, help_text="what the channel pays back; empty = 0")
    min_amount = YuanField(label="Min per transaction (yuan)", initial="0.01")
    max_amount = YuanField(label="Max per transaction (yuan)")
    daily_cap = YuanField(label="Daily cap (yuan)", required=False, help_text="empty = no cap")
    enabled = forms.BooleanField(required=False, initial=True)
    onboards_merchants = forms.BooleanField(
        required=False, initial=False, label="Onboard new merchants",
        help_text="merchants requesting this product get a contract on this account")
    reason = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, products: list[str], instance: ChannelProduct | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.fields["product"].choices = [(code, code) for code in products]
        if instance is not None:
            self.fields["product"].initial = instance.product
            self.fields["product"].disabled = True
            self.fields["cost_rate"].initial = rate_to_percent(instance.cost_rate)
            self.fields["isv_rebate_rate"].initial = rate_to_percent(instance.isv_rebate_rate)
            self.fields["min_amount"].initial = format_yuan(instance.min_amount).replace(",", "")
            self.fields["max_amount"].initial = format_yuan(instance.max_amount).replace(",", "")
            if instance.daily_cap is not None:
                self.fields["daily_cap"].initial = format_yuan(instance.daily_cap).replace(",", "")
            self.fields["enabled"].initial = instance.enabled
            self.fields["onboards_merchants"].initial = instance.onboards_merchants
            # Issue 3: a rate edit needs a reason (kept in the history).
            self.fields["reason"].required = True
            self.fields["reason"].help_text = "Why — kept in the history and the audit log."

    def clean_cost_rate(self):
        return self._rate("cost_rate")

    def clean_isv_rebate_rate(self):
        return self._rate("isv_rebate_rate")

    def _rate(self, name):
        value = self.cleaned_data.get(name)
        if value is not None and value >= HUNDRED:
            raise forms.ValidationError("A rate must be below 100%.")
        return value

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "cost_rate": percent_to_rate(data["cost_rate"]),
            "isv_rebate_rate": percent_to_rate(data.get("isv_rebate_rate") or Decimal(0)),
            "min_amount": data["min_amount"],
            "max_amount": data["max_amount"],
            "daily_cap": data.get("daily_cap"),
            "enabled": bool(data.get("enabled")),
            "onboards_merchants": bool(data.get("onboards_merchants")),
        }


SCORE_CHOICES = [("", "—")] + [(str(n), str(n)) for n in range(MAX_SCORE + 1)]


class EvaluationForm(forms.Form):
    """The checklist of issue 3: a finding and a 0–5 score per item, plus verdict notes."""

    verdict_notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, evaluation, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["verdict_notes"].initial = evaluation.verdict_notes
        for key, label, prompt in CHECKLIST_ITEMS:
            item = evaluation.item(key)
            self.fields[f"{key}_finding"] = forms.CharField(
                required=False, label=label, help_text=prompt, initial=item["finding"],
                widget=forms.Textarea(attrs={"rows": 2}),
            )
            self.fields[f"{key}_score"] = forms.TypedChoiceField(
                required=False, label=f"{label} score", choices=SCORE_CHOICES, coerce=int, empty_value=None,
                initial="" if item["score"] is None else str(item["score"]),
            )

    def rows(self):
        return [{"key": key, "label": label, "finding": self[f"{key}_finding"], "score": self[f"{key}_score"]}
                for key, label, _ in CHECKLIST_ITEMS]

    def checklist(self) -> dict:
        return {key: {"finding": self.cleaned_data.get(f"{key}_finding", ""),
                      "score": self.cleaned_data.get(f"{key}_score")}
                for key, _, _ in CHECKLIST_ITEMS}

    @staticmethod
    def aliases() -> dict[str, str]:
        names = {}
        for key, _, _ in CHECKLIST_ITEMS:
            names[f"checklist.{key}"] = f"{key}_finding"
            names[f"checklist.{key}.finding"] = f"{key}_finding"
            names[f"checklist.{key}.score"] = f"{key}_score"
        return names


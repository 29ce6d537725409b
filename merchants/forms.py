"""Forms of the onboarding workbench (issue 4 "Clerk workbench"): the merchant record a clerk fills in, the review
decisions, and the queue filters.

The forms only shape input; ``merchants.services`` decide. Field checks reuse ``merchants.validation`` (the same
functions the service calls) so a clerk sees every bad field at once, and the service's own ``InvalidRequest`` is
mapped back onto the field its ``param`` names, nested ones included (``settlement_account.account_number``,
``stores[0].area_code``). PII inputs never render a value back (design §5 rule 10): on an edit they are write-only,
blank keeps what is stored, and the placeholder shows the masked value.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from django import forms

from aggpay.errors import ApplicationError, InvalidRequest
from aggpay.masking import mask_bank_account, mask_email, mask_id_number, mask_phone
from channels.adapters.base import PRODUCTS
from channels.forms import percent_to_rate, rate_to_percent
from merchants import validation as v
from merchants.models import (
    AccountType,
    ApplicationState,
    AppScope,
    ContractState,
    DocumentType,
    IdDocType,
    Merchant,
    SettlementAccount,
    SignType,
    SubjectType,
)
from merchants.services.record import SCENARIO_TYPES

SCENARIO_LABELS = {"store": "Offline store", "website": "Website", "app": "App", "mini_program": "Mini program",
                   "official_account": "Official account"}
PRODUCT_CHOICES = [(code, code) for code in PRODUCTS]
DOCUMENT_ACCEPT = "image/jpeg,image/png,application/pdf"


class PrivateInput(forms.TextInput):
    """A text input that never writes its value into the page: PII is not echoed back, even to its typist."""

    def format_value(self, value):
        return None


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


def _raise_as_validation_error(check, value, **kwargs):
    try:
        return check(value, **kwargs)
    except InvalidRequest as exc:
        raise forms.ValidationError(field_message(exc.message, exc.param or ""))


def field_message(message: str, param: str, label: str = "") -> str:
    """'contact_phone: a mainland mobile…' → 'A mainland mobile…'; 'legal_name is required' → 'Legal name is
    required': the service names fields by their API names, the page puts the message beside the field."""
    if param and message.startswith(param + ": "):
        rest = message[len(param) + 2:]
        return rest[:1].upper() + rest[1:]
    if param and message.startswith(param):
        name = label or param.rsplit(".", 1)[-1].replace("_", " ")
        return (name[:1].upper() + name[1:]) + message[len(param):]
    return message


# --- the merchant record ----------------------------------------------------------------------------------------
class RecordForm(forms.Form):
    subject_type = forms.ChoiceField(choices=SubjectType.choices, label="Subject type",
                                     help_text="Small/micro merchants have no business licence.")
    legal_name = forms.CharField(max_length=128, label="Legal name",
                                 help_text="As on the licence (or the person's name for small/micro merchants).")
    short_name = forms.CharField(max_length=64, label="Short name", help_text="Shown to payers.")
    mcc = forms.CharField(max_length=4, label="MCC", widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    industry = forms.CharField(max_length=64, required=False)
    service_phone = forms.CharField(max_length=20, label="Customer service phone")
    registered_address = forms.CharField(max_length=256, required=False, label="Registered address")
    licence_no = forms.CharField(max_length=32, required=False, label="Licence number",
                                 help_text="Unified social credit code, 18 characters.")
    licence_valid_from = forms.DateField(required=False, label="Licence valid from", widget=DateInput())
    licence_valid_until = forms.DateField(required=False, label="Licence valid until", widget=DateInput(),
                                          help_text="Leave empty for long-term (长期).")
    legal_person_name = forms.CharField(max_length=64, label="Legal person's name")
    legal_person_id_type = forms.ChoiceField(choices=IdDocType.choices, label="ID document type")
    legal_person_id_number = forms.CharField(max_length=20, label="ID number", widget=PrivateInput())
    legal_person_id_valid_from = forms.DateField(label="ID valid from", widget=DateInput())
    legal_person_id_valid_until = forms.DateField(required=False, label="ID valid until", widget=DateInput(),
                                                  help_text="Leave empty for long-term (长期).")
    contact_name = forms.CharField(max_length=64, label="Contact name")
    contact_phone = forms.CharField(max_length=20, label="Contact mobile", widget=PrivateInput())
    contact_email = forms.CharField(max_length=128, required=False, label="Contact e-mail", widget=PrivateInput())
    requested_products = forms.MultipleChoiceField(choices=PRODUCT_CHOICES, widget=forms.CheckboxSelectMultiple,
                                                   label="Requested products")

    SECTIONS = (
        ("Business 主体信息", ("subject_type", "legal_name", "short_name", "mcc", "industry", "service_phone",
                              "registered_address")),
        ("Business licence 营业执照", ("licence_no", "licence_valid_from", "licence_valid_until")),
        ("Legal person 法人", ("legal_person_name", "legal_person_id_type", "legal_person_id_number",
                              "legal_person_id_valid_from", "legal_person_id_valid_until")),
        ("Contact 联系人", ("contact_name", "contact_phone", "contact_email")),
        ("Products 申请产品", ("requested_products",)),
    )
    PII = {"legal_person_id_number": mask_id_number, "contact_phone": mask_phone, "contact_email": mask_email}

    def __init__(self, *args, merchant: Merchant | None = None, **kwargs):
        self.merchant = merchant
        if merchant is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(merchant, name) for name in self.base_fields if name not in self.PII}
        super().__init__(*args, **kwargs)
        for name, mask in self.PII.items():
            stored = getattr(merchant, name, "") if merchant is not None else ""
            if stored:
                self.fields[name].required = False
                self.fields[name].widget.attrs["placeholder"] = f"{mask(stored)} — leave empty to keep"
        self.fields["contact_email"].widget.attrs.setdefault("placeholder", "optional")

    def sections(self):
        return [(title, [self[name] for name in names]) for title, names in self.SECTIONS]

    def clean_mcc(self):
        return _raise_as_validation_error(v.validate_mcc, self.cleaned_data["mcc"])

    def clean_service_phone(self):
        return _raise_as_validation_error(v.validate_service_phone, self.cleaned_data["service_phone"])

    def clean_contact_phone(self):
        value = self.cleaned_data["contact_phone"]
        return _raise_as_validation_error(v.validate_mobile, value) if value else value

    def clean_contact_email(self):
        value = self.cleaned_data["contact_email"]
        return _raise_as_validation_error(v.validate_email, value) if value else value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("subject_type") and cleaned["subject_type"] != SubjectType.MICRO:
            if not cleaned.get("licence_no"):
                self.add_error("licence_no", "Required for enterprises and individual businesses.")
            else:
                try:
                    cleaned["licence_no"] = v.validate_licence_no(cleaned["licence_no"])
                except InvalidRequest as exc:
                    self.add_error("licence_no", field_message(exc.message, exc.param))
            if not cleaned.get("licence_valid_from") and "licence_valid_from" not in self.errors:
                self.add_error("licence_valid_from", "Required for enterprises and individual businesses.")
        number = cleaned.get("legal_person_id_number")
        if number:
            try:
                cleaned["legal_person_id_number"] = v.validate_id_number(
                    number, id_type=cleaned.get("legal_person_id_type") or IdDocType.ID_CARD)
            except InvalidRequest as exc:
                self.add_error("legal_person_id_number", field_message(exc.message, exc.param))
        return cleaned


class RowForm(forms.Form):
    """A row of a list (scenarios, stores): every field optional so an empty row is simply skipped; a row with
    anything in it is checked whole."""

    REQUIRED: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.REQUIRED:
            self.fields[name].widget.attrs["data-required"] = "1"

    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return not any(data.get(name) for name in self.fields)

    def clean(self):
        cleaned = super().clean()
        if any(cleaned.get(name) for name in self.fields):
            for name in self.REQUIRED:
                if not cleaned.get(name) and name not in self.errors:
                    self.add_error(name, "Required.")
        return cleaned


class ScenarioForm(RowForm):
    type = forms.ChoiceField(choices=[("", "—"), *[(t, SCENARIO_LABELS[t]) for t in SCENARIO_TYPES]],
                             required=False)
    name = forms.CharField(max_length=64, required=False)
    url = forms.CharField(max_length=256, required=False, label="URL",
                          widget=forms.TextInput(attrs={"placeholder": "websites: https://…"}))
    appid = forms.CharField(max_length=64, required=False, label="App id",
                            widget=forms.TextInput(attrs={"placeholder": "apps, mini programs, official accounts"}))
    REQUIRED = ("type", "name")


class StoreForm(RowForm):
    store_no = forms.CharField(max_length=32, required=False, label="Store no.")
    name = forms.CharField(max_length=64, required=False)
    area_code = forms.CharField(max_length=6, required=False, label="Area code",
                                widget=forms.TextInput(attrs={"inputmode": "numeric", "placeholder": "330106"}))
    address = forms.CharField(max_length=256, required=False)
    REQUIRED = ("store_no", "name", "area_code", "address")

    def clean_area_code(self):
        value = self.cleaned_data["area_code"]
        return _raise_as_validation_error(v.validate_area_code, value) if value else value


ScenarioFormSet = forms.formset_factory(ScenarioForm, extra=2, max_num=20)
StoreFormSet = forms.formset_factory(StoreForm, extra=2, max_num=50)


class SettlementForm(forms.Form):
    account_type = forms.ChoiceField(choices=AccountType.choices, label="Account type",
                                     help_text="Enterprises: corporate. Small/micro: the legal person's own account.")
    bank_name = forms.CharField(max_length=64, label="Bank")
    bank_branch = forms.CharField(max_length=128, required=False, label="Branch")
    bank_branch_code = forms.CharField(max_length=16, required=False, label="Branch CNAPS code")
    account_number = forms.CharField(max_length=40, label="Account number", widget=PrivateInput())
    account_holder = forms.CharField(max_length=128, label="Account holder",
                                     help_text="The legal name (corporate) or the legal person's name (personal).")

    def __init__(self, *args, account: SettlementAccount | None = None, **kwargs):
        self.account = account
        if account is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(account, name) for name in self.base_fields if name != "account_number"}
        super().__init__(*args, **kwargs)
        if account is not None and account.account_number:
            self.fields["account_number"].required = False
            self.fields["account_number"].widget.attrs["placeholder"] = (
                f"{mask_bank_account(account.account_number)} — leave empty to keep")

    def clean_account_number(self):
        value = self.cleaned_data["account_number"]
        return _raise_as_validation_error(v.validate_account_number, value,
                                          field="settlement_account.account_number") if value else value


class DocumentsForm(forms.Form):
    """One optional file per document type; each file goes through ``document_add`` (type by content, size)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for value, label in DocumentType.choices:
            self.fields[value] = forms.FileField(
                required=False, label=label, widget=forms.ClearableFileInput(attrs={"accept": DOCUMENT_ACCEPT}))

    def files_to_add(self):
        return [(name, self.cleaned_data[name]) for name in self.fields if self.cleaned_data.get(name)]


class RecordForms:
    """The record form, its lists, the settlement account and the documents, validated and mapped together."""

    def __init__(self, data=None, files=None, *, merchant: Merchant | None = None):
        self.merchant = merchant
        account = merchant.settlement_accounts.filter(current=True).first() if merchant is not None else None
        self.record = RecordForm(data, merchant=merchant)
        self.settlement = SettlementForm(data, prefix="settlement_account", account=account)
        self.scenarios = ScenarioFormSet(data, prefix="scenarios",
                                         initial=(merchant.scenarios or []) if merchant else None)
        stores = list(merchant.stores.values("store_no", "name", "area_code", "address")) if merchant else None
        self.stores = StoreFormSet(data, prefix="stores", initial=stores)
        self.documents = DocumentsForm(data, files, prefix="doc")
        # Errors the service names on a whole list or section rather than one field ("stores", "documents").
        self.section_errors: dict[str, list[str]] = {}
        self._kept: dict[str, list[int]] = {}

    def is_valid(self) -> bool:
        parts = (self.record, self.settlement, self.scenarios, self.stores, self.documents)
        return all([part.is_valid() for part in parts])  # a list, so every part reports its errors

    def _rows(self, formset, name: str) -> list[dict]:
        rows, kept = [], []
        for index, form in enumerate(formset.forms):
            if form.is_blank():
                continue
            rows.append({k: val for k, val in form.cleaned_data.items() if val not in (None, "")})
            kept.append(index)
        self._kept[name] = kept
        return rows

    def to_record(self) -> dict:
        """The record as ``validate_record`` takes it; PII left empty on an edit keeps the stored value."""
        data = dict(self.record.cleaned_data)
        for key, value in list(data.items()):
            if isinstance(value, date):
                data[key] = value.isoformat()
        if self.merchant is not None:
            for name in RecordForm.PII:
                if not data.get(name):
                    data[name] = getattr(self.merchant, name)
        data["scenarios"] = self._rows(self.scenarios, "scenarios")
        data["stores"] = self._rows(self.stores, "stores")
        settlement = dict(self.settlement.cleaned_data)
        if not settlement.get("account_number") and self.settlement.account is not None:
            settlement["account_number"] = self.settlement.account.account_number
        data["settlement_account"] = settlement
        return data

    def apply_error(self, exc: ApplicationError) -> None:
        """Put a service error beside the field its ``param`` names (issue 4: errors a clerk understands)."""
        param = exc.param or ""
        listed = re.fullmatch(r"(scenarios|stores)\[(\d+)\](?:\.(\w+))?", param)
        if listed:
            name, index, field = listed.group(1), int(listed.group(2)), listed.group(3)
            formset = getattr(self, name)
            kept = self._kept.get(name, [])
            if index < len(kept):
                form = formset.forms[kept[index]]
                form.add_error(field if field in form.fields else None, field_message(exc.message, param))
                return
            self.section_errors.setdefault(name, []).append(exc.message)
            return
        if param.startswith("settlement_account."):
            field = param.split(".", 1)[1]
            self.settlement.add_error(field if field in self.settlement.fields else None,
                                      field_message(exc.message, param))
            return
        if param in ("scenarios", "stores", "settlement_account", "documents"):
            self.section_errors.setdefault(param, []).append(field_message(exc.message, param))
            return
        if param in self.record.fields:
            self.record.add_error(param, field_message(exc.message, param, self.record.fields[param].label or ""))
            return
        self.record.add_error(None, exc.message)

    def decorate(self, *, returned: list[dict] = (), missing: list[str] = (), have: dict[str, int] | None = None):
        """Mark the fields a risk officer pointed at (``flag``) and each document input's status, on the bound
        fields themselves so the template needs no lookups."""
        self.section_flags: dict[str, list[str]] = {}
        for item in returned:
            param, reason = item.get("field") or "", item.get("reason", "")
            bound = None
            if param.startswith("settlement_account."):
                name = param.split(".", 1)[1]
                bound = self.settlement[name] if name in self.settlement.fields else None
            elif param.startswith("documents."):
                name = param.split(".", 1)[1]
                bound = self.documents[name] if name in self.documents.fields else None
            elif param in self.record.fields:
                bound = self.record[param]
            if bound is not None:
                bound.flag = f"{bound.flag}; {reason}" if getattr(bound, "flag", "") else reason
            elif param in ("scenarios", "stores"):
                self.section_flags.setdefault(param, []).append(reason)
        for name in self.documents.fields:
            bound = self.documents[name]
            bound.missing = name in missing
            bound.have = (have or {}).get(name, 0)
        return self

    def error_count(self) -> int:
        count = len(self.record.errors) + len(self.settlement.errors) + len(self.documents.errors)
        count += sum(len(f.errors) for f in self.scenarios.forms) + sum(len(f.errors) for f in self.stores.forms)
        return count + sum(len(v) for v in self.section_errors.values())


# --- uploads on the merchant page ---------------------------------------------------------------------------------
class DocumentUploadForm(forms.Form):
    doc_type = forms.ChoiceField(choices=DocumentType.choices, label="Document")
    file = forms.FileField(widget=forms.ClearableFileInput(attrs={"accept": DOCUMENT_ACCEPT}))


# --- review decisions -------------------------------------------------------------------------------------------
def return_field_choices() -> list[tuple[str, str]]:
    """What a risk officer can point at when returning an application: the record's fields by the names the
    services use (so the clerk's form marks the same field), the lists, and each document type."""
    choices = [("", "General")]
    for _title, names in RecordForm.SECTIONS:
        choices += [(name, str(RecordForm.base_fields[name].label or name)) for name in names]
    choices += [("scenarios", "Business scenarios"), ("stores", "Stores")]
    choices += [(f"settlement_account.{name}", f"Settlement: {field.label}")
                for name, field in SettlementForm.base_fields.items()]
    choices += [(f"documents.{value}", f"Document: {label}") for value, label in DocumentType.choices]
    return choices


class ApproveForm(forms.Form):
    notes = forms.CharField(required=False, max_length=2000, label="Notes",
                            widget=forms.Textarea(attrs={"rows": 2, "placeholder": "optional"}))


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Rejection is final; the clerk cannot resubmit this application.")


class ReturnReasonForm(forms.Form):
    field = forms.ChoiceField(choices=return_field_choices, required=False)
    reason = forms.CharField(max_length=500, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "what to correct"}))


ReturnReasonFormSet = forms.formset_factory(ReturnReasonForm, extra=4, max_num=20)


def return_reasons(formset) -> list[dict]:
    return [{"field": form.cleaned_data.get("field", ""), "reason": form.cleaned_data["reason"].strip()}
            for form in formset.forms if form.cleaned_data.get("reason", "").strip()]


# --- queue filters ----------------------------------------------------------------------------------------------
def _choices(pairs, empty: str):
    return [("", empty), *pairs]


class ClerkQueueForm(forms.Form):
    state = forms.ChoiceField(choices=_choices(ApplicationState.choices, "All"), required=False)
    view = forms.ChoiceField(choices=[("", "Applications"), ("action", "Needs action")], required=False)
    q = forms.CharField(required=False, max_length=128, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "Merchant no., name or licence no.",
                                                      "type": "search"}))
    subject_type = forms.ChoiceField(choices=_choices(SubjectType.choices, "Any subject"), required=False,
                                     label="Subject")
    product = forms.ChoiceField(choices=_choices(PRODUCT_CHOICES, "Any product"), required=False)
    channel_account = forms.ChoiceField(choices=[], required=False, label="Channel account")
    contract_state = forms.ChoiceField(choices=_choices(ContractState.choices, "Any contract state"),
                                       required=False, label="Contract state")
    age = forms.ChoiceField(required=False, label="In state for", choices=_choices(
        [("lt1d", "under 1 day"), ("1to3d", "1–3 days"), ("3to7d", "3–7 days"), ("gt7d", "over 7 days")], "Any age"))

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel_account"].choices = _choices([(a.code, a.name) for a in accounts], "Any channel")

    def value(self, name: str) -> str:
        """A filter's value, ignoring invalid ones (a stale bookmark must not hide the queue)."""
        self.is_valid()
        return "" if name in self.errors else (getattr(self, "cleaned_data", {}).get(name) or "")


class ReviewQueueForm(forms.Form):
    STATES = [(ApplicationState.SUBMITTED, "Waiting"), (ApplicationState.RISK_REVIEW, "In review"),
              (ApplicationState.RETURNED, "Returned"), (ApplicationState.APPROVED, "Approved"),
              (ApplicationState.REJECTED, "Rejected")]
    state = forms.ChoiceField(choices=_choices(STATES, "Open (waiting and in review)"), required=False)
    q = forms.CharField(required=False, max_length=128, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "Merchant no., name or licence no.",
                                                      "type": "search"}))
    subject_type = forms.ChoiceField(choices=_choices(SubjectType.choices, "Any subject"), required=False,
                                     label="Subject")
    product = forms.ChoiceField(choices=_choices(PRODUCT_CHOICES, "Any product"), required=False)
    mine = forms.BooleanField(required=False, label="Taken by me")

    value = ClerkQueueForm.value


# --- API apps ---------------------------------------------------------------------------------------------------
# The forms only shape input; merchants.services.apps validates (URL, RSA key, scopes for partners) and the view
# puts its InvalidRequest on the field its param names (``add_service_error``).
PEM_PLACEHOLDER = "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----"


def add_service_error(form: forms.Form, exc: ApplicationError) -> None:
    field = exc.param if exc.param in form.fields else None
    form.add_error(field, field_message(exc.message, exc.param or ""))


def _pem_textarea(**attrs):
    return forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false", "autocomplete": "off",
                                 "placeholder": PEM_PLACEHOLDER, **attrs})


class AppIssueForm(forms.Form):
    name = forms.CharField(max_length=64, initial="default", help_text="What the app is for, e.g. 'shop backend'.")
    scopes = forms.MultipleChoiceField(
        choices=AppScope.choices, widget=forms.CheckboxSelectMultiple, initial=[AppScope.PAYMENTS],
        help_text="Partner onboarding only for a partner merchant.")
    sign_type = forms.ChoiceField(
        choices=SignType.choices, widget=forms.RadioSelect, initial=SignType.HMAC, label="Signing",
        help_text="HMAC: aggpay makes a secret, shown once. RSA: the merchant sends its public key.")
    public_key_pem = forms.CharField(
        required=False, strip=False, label="Merchant's RSA public key", widget=_pem_textarea(),
        help_text="RSA apps only: the merchant's merchant_public.pem (2048 bits or more). Never a private key.")
    notify_url = forms.CharField(required=False, max_length=512, label="Notify URL",
                                 widget=forms.URLInput(attrs={"placeholder": "https://", "style": "width:100%"}),
                                 help_text="Where events go by default (http or https); may be left empty.")

    def __init__(self, *args, partner: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not partner:  # the service refuses it anyway; don't offer it
            self.fields["scopes"].choices = [(AppScope.PAYMENTS.value, AppScope.PAYMENTS.label)]


class AppNotifyUrlForm(forms.Form):
    notify_url = forms.CharField(required=False, max_length=512, label="Notify URL",
                                 widget=forms.URLInput(attrs={"placeholder": "https://", "style": "width:100%"}),
                                 help_text="Empty: this app's events go nowhere unless an order names a URL.")


class AppPublicKeyForm(forms.Form):
    public_key_pem = forms.CharField(strip=False, label="New RSA public key", widget=_pem_textarea())
    reason = forms.CharField(required=False, max_length=2000, label="Reason",
                             widget=forms.TextInput(attrs={"placeholder": "recorded in the audit log"}))


class AppReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000, label="Reason")


class PartnerForm(forms.Form):
    is_partner = forms.BooleanField(required=False)
    reason = forms.CharField(max_length=2000, label="Reason",
                             error_messages={"required": "A reason is required (for example the agreement's number)."})


# --- contract rates (issue 4 "Contract") ------------------------------------------------------------------------
RATE_PLACES = Decimal("0.000001")  # ContractRate.rate's decimal_places


def percent_text(rate: Decimal) -> str:
    """Decimal("0.0038") → "0.38%" (exact: rates are Decimals, design §5 rule 1; at least two decimals)."""
    whole, _, frac = format(rate_to_percent(rate), "f").partition(".")
    return f"{whole}.{frac.ljust(2, '0')}%"


class ContractRateForm(forms.Form):
    """Change one product's merchant rate on a contract (``contract_set_rate``). Typed in percent, as every rate on
    the staff pages is (channels.forms.ProductForm: ops think "0.38%"), and handed on as the exact decimal fraction.
    Below the account's cost only with the override permission and a reason (issue 4 "Contract"): the form says so
    beside the field before the service refuses it."""

    product = forms.CharField(widget=forms.HiddenInput)
    rate = forms.DecimalField(label="New rate (%)", min_value=0, max_digits=10, decimal_places=4,
                              widget=forms.NumberInput(attrs={"step": "0.0001", "min": "0", "max": "99.9999"}))
    reason = forms.CharField(required=False, max_length=256, label="Reason",
                             widget=forms.TextInput(attrs={"size": 32}))

    def __init__(self, *args, contract_id: int, product: str, cost_rate: Decimal, may_override: bool, **kwargs):
        # One form per contract and product on a page: ids unique to both, so each label finds its input.
        slug = re.sub(r"[^a-z0-9]+", "_", product.lower())
        super().__init__(*args, auto_id=f"id_rate_{contract_id}_{slug}_%s", **kwargs)
        self.contract_id, self.product = contract_id, product
        self.cost_rate, self.may_override = cost_rate, may_override
        self.fields["product"].initial = product
        cost = percent_text(cost_rate)
        self.fields["rate"].help_text = f"in percent, e.g. 0.38 for 0.38%; the channel's cost is {cost}"
        if may_override:
            self.fields["reason"].help_text = (f"required below the cost ({cost}): your override is audited; "
                                               "optional otherwise, kept in the history")
        else:
            self.fields["reason"].help_text = "optional, kept in the history"

    def clean_product(self):
        if self.cleaned_data["product"] != self.fields["product"].initial:
            raise forms.ValidationError("The form is for another product; reload the page.")
        return self.cleaned_data["product"]

    def clean_rate(self):
        # Four places of a percent are six of the rate (parse_rate's limit): quantizing is exact, and gives the
        # stored column's form ("0.002000"), as the history's "from" has it.
        value = percent_to_rate(self.cleaned_data["rate"]).quantize(RATE_PLACES)
        if value >= 1:
            raise forms.ValidationError("A rate must be below 100%.")
        if value < self.cost_rate and not self.may_override:
            raise forms.ValidationError(
                f"{percent_text(value)} is below the channel's cost {percent_text(self.cost_rate)}. Only "
                "operations may price below cost (the below-cost override permission), with a reason.")
        return value

    def clean(self):
        data = super().clean()
        rate, reason = data.get("rate"), (data.get("reason") or "").strip()
        if rate is not None and rate < self.cost_rate and not reason:
            self.add_error("reason", f"A reason is required to price below the channel's cost "
                                     f"({percent_text(self.cost_rate)}).")
        data["reason"] = reason
        return data

    def service_kwargs(self) -> dict:
        """``contract_set_rate``'s arguments: the rate as a decimal string (its parse_rate takes no float), and the
        reason, which it audits on every change and keeps on the rate only below cost."""
        return {"product": self.cleaned_data["product"], "rate": str(self.cleaned_data["rate"]),
                "below_cost_reason": self.cleaned_data["reason"]}


class ContractSubAppidForm(forms.Form):
    """Set or change the merchant's WeChat appid on a contract (``contract_set_sub_appid``, which checks its shape
    and audits the change with the reason): the official account or mini program appid the payer's openid belongs to
    (docs/channels/bank.md §6.2)."""

    sub_appid = forms.CharField(max_length=64, label="WeChat appid (sub_appid)",
                                widget=forms.TextInput(attrs={"placeholder": "wx8888888888888888", "class": "mono",
                                                              "spellcheck": "false", "autocomplete": "off"}),
                                help_text="wx and 16 letters or digits: the merchant's official account's appid for "
                                          "WeChat JSAPI (and one-code-pay), its mini program's for mini-program pay")
    reason = forms.CharField(max_length=256, label="Reason",
                             widget=forms.TextInput(attrs={"size": 32, "placeholder": "e.g. the merchant's email"}),
                             help_text="recorded in the audit log")

    def __init__(self, *args, contract_id: int, **kwargs):
        # One form per contract card on the merchant page: ids unique to it, so each label finds its input.
        super().__init__(*args, auto_id=f"id_sub_appid_{contract_id}_%s", **kwargs)
        self.contract_id = contract_id

"""Operations pages for channel configuration, at /staff/channels/ (issue 3; design §8 "operations").

Every page needs the operations section permission plus the model permission of what it changes (design §5
rule 11); every POST goes through ``channels.services``. Credentials are never rendered: the config is shown
through ``config_display`` (ids visible, secrets masked, PEM blocks as fingerprints) and forms never pre-fill them.
The queue of callbacks not processed (channels.unprocessed) shows each notice's start masked, never the whole;
operations mark them handled there (channels.services.callback_handling).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import messages
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import capfirst
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from aggpay.errors import ApplicationError
from aggpay.money import format_yuan
from aggpay.querystring import query_without
from aggpay.roles import forbidden, permission_required_403, section_required
from channels import unprocessed
from channels.forms import (
    AccountCreateForm,
    AccountEditForm,
    EvaluationForm,
    ProductForm,
    ReasonForm,
    account_filter_choices,
    add_service_error,
    rate_to_percent,
)
from channels.models import (
    CHECKLIST_ITEMS,
    DEFAULT_MODE,
    ChannelAccount,
    ChannelConfigChange,
    ChannelConfigInvalid,
    ChannelProduct,
    EvaluationState,
    InterfaceEvaluation,
)
from channels.registry import KIND_CHOICES
from channels.services import accounts as account_services
from channels.services import evaluations as evaluation_services
from channels.services.callback_handling import HANDLE_PERM, NOTE_MAX_LENGTH, callback_record_mark_handled
from channels.services.config import config_display, config_fields, kind_available
from channels.services.history import UNSET
from channels.services.products import account_products, channel_product_set
from channels.services.volume import account_products_paid, local_day
from channels.traffic_preview import account_disable_preview

HISTORY_PAGE_SIZE = 50
UNPROCESSED_PAGE_SIZE = 25
# Callbacks are their own model: reading them (bodies included, masked) is a permission of its own.
VIEW_CALLBACKS = "channels.view_channelcallback"

# Which verdict/lifecycle buttons an evaluation shows in each state (issue 3's state machine).
EVALUATION_ACTIONS = {
    EvaluationState.EVALUATING: [("approve", "Approve", "primary"), ("reject", "Reject", "danger")],
    EvaluationState.APPROVED: [("start_integrating", "Start integrating", "primary")],
    EvaluationState.INTEGRATING: [("go_live", "Go live", "primary")],
}
_EVALUATION_SERVICES = {
    "approve": evaluation_services.interface_evaluation_approve,
    "reject": evaluation_services.interface_evaluation_reject,
    "start_integrating": evaluation_services.interface_evaluation_start_integrating,
    "go_live": evaluation_services.interface_evaluation_go_live,
}


def percent(rate) -> str:
    """0.0023 → '0.23%' (at least two decimals, up to the four a rate can carry)."""
    text = format(rate_to_percent(rate), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}%"


def _account(code: str) -> ChannelAccount:
    return get_object_or_404(ChannelAccount, code=code)


def _current_evaluation(account: ChannelAccount) -> InterfaceEvaluation | None:
    return account.evaluations.order_by("-created_at", "-id").first()


def _paid_today(paid: int, cap: int | None) -> dict:
    """What the product collected today against its daily cap, as the page shows it: routing stops choosing the
    account once the next payment would pass the cap (channels.routing ``_hold_daily_caps``). Orders in flight may
    take it past 100%: only collected money counts."""
    shown = {"paid": format_yuan(paid), "paid_fen": paid, "cap_fen": cap}
    if cap:
        shown["percent"] = paid * 100 // cap  # floored: 100% only once the cap is reached
    return shown


def _product_rows(account: ChannelAccount) -> list[dict]:
    # Today's collected amounts for all the account's products in one query, whatever their number.
    paid = account_products_paid(account_id=account.pk, day=local_day(timezone.now()))
    return [{
        "product": row,
        "cost": percent(row.cost_rate),
        "rebate": percent(row.isv_rebate_rate),
        "min": format_yuan(row.min_amount),
        "max": format_yuan(row.max_amount),
        "cap": format_yuan(row.daily_cap) if row.daily_cap is not None else "no cap",
        "today": _paid_today(paid.get(row.product, 0), row.daily_cap),
        # Values for the inline rate form: percent and plain yuan, as ProductForm parses them.
        "inputs": {
            "cost_rate": format(rate_to_percent(row.cost_rate), "f"),
            "isv_rebate_rate": format(rate_to_percent(row.isv_rebate_rate), "f"),
            "min_amount": format_yuan(row.min_amount).replace(",", ""),
            "max_amount": format_yuan(row.max_amount).replace(",", ""),
            "daily_cap": format_yuan(row.daily_cap).replace(",", "") if row.daily_cap is not None else "",
        },
    } for row in account.products.all()]


def _history_rows(queryset) -> list[dict]:
    rows = []
    for change in queryset:
        fields = []
        for name, value in (change.changes or {}).items():
            label = _history_label(change.target_type, name)
            if isinstance(value, dict) and set(value) == {"old", "new"}:
                fields.append({"name": name, "label": label, "old": _shown(name, value["old"]),
                               "new": _shown(name, value["new"])})
            else:
                fields.append({"name": name, "label": label, "changed": str(value)})
        rows.append({"change": change, "fields": fields})
    return rows


_HISTORY_MODELS = {"account": ChannelAccount, "product": ChannelProduct, "evaluation": InterfaceEvaluation}
_CHECKLIST_LABELS = {key: label for key, label, _prompt in CHECKLIST_ITEMS}


def _history_label(target_type: str, name: str) -> str:
    """A changed field as staff know it: the model field's verbose name, the checklist item's label, or the config
    key spelled out ("config.api_v3_key" → "Config: api v3 key"); the stored name stays in the page's title."""
    head, _, rest = name.partition(".")
    if head == "config" and rest:
        return f"Config: {rest.replace('_', ' ')}"
    if head == "checklist" and rest:
        return f"Checklist: {_CHECKLIST_LABELS.get(rest, rest.replace('_', ' '))}"
    model = _HISTORY_MODELS.get(target_type)
    if model is not None:
        try:
            return capfirst(model._meta.get_field(name).verbose_name)
        except FieldDoesNotExist:
            pass
    return capfirst(name.replace("_", " "))


_RATE_FIELDS = {"cost_rate", "isv_rebate_rate"}
_FEN_FIELDS = {"min_amount", "max_amount", "daily_cap"}


def _shown(name: str, value) -> str:
    """A history value as staff read it: rates in percent, amounts in yuan, checklist items as "score/5 text"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):  # enabled, live, … : people read Yes/No, not Python's True/False
        return "Yes" if value else "No"
    if isinstance(value, dict):  # a checklist item
        score, finding = value.get("score"), value.get("finding") or ""
        if score is None and not finding:
            return "—"
        return f"{'—' if score is None else score}/5 {finding}".strip()
    if name in _RATE_FIELDS:
        try:
            return percent(Decimal(str(value)))
        except InvalidOperation:
            return str(value)
    if name in _FEN_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return format_yuan(value) + " yuan"
    return str(value)


# --- accounts ------------------------------------------------------------------------------------------


@require_safe
@section_required("operations")
@permission_required_403("channels.view_channelaccount")
def account_list(request):
    accounts = ChannelAccount.objects.annotate(product_count=Count("products")).order_by("kind", "code")
    latest = {}
    for evaluation in InterfaceEvaluation.objects.order_by("account_id", "-created_at", "-id"):
        latest.setdefault(evaluation.account_id, evaluation)
    rows = [{"account": account, "evaluation": latest.get(account.pk)} for account in accounts]
    kinds = [{"kind": kind, "label": label, "available": kind_available(kind)} for kind, label in KIND_CHOICES]
    return render(request, "channels/account_list.html", {
        "rows": rows, "kinds": kinds, "can_add": request.user.has_perm("channels.add_channelaccount"),
        "can_view_callbacks": request.user.has_perm(VIEW_CALLBACKS),
    })


@require_http_methods(["GET", "HEAD", "POST"])
@section_required("operations")
@permission_required_403("channels.add_channelaccount")
def account_create(request):
    kind = request.GET.get("kind") or request.POST.get("kind") or ""
    if kind not in dict(KIND_CHOICES):
        return render(request, "channels/account_choose_kind.html", {
            "kinds": [{"kind": k, "label": label, "available": kind_available(k)} for k, label in KIND_CHOICES],
        })
    try:
        specs = config_fields(kind)
    except ChannelConfigInvalid as exc:
        messages.error(request, exc.message)
        return redirect("channels:account_list")
    form = AccountCreateForm(request.POST or None, specs=specs, default_mode=DEFAULT_MODE[kind])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            account = account_services.channel_account_create(
                actor=request.user, kind=kind, code=data["code"], name=data["name"], mode=data["mode"],
                base_url=data["base_url"], notes=data["notes"], config=form.config_data(), reason=data["reason"],
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Channel account {account.code} created, disabled: it takes traffic once "
                                      "its interface evaluation is live and you enable it.")
            return redirect("channels:account_detail", code=account.code)
    return render(request, "channels/account_form.html", {
        "form": form, "kind": kind, "kind_label": dict(KIND_CHOICES)[kind], "account": None,
    })


@require_safe
@section_required("operations")
@permission_required_403("channels.view_channelaccount")
def account_detail(request, code: str):
    account = _account(code)
    history = Paginator(account.changes.select_related("actor"), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    present = set(account.products.values_list("product", flat=True))
    missing = [p for p in account_products(account) if p not in present]
    can_change = request.user.has_perm("channels.change_channelaccount")
    return render(request, "channels/account_detail.html", {
        "account": account,
        "config_rows": config_display(account.kind, account.config or {}),
        "products": _product_rows(account),
        "add_form": ProductForm(products=missing) if missing else None,
        "reason_form": ReasonForm(),
        "evaluation": _current_evaluation(account),
        # Why the Enable button is not offered (no live interface evaluation, design §1); "" when it may be.
        "enable_refusal": account_services.enable_refusal(account),
        "page": history,
        "history": _history_rows(history),
        "can_change": can_change,
        # Before ops disable it, which merchants' orders no other account would take, at which amounts (design §7
        # "a preview of what moves"; routing answers, channels.traffic_preview). Read only for whoever may disable.
        "disable_preview": account_disable_preview(account) if can_change and account.enabled else None,
        "can_change_products": request.user.has_perm("channels.change_channelproduct"),
        "can_add_products": request.user.has_perm("channels.add_channelproduct"),
        "unprocessed": (_open_unprocessed(account) if request.user.has_perm(VIEW_CALLBACKS) else None),
    })


def _open_unprocessed(account: ChannelAccount) -> dict:
    """The account's open callbacks not processed and the link to them: the count is the list that link opens (the
    queue's own filter, channels.unprocessed), so the number and the rows agree — those a retry applied or an
    operator marked handled are in neither."""
    return {"n": unprocessed.filter_unprocessed(unprocessed.unprocessed(), account=account.code, state="open").count(),
            "url": unprocessed.queue_url(account=account.code, state="open")}


@require_http_methods(["GET", "HEAD", "POST"])
@section_required("operations")
@permission_required_403("channels.change_channelaccount")
def account_edit(request, code: str):
    account = _account(code)
    try:
        specs = config_fields(account.kind)
    except ChannelConfigInvalid as exc:
        messages.error(request, exc.message)
        return redirect("channels:account_detail", code=account.code)
    form = AccountEditForm(request.POST or None, account=account, specs=specs)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            account_services.channel_account_update(
                account_id=account.pk, actor=request.user, reason=data["reason"], name=data["name"],
                mode=data["mode"], base_url=data["base_url"], notes=data["notes"], config=form.config_data(),
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Channel account {account.code} saved.")
            return redirect("channels:account_detail", code=account.code)
    return render(request, "channels/account_form.html", {
        "form": form, "kind": account.kind, "kind_label": account.get_kind_display(), "account": account,
    })


def _toggle(request, code: str, *, enable: bool):
    account = _account(code)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason to enable or disable a channel account.")
        return redirect("channels:account_detail", code=account.code)
    service = account_services.channel_account_enable if enable else account_services.channel_account_disable
    try:
        service(account_id=account.pk, actor=request.user, reason=form.cleaned_data["reason"])
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Channel account {account.code} {'enabled' if enable else 'disabled'}.")
    return redirect("channels:account_detail", code=account.code)


@require_POST
@section_required("operations")
@permission_required_403("channels.change_channelaccount")
def account_enable(request, code: str):
    return _toggle(request, code, enable=True)


@require_POST
@section_required("operations")
@permission_required_403("channels.change_channelaccount")
def account_disable(request, code: str):
    return _toggle(request, code, enable=False)


# --- products ------------------------------------------------------------------------------------------


def _save_product(request, account: ChannelAccount, form: ProductForm, product: str) -> bool:
    try:
        channel_product_set(account_id=account.pk, product=product, actor=request.user,
                            reason=form.cleaned_data.get("reason") or "", **form.service_kwargs())
    except ApplicationError as exc:
        add_service_error(form, exc)
        return False
    return True


@require_POST
@section_required("operations")
@permission_required_403("channels.add_channelproduct")
def product_add(request, code: str):
    account = _account(code)
    present = set(account.products.values_list("product", flat=True))
    form = ProductForm(request.POST, products=[p for p in account_products(account) if p not in present])
    if form.is_valid() and _save_product(request, account, form, form.cleaned_data["product"]):
        messages.success(request, f"{form.cleaned_data['product']} added to {account.code}.")
        return redirect("channels:account_detail", code=account.code)
    return render(request, "channels/product_form.html", {"account": account, "form": form, "product": None},
                  status=400)


@require_http_methods(["GET", "HEAD", "POST"])
@section_required("operations")
@permission_required_403("channels.change_channelproduct")
def product_edit(request, code: str, product: str):
    account = _account(code)
    row = get_object_or_404(ChannelProduct, account=account, product=product)
    form = ProductForm(request.POST or None, products=[row.product], instance=row)
    if request.method == "POST":
        if form.is_valid() and _save_product(request, account, form, row.product):
            messages.success(request, f"{row.product} of {account.code} saved.")
            return redirect("channels:account_detail", code=account.code)
        status = 400
    else:
        status = 200
    history = ChannelConfigChange.objects.filter(target_type="product", target_id=str(row.pk)).select_related("actor")
    return render(request, "channels/product_form.html", {
        "account": account, "form": form, "product": row, "history": _history_rows(history[:HISTORY_PAGE_SIZE]),
    }, status=status)


# --- interface evaluations -----------------------------------------------------------------------------


@require_safe
@section_required("operations")
@permission_required_403("channels.view_interfaceevaluation")
def evaluation_current(request, code: str):
    account = _account(code)
    evaluation = _current_evaluation(account)
    if evaluation is not None:
        return redirect("channels:evaluation_detail", code=account.code, pk=evaluation.pk)
    return render(request, "channels/evaluation_start.html", {
        "account": account, "can_start": request.user.has_perm("channels.add_interfaceevaluation"),
    })


@require_POST
@section_required("operations")
@permission_required_403("channels.add_interfaceevaluation")
def evaluation_start(request, code: str):
    account = _account(code)
    try:
        evaluation = evaluation_services.interface_evaluation_start(account_id=account.pk, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("channels:evaluation_current", code=account.code)
    messages.success(request, f"Interface evaluation of {account.code} started.")
    return redirect("channels:evaluation_detail", code=account.code, pk=evaluation.pk)


def _evaluation(account: ChannelAccount, pk: int) -> InterfaceEvaluation:
    evaluation = InterfaceEvaluation.objects.filter(account=account, pk=pk).select_related("reviewer").first()
    if evaluation is None:
        raise Http404("no such evaluation")
    return evaluation


def _evaluation_page(request, account, evaluation, *, form=None, reason_form=None, status=200):
    history = ChannelConfigChange.objects.filter(target_type="evaluation", target_id=str(evaluation.pk))
    can_change = request.user.has_perm("channels.change_interfaceevaluation")
    editable = can_change and evaluation.state == EvaluationState.EVALUATING
    form = form or EvaluationForm(evaluation=evaluation)
    if not editable:
        for field in form.fields.values():
            field.disabled = True
    others = account.evaluations.exclude(pk=evaluation.pk).order_by("-created_at", "-id")
    return render(request, "channels/evaluation_detail.html", {
        "account": account,
        "evaluation": evaluation,
        "form": form,
        "editable": editable,
        "actions": EVALUATION_ACTIONS.get(evaluation.state, []) if can_change else [],
        "reason_form": reason_form or ReasonForm(),
        "missing": [label for key, label, _ in CHECKLIST_ITEMS if key in evaluation.missing_items()],
        "history": _history_rows(history.select_related("actor")),
        "others": others,
        "can_restart": (evaluation.state == EvaluationState.REJECTED
                        and request.user.has_perm("channels.add_interfaceevaluation")
                        and evaluation == _current_evaluation(account)),
        # Going live does not enable the account (interface_evaluation_go_live): the page offers it as next step.
        "can_enable": (evaluation.state == EvaluationState.LIVE and not account.enabled
                       and request.user.has_perm("channels.change_channelaccount")
                       and not account_services.enable_refusal(account)),
    }, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
@section_required("operations")
@permission_required_403("channels.view_interfaceevaluation")
def evaluation_detail(request, code: str, pk: int):
    account = _account(code)
    evaluation = _evaluation(account, pk)
    if request.method != "POST":
        return _evaluation_page(request, account, evaluation)
    if not request.user.has_perm("channels.change_interfaceevaluation"):
        return forbidden(request, missing="channels.change_interfaceevaluation")
    form = EvaluationForm(request.POST, evaluation=evaluation)
    if form.is_valid():
        try:
            evaluation_services.interface_evaluation_save(
                evaluation_id=evaluation.pk, actor=request.user, checklist=form.checklist(),
                verdict_notes=form.cleaned_data.get("verdict_notes", UNSET),
            )
        except ApplicationError as exc:
            add_service_error(form, exc, aliases=EvaluationForm.aliases())
        else:
            messages.success(request, "Checklist saved.")
            return redirect("channels:evaluation_detail", code=account.code, pk=evaluation.pk)
    return _evaluation_page(request, account, evaluation, form=form, status=400)


@require_POST
@section_required("operations")
@permission_required_403("channels.change_interfaceevaluation")
def evaluation_transition(request, code: str, pk: int, action: str):
    account = _account(code)
    evaluation = _evaluation(account, pk)
    service = _EVALUATION_SERVICES.get(action)
    if service is None:
        raise Http404("no such action")
    reason_form = ReasonForm(request.POST)
    reason_required = action in ("approve", "reject")
    if reason_required and not reason_form.is_valid():
        return _evaluation_page(request, account, evaluation, reason_form=reason_form, status=400)
    reason = (reason_form.cleaned_data.get("reason") if reason_form.is_valid() else "") or ""
    try:
        evaluation = service(evaluation_id=evaluation.pk, actor=request.user, reason=reason)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Evaluation of {account.code} is now {evaluation.get_state_display().lower()}.")
    return redirect("channels:evaluation_detail", code=account.code, pk=evaluation.pk)


# --- callbacks not processed (未处理的渠道回调) -----------------------------------------------------------------


class UnprocessedFilterForm(forms.Form):
    # Chosen by the page's tabs; the queue opens on the open ones (it is a work queue, channels.unprocessed).
    state = forms.ChoiceField(required=False, choices=unprocessed.STATES, widget=forms.HiddenInput)
    account = forms.ChoiceField(required=False, label="Channel account")
    outcome = forms.ChoiceField(required=False, label="Outcome", choices=[("", "any outcome"), *unprocessed.OUTCOMES])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = account_filter_choices()

    def filters(self) -> dict:
        """The valid filters; an invalid one is shown with its error and left out, the others still apply."""
        chosen = {}
        if self.is_bound:
            self.is_valid()
            chosen = {name: value for name, value in self.cleaned_data.items() if value not in ("", None)}
        chosen.setdefault("state", unprocessed.DEFAULT_STATE)
        return chosen


@require_http_methods(["GET", "HEAD", "POST"])
@section_required("operations")
@permission_required_403("channels.view_channelaccount", VIEW_CALLBACKS)
def unprocessed_callbacks(request):
    """Notices an account received that we did not process (channels.unprocessed): an account silently dropping
    them — a broken stored config, a failing handler, a kind we have no handler for — shows here. A POST marks the
    chosen ones handled with a note, then shows the same list again (its filters are in the URL it posts to)."""
    if request.method == "POST":
        if not request.user.has_perm(HANDLE_PERM):
            return forbidden(request, missing=HANDLE_PERM)
        _mark_handled(request)
        return redirect(request.get_full_path())
    form = UnprocessedFilterForm(request.GET or None)
    filters = form.filters()
    callbacks = unprocessed.filter_unprocessed(unprocessed.unprocessed(), **filters)
    page = Paginator(callbacks, UNPROCESSED_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = unprocessed.rows(page.object_list)
    # The note and "Mark handled" only where a row can still be chosen: on the Handled tab (or a page of handled
    # ones) they could only answer "choose at least one".
    can_handle = request.user.has_perm(HANDLE_PERM)
    # A tab counts what it lists under the other filters ("Handled 12" above a filtered list of 2 misled); the
    # panels stay the whole queue's open ones.
    state_counts = unprocessed.state_counts(**filters)
    tabs = [{"key": key, "label": label, "active": filters["state"] == key, "n": state_counts[key]}
            for key, label in unprocessed.STATES]
    return render(request, "channels/unprocessed_callbacks.html", {
        "form": form, "filters": filters, "page": page, "rows": rows,
        "markable": can_handle and any(row.callback.handled_at is None for row in rows),
        "counts": unprocessed.counts(), "query": query_without(request, "page"),
        "tab_query": query_without(request, "page", "state"), "tabs": tabs,
        "excerpt_chars": unprocessed.EXCERPT_CHARS, "can_handle": can_handle, "note_max_length": NOTE_MAX_LENGTH,
    })


def _mark_handled(request) -> None:
    """The queue's "Mark handled": the chosen callbacks and the note go to the service as they came (it names what
    is wrong with them, and checks the permission again and audits), its answer told in a message."""
    try:
        records = callback_record_mark_handled(record_ids=request.POST.getlist("record"), actor=request.user,
                                               note=request.POST.get("note", ""))
    except ApplicationError as exc:
        messages.error(request, capfirst(exc.message) + ".")
    else:
        n = len(records)
        messages.success(request, f"Marked {n} callback{'s' if n != 1 else ''} handled.")

"""The onboarding workbenches (issue 4 "Clerk workbench"): the clerk's queue and merchant pages, the record form, and
the risk officer's review queue and review page.

Every view checks a section permission (clerks: onboarding; risk officers: risk) plus the model permission of what
it does (design §5 rule 11); every POST calls a service in ``merchants.services`` and reports the outcome as a
message. Pages show PII masked only (design §5 rule 10): see ``workbench.record_sections`` and ``forms.PrivateInput``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import wraps

import segno
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_fsm import can_proceed

from aggpay.errors import ApplicationError
from aggpay.models import AuditLog
from aggpay.platform_keys import platform_key
from aggpay.querystring import query_without
from aggpay.roles import SECTIONS_BY_SLUG, forbidden
from channels.forms import rate_to_percent
from channels.models import ChannelAccount, ChannelProduct
from merchants import workbench
from merchants.forms import (
    AppIssueForm,
    AppNotifyUrlForm,
    AppPublicKeyForm,
    AppReasonForm,
    ApproveForm,
    ClerkQueueForm,
    ContractRateForm,
    ContractSubAppidForm,
    DocumentUploadForm,
    PartnerForm,
    RecordForms,
    RejectForm,
    ReturnReasonFormSet,
    ReviewQueueForm,
    add_service_error,
    field_message,
    percent_text,
    return_field_choices,
    return_reasons,
)
from merchants.models import (
    ApplicationState,
    Contract,
    ContractState,
    Document,
    DocumentType,
    Merchant,
    MerchantApp,
    MerchantState,
    OnboardingApplication,
    SignType,
)
from merchants.services import apps as app_services
from merchants.services import contract_risk, onboarding
from merchants.services import contracts as contract_services
from merchants.services import merchants as merchant_services
from merchants.services import settlement as settlement_services
from merchants.services.activation import app_secret_reveal

PAGE_SIZE = 25
BULK_RESULTS_KEY = "merchants.bulk_submit_results"
DOC_LABELS = dict(DocumentType.choices)


# --- access -------------------------------------------------------------------------------------------------
def staff_view(*perms: str, sections: tuple[str, ...] = ("onboarding",), any_of: tuple[str, ...] = ()):
    """Anonymous → login; signed in without staff status, without one of ``sections``, without any of ``perms`` or
    (when given) without at least one of ``any_of`` → 403 page."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.is_staff:
                # As everywhere in the back office (aggpay.roles._check): an account whose staff status was taken
                # away loses these pages at once, not when its session ends.
                return forbidden(request, missing="staff status")
            section_perms = [SECTIONS_BY_SLUG[slug].permission for slug in sections]
            if not any(request.user.has_perm(perm) for perm in section_perms):
                return forbidden(request, missing=" or ".join(section_perms))
            missing = [perm for perm in perms if not request.user.has_perm(perm)]
            if any_of and not any(request.user.has_perm(perm) for perm in any_of):
                missing.append(" or ".join(any_of))
            if missing:
                return forbidden(request, missing=", ".join(missing))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _merchant(merchant_no: str) -> Merchant:
    return get_object_or_404(Merchant, merchant_no=merchant_no)


def _application(merchant: Merchant) -> OnboardingApplication | None:
    return merchant.applications.order_by("-created_at", "-id").first()


def _error(request, exc: ApplicationError, prefix: str = "") -> None:
    messages.error(request, f"{prefix}{exc.message}")


def _back(request, fallback: str):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback)


def _optional_url(name: str) -> str:
    """Batch onboarding lives in its own URL module; link to it only where it is mounted."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


# --- the clerk's queue (/staff/onboarding/) ----------------------------------------------------------------------
@require_safe
@staff_view("merchants.view_merchant")
def clerk_queue(request):
    accounts = list(ChannelAccount.objects.filter(contracts__isnull=False).distinct().order_by("code"))
    form = ClerkQueueForm(request.GET or None, accounts=accounts)
    filters = {name: form.value(name) for name in
               ("subject_type", "product", "channel_account", "contract_state", "age", "q")}
    filtered = workbench.filter_applications(workbench.applications_base(), **filters)
    counts = workbench.counts_by_stage(filtered)  # a merchant WeChat has yet to sign with is still contracting
    state, view = form.value("state"), form.value("view")
    returned = workbench.returned_applications(q=filters["q"])
    action_contracts = workbench.needs_action_contracts(q=filters["q"], channel_account=filters["channel_account"])
    refused_changes = workbench.refused_settlement_changes(q=filters["q"], channel_account=filters["channel_account"])
    action_count = workbench.needs_action_count(q=filters["q"], channel_account=filters["channel_account"])
    context = {
        "form": form, "state": state, "view": view, "counts": counts, "total": sum(counts.values()),
        "tabs": [(value, label, counts.get(value, 0)) for value, label in ApplicationState.choices],
        "action_count": action_count, "query": query_without(request, "page"),
        "tab_query": query_without(request, "page", "state", "view"), "next": request.get_full_path(),
        "bulk_results": request.session.pop(BULK_RESULTS_KEY, None),
        "can_create": request.user.has_perm("merchants.add_merchant"),
        "batch_url": _optional_url("merchants_batch:index"),
        "can_submit": request.user.has_perm("merchants.change_merchant"),
        "doc_labels": DOC_LABELS,
        "merchant_matches": workbench.merchant_matches(filters["q"]), "merchant_match_limit": workbench.MERCHANT_MATCHES,
    }
    if view == "action":
        context.update(returned=[(a, _returned_reasons(a)) for a in returned[:200]],
                       action_contracts=list(action_contracts[:200]),
                       refused_settlement_changes=list(refused_changes[:200]),
                       # Refused less than a minute ago reads "just now", not timesince's "0 minutes".
                       a_minute_ago=timezone.now() - dt.timedelta(minutes=1))
    else:
        applications = workbench.in_stage(filtered, state) if state else filtered
        # Oldest change first: what has waited longest is worked first.
        page = _page(request, applications.order_by("updated_at", "id"))
        rows = workbench.queue_rows(page.object_list)
        context.update(page=page, rows=rows, has_drafts=any(r.application.state == ApplicationState.DRAFT
                                                            for r in rows))
    return render(request, "staff/onboarding.html", context)


@require_POST
@staff_view("merchants.change_merchant")
def bulk_submit(request):
    """Submit each selected draft through ``application_submit`` (its own transaction) and report every row."""
    # isascii: str.isdigit() is also true of "²" and other digits int() refuses (a 500 on a tampered form).
    ids = [int(pk) for pk in request.POST.getlist("application") if pk.isascii() and pk.isdigit()]
    results = []
    for application in OnboardingApplication.objects.filter(pk__in=ids).select_related("merchant").order_by("id"):
        row = {"merchant_no": application.merchant.merchant_no, "name": application.merchant.short_name}
        try:
            onboarding.application_submit(application_id=application.pk, actor=request.user)
        except ApplicationError as exc:
            row.update(ok=False, message=exc.message)
        else:
            row.update(ok=True, message="submitted for risk review")
        results.append(row)
    if not results:
        messages.warning(request, "Select at least one draft to submit.")
    else:
        done = sum(1 for r in results if r["ok"])
        request.session[BULK_RESULTS_KEY] = {"done": done, "failed": len(results) - done, "rows": results}
    return _back(request, reverse("staff:onboarding"))


# --- the record form --------------------------------------------------------------------------------------------
class _Rollback(Exception):
    pass


def _run_record_save(request, forms: RecordForms, save):
    """Run ``save()`` (services) and the document uploads in one transaction: bad input writes nothing
    (design §5 rule 12). Returns the application or None with the errors placed on the forms."""
    stored: list = []
    try:
        with transaction.atomic():
            application = save()
            documents = forms.documents.files_to_add()
            for doc_type, uploaded in documents:
                try:
                    document = onboarding.document_add(merchant_id=application.merchant_id, actor=request.user,
                                                       doc_type=doc_type, uploaded_file=uploaded)
                except ApplicationError as exc:
                    forms.documents.add_error(doc_type, exc.message)
                    raise _Rollback from exc
                stored.append(document.file.name)
            return application
    except _Rollback:
        pass
    except ApplicationError as exc:
        forms.apply_error(exc)
    # The database rolled back; the files already written to storage would be orphans.
    for name in stored:
        Document._meta.get_field("file").storage.delete(name)
    return None


@require_http_methods(["GET", "POST"])
@staff_view("merchants.add_merchant", "merchants.change_merchant")
def merchant_create(request):
    forms = RecordForms(request.POST or None, request.FILES or None)
    if request.method == "POST" and forms.is_valid():
        application = _run_record_save(
            request, forms, lambda: onboarding.merchant_onboard_draft(actor=request.user, data=forms.to_record()))
        if application is not None:
            merchant = application.merchant
            missing = onboarding.missing_documents(merchant)
            messages.success(request, f"Merchant {merchant.merchant_no} drafted."
                             + (f" Still missing: {', '.join(DOC_LABELS[d] for d in missing)}." if missing else
                                " Every required document is there: submit it for review."))
            return redirect("merchants:detail", merchant.merchant_no)
    if request.method == "POST":
        messages.error(request, "The merchant was not saved: correct the marked fields. For privacy, ID numbers, "
                       "phones, e-mail and account numbers are not shown back; enter them again.")
    forms.decorate()
    return render(request, "merchants/merchant_form.html", {"forms": forms, "merchant": None, "application": None})


@require_http_methods(["GET", "POST"])
@staff_view("merchants.change_merchant")
def merchant_edit(request, merchant_no: str):
    merchant = _merchant(merchant_no)
    application = _application(merchant)
    # A draft or returned application is edited; an approved one only to correct what a channel rejected.
    correcting = onboarding.record_correctable(application)
    if application is None or not (application.state in onboarding.EDITABLE_STATES or correcting):
        state = application.get_state_display().lower() if application else "missing"
        messages.error(request, f"The application is {state}; only a draft or a returned application, or one a "
                       "channel rejected, can be edited.")
        return redirect("merchants:detail", merchant.merchant_no)
    service = onboarding.merchant_record_correct if correcting else onboarding.merchant_record_update
    rejected = onboarding.rejected_contracts(merchant) if correcting else []
    forms = RecordForms(request.POST or None, request.FILES or None, merchant=merchant)
    if request.method == "POST" and forms.is_valid():
        saved = _run_record_save(request, forms, lambda: service(
            application_id=application.pk, actor=request.user, data=forms.to_record()))
        if saved is not None:
            if correcting:
                names = ", ".join(c.channel_account.name for c in rejected)
                messages.success(request, f"Merchant {merchant.merchant_no} corrected. Resubmit it to {names} from "
                                 "its contract card.")
            else:
                messages.success(request, f"Merchant {merchant.merchant_no} saved"
                                 + (" and reopened as a draft." if application.state == ApplicationState.RETURNED
                                    else "."))
            return redirect("merchants:detail", merchant.merchant_no)
    if request.method == "POST":
        messages.error(request, "Nothing was saved: correct the marked fields.")
    missing = onboarding.missing_documents(merchant)
    have: dict[str, int] = {}
    for doc_type in merchant.documents.values_list("doc_type", flat=True):
        have[doc_type] = have.get(doc_type, 0) + 1
    forms.decorate(returned=application.returned_reasons or [], missing=missing, have=have)
    return render(request, "merchants/merchant_form.html", {
        "forms": forms, "merchant": merchant, "application": application,
        "missing": [DOC_LABELS[d] for d in missing], "returned": _returned_reasons(application),
        "rejected_contracts": rejected,
    })


def _returned_reasons(application: OnboardingApplication | None) -> list[dict]:
    if application is None or not application.returned_reasons:
        return []
    labels = dict(return_field_choices())
    return [{**r, "label": labels.get(r.get("field", ""), r.get("field") or "General")}
            for r in application.returned_reasons]


# --- the merchant page ------------------------------------------------------------------------------------------
def _qr_svg(url: str) -> str:
    # segno draws only paths from the URL's bits; no text of ours or the channel's is embedded in the SVG.
    return mark_safe(segno.make(url, error="m").svg_inline(scale=4, border=2, title="sign URL"))  # noqa: S308


# Who may change a merchant's rate (contract_set_rate): a clerk by merchants.change_contract, operations by the
# below-cost override, which covers rates at or above cost too. Operations is not given the merchant page (the
# record, documents, apps, settlement: onboarding's and risk's, merchants.view_merchant): it opens only the
# merchant's rates page (``merchant_rates``), which its override permission itself admits it to.
RATE_PERMS = ("merchants.change_contract", contract_services.OVERRIDE_RATE_PERM)
RATE_SECTIONS = ("onboarding", "operations")
RATE_HISTORY_ACTION = "merchants.contract.rate_changed"  # contract_set_rate's audit row


def _may_change_rates(user) -> bool:
    return any(user.has_perm(perm) for perm in RATE_PERMS) and any(
        user.has_perm(SECTIONS_BY_SLUG[slug].permission) for slug in RATE_SECTIONS)


def _may_open_merchant_page(user) -> bool:  # merchant_detail's own check
    return user.has_perm("merchants.view_merchant") and (
        user.has_perm("aggpay.access_onboarding") or user.has_perm("aggpay.access_risk"))


def _shown_rate(value) -> str:
    return percent_text(Decimal(value)) if value not in (None, "") else "—"


def _rate_history(contract: Contract) -> dict[str, list[dict]]:
    """Each product's rate changes, newest first, from contract_set_rate's audit rows (the rate row keeps only its
    current value): who, when, old → new, the reason, and the cost it was below, if it was."""
    history: dict[str, list[dict]] = {}
    rows = AuditLog.objects.filter(action=RATE_HISTORY_ACTION, target_type=Contract._meta.label_lower,
                                   target_id=str(contract.pk)).order_by("-created_at", "-id")
    for row in rows:
        data = row.data or {}
        history.setdefault(data.get("product", ""), []).append({
            "at": row.created_at, "who": row.actor_label, "old": _shown_rate(data.get("from")),
            "new": _shown_rate(data.get("to")), "reason": row.reason,
            "below_cost": _shown_rate(data["below_cost"]) if data.get("below_cost") else ""})
    return history


def _rate_rows(contract: Contract, user, *, bound: ContractRateForm | None = None) -> list[dict]:
    """The contract's rates beside the account's cost, each with its history and, for those who may change it, its
    "Change rate" form (``bound``: the one just posted with its errors, for its contract and product)."""
    offers = {o.product: o for o in ChannelProduct.objects.filter(account=contract.channel_account_id)}
    history = _rate_history(contract)
    # A terminated contract's rates are kept as they were (contract_set_rate refuses them): no form to offer.
    may_change = _may_change_rates(user) and contract.state != ContractState.TERMINATED
    may_override = user.has_perm(contract_services.OVERRIDE_RATE_PERM)
    rows = []
    for rate in contract.rates.all():
        offer = offers.get(rate.product)
        form = None
        if bound is not None and bound.contract_id == contract.pk and bound.product == rate.product:
            form = bound
        elif may_change and offer is not None:
            form = ContractRateForm(contract_id=contract.pk, product=rate.product, cost_rate=offer.cost_rate,
                                    may_override=may_override, initial={"rate": rate_to_percent(rate.rate)})
        rows.append({"product": rate.product, "rate": percent_text(rate.rate),
                     "cost": percent_text(offer.cost_rate) if offer else "—",
                     "margin": percent_text(rate.rate - offer.cost_rate) if offer else "",
                     "below_cost_reason": rate.below_cost_reason, "history": history.get(rate.product, []),
                     "form": form, "may_override": may_override})
    return rows


def _may_limit(user) -> bool:
    """Limiting a contract and lifting its limit are risk's (design §8; contract_risk ``LIMIT_PERM``)."""
    return user.has_perm(contract_risk.LIMIT_PERM) and user.has_perm(SECTIONS_BY_SLUG["risk"].permission)


def _limit_shown(contract: Contract, user) -> dict:
    """What the card says of a limited contract's limit: when, by whom and why (the timeline entry that set it,
    contract_risk ``limit_event``), and the channel notice it was set on, if it was — linked for those who may open
    risk's notices. The notice's free text is masked as on its own page (design §5 rule 10)."""
    event = contract_risk.limit_event(contract)
    if event is None:  # limited before limits were recorded on the timeline: nothing to say but that it is
        return {"recorded": False}
    data = event.data or {}
    shown = {"recorded": True, "at": event.created_at, "by": data.get("by") or event.source, "reason": event.message,
             "record_id": contract_risk.limited_for(event), "notice": None, "notice_url": ""}
    notice = contract.risk_notices.filter(pk=data["channel_notice"]).first() if data.get("channel_notice") else None
    if notice is not None:
        from risk.notice_queue import mask_text

        shown["notice"] = {"kind": notice.get_kind_display(), "received_at": notice.received_at,
                           "punish_plan": mask_text(notice.punish_plan)}
        if user.has_perm("risk.view_channelrisknotice") and user.has_perm(SECTIONS_BY_SLUG["risk"].permission):
            shown["notice_url"] = reverse("risk:notice", args=[notice.pk])
    return shown


def _sub_appid_context(contract: Contract, user, rates: list[dict], *, can_change: bool,
                       bound: ContractSubAppidForm | None) -> dict:
    """The merchant's WeChat appid on the card: shown where the contract takes a WeChat product; where its channel
    needs one for a product (``needs_sub_appid``: a bank's wechat.jsapi and wechat.mini, bank.md §6.2) and it has
    none, what routing does without it; and for the clerk, the form that sets it (``contract_set_sub_appid``)."""
    products = [r["product"] for r in rates]
    wechat = any(product.startswith("wechat.") for product in products)
    missing = contract_services.sub_appid_products(contract, products) if not contract.sub_appid else []
    form = None
    if bound is not None and bound.contract_id == contract.pk:
        form = bound
    elif (can_change and user.has_perm(contract_services.SUB_APPID_PERM) and wechat
          and contract.state != ContractState.TERMINATED):
        form = ContractSubAppidForm(contract_id=contract.pk, initial={"sub_appid": contract.sub_appid})
    return {"shows_sub_appid": wechat or bool(contract.sub_appid), "sub_appid_form": form,
            "sub_appid_missing": missing,
            "sub_appid_missing_title": " and ".join(contract_services.PRODUCT_NAMES.get(p, p) for p in missing)
            + (" need" if len(missing) > 1 else " needs") + " the merchant's appid" if missing else ""}


def _contract_context(contract: Contract, user, *, rate_form: ContractRateForm | None = None,
                      limit_error: str = "", sub_appid_form: ContractSubAppidForm | None = None) -> dict:
    rates = _rate_rows(contract, user, bound=rate_form)
    can_change = user.has_perm("merchants.change_contract") and user.has_perm("aggpay.access_onboarding")
    state = contract.state
    may_limit = _may_limit(user)
    held = contract_risk.resumes_limited(contract)  # suspended, with a limit its resume brings back
    can_correct = (state == ContractState.REJECTED and can_change and user.has_perm("merchants.change_merchant")
                   and onboarding.record_correctable(_application(contract.merchant)))
    can_lift = may_limit and (state == ContractState.LIMITED or held)
    can_limit = may_limit and (state == ContractState.ACTIVE or (state == ContractState.SUSPENDED and not held))
    # Before risk limits an active contract, what that moves; on a limited one, where its orders go now (design §7
    # "a preview of what moves"; risk.traffic_preview asks routing). A suspended contract takes no orders: none.
    preview = None
    if (can_limit and state == ContractState.ACTIVE) or (can_lift and state == ContractState.LIMITED):
        from risk.traffic_preview import traffic_preview

        preview = traffic_preview(contract)
    return {
        "contract": contract,
        "timeline": workbench.contract_timeline(contract),
        "rates": rates,
        "rate_page": "merchant",
        "qr": _qr_svg(contract.sign_url) if contract.sign_url and state in workbench.CONTRACT_ACTION_STATES
        else "",
        "can_resubmit": can_change and state == ContractState.REJECTED,
        "can_correct": can_correct,
        "can_refresh": can_change and state in workbench.CONTRACT_FOLLOWED_STATES,
        "can_suspend": can_change and state in (ContractState.ACTIVE, ContractState.LIMITED),
        "can_resume": can_change and state == ContractState.SUSPENDED,
        # Resuming brings back the limit it was suspended under, or risk set while it was suspended (settlement
        # ``contract_resume``): the card says so, and shows that limit as it shows one in force.
        "resumes_limited": held,
        "limit": _limit_shown(contract, user) if state == ContractState.LIMITED or held else None,
        # The way out of a limit no notice will end (the channel never sent the appeal's outcome, or it was cleared
        # with the account manager): risk lifts whatever limit is in force, with a reason (contract_lift_limit). On a
        # suspended contract risk limits or lifts too; it stays suspended (contract_risk).
        "can_lift": can_lift,
        "can_limit": can_limit,
        "preview": preview,
        "limit_error": limit_error,
        "needs_merchant": state in (ContractState.TO_BE_CONFIRMED, ContractState.TO_BE_SIGNED),
        **_sub_appid_context(contract, user, rates, can_change=can_change, bound=sub_appid_form),
    }


def _documents(merchant: Merchant) -> list[dict]:
    return [{"document": d, "label": DOC_LABELS.get(d.doc_type, d.doc_type),
             "is_image": d.content_type.startswith("image/"),
             "url": reverse("merchants:document", args=[merchant.merchant_no, d.pk])}
            for d in merchant.documents.order_by("doc_type", "-created_at")]


@require_safe
@staff_view("merchants.view_merchant", sections=("onboarding", "risk"))
def merchant_detail(request, merchant_no: str):
    merchant = _merchant(merchant_no)
    return render(request, "merchants/merchant_detail.html", _detail_context(request, merchant))


def _detail_context(request, merchant: Merchant, *, rate_form: ContractRateForm | None = None,
                    limit_error: tuple[int, str] | None = None,
                    sub_appid_form: ContractSubAppidForm | None = None, **extra) -> dict:
    """``limit_error``: (contract id, message) of a limit or lift just refused for its reason, shown at its form."""
    user = request.user
    application = _application(merchant)
    clerk = user.has_perm("aggpay.access_onboarding")
    may_freeze, may_unfreeze = (user.has_perm(merchant_services.FREEZE_PERM),
                                user.has_perm(merchant_services.UNFREEZE_PERM))
    risk_decides = may_freeze or may_unfreeze
    state = application.state if application else ""
    contracts = merchant.contracts.select_related("channel_account").order_by("channel_account__code")
    # document_add's own rule: no form where it would refuse (a risk-rejected application, one under review).
    can_docs = clerk and user.has_perm("merchants.change_merchant") and onboarding.documents_refusal(merchant) is None
    correcting = onboarding.record_correctable(application)  # an approved record a channel rejected
    apps = _apps_context(user, merchant)
    return {
        "merchant": merchant, "application": application,
        "sections": workbench.record_sections(merchant),
        "scenarios": merchant.scenarios or [], "stores": list(merchant.stores.all()),
        "documents": _documents(merchant),
        # Beside the missing documents, a draft's documents a channel will refuse: application_submit's two checks.
        "missing": [DOC_LABELS.get(d, d) for d in onboarding.missing_documents(merchant)]
        + (onboarding.unusable_documents(merchant) if state == ApplicationState.DRAFT else []),
        "timeline": workbench.application_timeline(application) if application else [],
        "returned": _returned_reasons(application) if state == ApplicationState.RETURNED else [],
        "contracts": [_contract_context(c, user, rate_form=rate_form, sub_appid_form=sub_appid_form,
                                        limit_error=limit_error[1] if limit_error and limit_error[0] == c.pk else "")
                      for c in contracts],
        **apps,
        "settlement_changes": list(merchant.settlement_changes.select_related("contract__channel_account",
                                                                              "new_account")[:20]),
        **_settlement_context(merchant),
        "upload_form": DocumentUploadForm() if can_docs else None,
        "can_edit": clerk and user.has_perm("merchants.change_merchant") and (
            state in onboarding.EDITABLE_STATES or correcting),
        "correcting": correcting,
        "can_submit": clerk and user.has_perm("merchants.change_merchant") and state == ApplicationState.DRAFT,
        "can_review": user.has_perm("aggpay.access_risk") and user.has_perm("merchants.review_application")
        and state in workbench.OPEN_REVIEW_STATES,
        "can_freeze": may_freeze and can_proceed(merchant.freeze),
        "can_unfreeze": may_unfreeze and can_proceed(merchant.unfreeze),
        "last_freeze": _last_freeze(merchant) if risk_decides and merchant.state == MerchantState.FROZEN else None,
        **extra,
    }


def _settlement_context(merchant: Merchant) -> dict:
    """Which account each channel pays to. After a change one channel refused, the channels that accepted pay to
    the new account and the refusing one to the record's: staff must not read one account as every channel's."""
    if not merchant.settlement_changes.exists():
        return {"settlement_channels": [], "settlement_attention": False}
    rows = settlement_services.settlement_by_channel(merchant)
    return {"settlement_channels": rows,
            "settlement_attention": any(row.refused or not row.on_record for row in rows)}


# --- freeze / unfreeze (risk) ------------------------------------------------------------------------------------
# Freezing is risk's decision (design §8): the merchant's own permissions, which risk officers hold
# (aggpay/roles.py); the services check them again.


def _last_freeze(merchant: Merchant) -> AuditLog | None:
    return AuditLog.objects.filter(action="merchants.merchant.freeze", target_type=Merchant._meta.label_lower,
                                   target_id=str(merchant.pk)).select_related("actor").first()


def _merchant_state_change(request, merchant_no: str, *, service, verb: str, done: str):
    """Call ``service`` with the typed reason; on a domain error show the page again with the error, unchanged."""
    merchant = _merchant(merchant_no)
    try:
        merchant = service(merchant_id=merchant.pk, actor=request.user, reason=request.POST.get("reason", "").strip())
    except ApplicationError as exc:
        _error(request, exc, f"Not {verb}: ")
        context = _detail_context(request, _merchant(merchant_no),
                                  reason_error=exc.message if exc.param == "reason" else "")
        return render(request, "merchants/merchant_detail.html", context, status=exc.status)
    messages.success(request, f"{merchant.short_name} ({merchant.merchant_no}) {verb}: {done}")
    return redirect("merchants:detail", merchant.merchant_no)


@require_POST
@staff_view(merchant_services.FREEZE_PERM, sections=("risk",))
def merchant_freeze(request, merchant_no: str):
    return _merchant_state_change(request, merchant_no, service=merchant_services.merchant_freeze, verb="frozen",
                                  done="its payments are refused from now on; refunds still work.")


@require_POST
@staff_view(merchant_services.UNFREEZE_PERM, sections=("risk",))
def merchant_unfreeze(request, merchant_no: str):
    return _merchant_state_change(request, merchant_no, service=merchant_services.merchant_unfreeze,
                                  verb="unfrozen", done="it may take payments again.")


@require_safe
@staff_view("merchants.view_document", sections=("onboarding", "risk"))
def document_file(request, merchant_no: str, document_id: int):
    document = get_object_or_404(Document, pk=document_id, merchant__merchant_no=merchant_no)
    try:
        handle = document.file.open("rb")
    except FileNotFoundError:
        raise Http404("the stored file is missing")
    response = FileResponse(handle, content_type=document.content_type)
    # Identity documents: never cached by a shared proxy or the browser's disk cache, never sniffed as HTML.
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{document.doc_type}-{document.pk}"'
    return response


@require_POST
@staff_view("merchants.change_merchant")
def document_upload(request, merchant_no: str):
    merchant = _merchant(merchant_no)
    form = DocumentUploadForm(request.POST, request.FILES)
    # Back at the documents, unless there is something to read: the messages stand at the top of the page, and the
    # anchor scrolled the clerk some 1,700 px past a refusal or a warning (seen in the browser test).
    anchor = ""
    if not form.is_valid():
        messages.error(request, "Choose a document type and a file.")
    else:
        try:
            document = onboarding.document_add(merchant_id=merchant.pk, actor=request.user,
                                               doc_type=form.cleaned_data["doc_type"],
                                               uploaded_file=form.cleaned_data["file"])
        except ApplicationError as exc:
            _error(request, exc, "Not uploaded: ")
        else:
            uploaded = f"{DOC_LABELS[document.doc_type]} uploaded."
            # Kept for one channel that rejected a contract, although another cannot take it (document_add):
            # said now, beside "uploaded", not first by that contract's resubmit button.
            warning = onboarding.resubmission_warning(document)
            if warning:
                messages.warning(request, f"{uploaded} But {warning}")
            else:
                messages.success(request, uploaded)
                anchor = "#documents"
    return redirect(reverse("merchants:detail", args=[merchant.merchant_no]) + anchor)


@require_POST
@staff_view("merchants.change_merchant")
def application_submit(request, merchant_no: str):
    merchant = _merchant(merchant_no)
    application = _application(merchant)
    if application is None:
        raise Http404("no application")
    try:
        onboarding.application_submit(application_id=application.pk, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc, "Not submitted: ")
    else:
        messages.success(request, f"{merchant.merchant_no} submitted for risk review.")
    return redirect("merchants:detail", merchant.merchant_no)


# --- contracts --------------------------------------------------------------------------------------------------
def _contract(merchant_no: str, contract_id: int) -> Contract:
    return get_object_or_404(Contract.objects.select_related("channel_account", "merchant"), pk=contract_id,
                             merchant__merchant_no=merchant_no)


def _contract_response(request, contract: Contract):
    """htmx swaps just the contract's card (with the outcome message in it); a plain POST goes back to the page."""
    if request.htmx:
        contract.refresh_from_db()
        return render(request, "merchants/_contract_card.html", {
            "c": _contract_context(contract, request.user), "merchant": contract.merchant,
            "card_messages": list(messages.get_messages(request))})
    return redirect(reverse("merchants:detail", args=[contract.merchant.merchant_no]) + f"#contract-{contract.pk}")


@require_POST
@staff_view("merchants.change_contract")
def contract_resubmit(request, merchant_no: str, contract_id: int):
    contract = _contract(merchant_no, contract_id)
    try:
        contract = contract_services.contract_resubmit(contract_id=contract.pk, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc, "Not resubmitted: ")
    else:
        messages.success(request, f"Resubmitted to {contract.channel_account.name}: now "
                         f"{contract.get_state_display().lower()}.")
    return _contract_response(request, contract)


@require_POST
@staff_view("merchants.change_contract")
def contract_refresh(request, merchant_no: str, contract_id: int):
    """Ask the channel now (``contract_poll``) instead of waiting for the next scheduled poll."""
    contract = _contract(merchant_no, contract_id)
    before = contract.state
    if before not in workbench.CONTRACT_FOLLOWED_STATES:
        messages.info(request, f"The contract is {contract.get_state_display().lower()}; the channel is not "
                      "deciding anything on it.")
        return _contract_response(request, contract)
    contract = contract_services.contract_refresh_by_staff(contract_id=contract.pk, actor=request.user)
    if contract.state != before:
        messages.success(request, f"{contract.channel_account.name}: {before} → {contract.state}.")
    else:
        last = contract.events.order_by("-created_at", "-id").first()
        note = f" ({last.message})" if last is not None and last.message else ""
        messages.info(request, f"{contract.channel_account.name}: still {contract.get_state_display().lower()}"
                      f"{note}.")
    return _contract_response(request, contract)


@require_POST
@staff_view("merchants.change_contract")
def contract_transition(request, merchant_no: str, contract_id: int, action: str):
    services = {"suspend": settlement_services.contract_suspend, "resume": settlement_services.contract_resume,
                "terminate": settlement_services.contract_terminate}
    if action not in services:
        raise Http404("no such action")
    contract = _contract(merchant_no, contract_id)
    try:
        contract = services[action](contract_id=contract.pk, actor=request.user,
                                    reason=request.POST.get("reason", "").strip())
    except ApplicationError as exc:
        _error(request, exc, f"Not {action}ed: " if not action.endswith("e") else f"Not {action}d: ")
    else:
        messages.success(request, f"Contract with {contract.channel_account.name} is now "
                         f"{contract.get_state_display().lower()}.")
    return _contract_response(request, contract)


@require_POST
@staff_view(contract_services.SUB_APPID_PERM)
def contract_sub_appid(request, merchant_no: str, contract_id: int):
    """Set or change the merchant's WeChat appid on a contract (``contract_set_sub_appid``: audited, with the reason).
    Refused, the page again with the error beside the field it names; nothing is written."""
    contract = _contract(merchant_no, contract_id)
    form = ContractSubAppidForm(request.POST, contract_id=contract.pk)
    if form.is_valid():
        before = contract.sub_appid
        try:
            contract = contract_services.contract_set_sub_appid(contract_id=contract.pk, actor=request.user,
                                                                **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            if contract.sub_appid == before:
                messages.info(request, f"{contract.channel_account.name}: the WeChat appid is already "
                              f"{contract.sub_appid}.")
            else:
                messages.success(request, f"{contract.channel_account.name}: WeChat appid "
                                 f"{before + ' → ' if before else 'set to '}{contract.sub_appid}. New orders name it.")
            return redirect(reverse("merchants:detail", args=[merchant_no]) + f"#contract-{contract.pk}")
    return render(request, "merchants/merchant_detail.html",
                  _detail_context(request, contract.merchant, sub_appid_form=form), status=400)


# --- a contract's risk limit (design §4 ``active ⇄ limited``, §8) ---------------------------------------------------
# Risk limits a contract on a channel's risk action and lifts the limit when the channel does — usually from the
# channel's notice (risk.views). Here, on the merchant's page, whatever limit is in force is lifted (no ``record_id``):
# for the limit no notice will end. The services check the permission again and audit.


def _contract_limit_change(request, merchant_no: str, contract_id: int, *, service, verb: str, done: str,
                           done_suspended: str):
    """Call ``service`` with the typed reason; refused, the page again with the error at the card's form, unchanged.
    ``done_suspended``: the message when the contract was suspended, and stays so (contract_risk)."""
    contract = _contract(merchant_no, contract_id)
    try:
        contract = service(contract_id=contract.pk, actor=request.user, reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc, f"Not {verb}: ")
        context = _detail_context(request, contract.merchant, limit_error=(
            contract.pk, exc.message if exc.param == "reason" else ""))
        return render(request, "merchants/merchant_detail.html", context, status=exc.status)
    message = done_suspended if contract.state == ContractState.SUSPENDED else done
    messages.success(request, message.format(account=contract.channel_account.name))
    return redirect(reverse("merchants:detail", args=[merchant_no]) + f"#contract-{contract.pk}")


@require_POST
@staff_view("merchants.view_merchant", contract_risk.LIMIT_PERM, sections=("risk",))
def contract_limit(request, merchant_no: str, contract_id: int):
    return _contract_limit_change(request, merchant_no, contract_id, service=contract_risk.contract_limit,
                                  verb="limited", done="Contract with {account} limited: it takes no new orders "
                                  "until risk lifts the limit.",
                                  done_suspended="Limit recorded on the suspended contract with {account}: it stays "
                                  "suspended, and resumed it comes back limited, taking no new orders until risk "
                                  "lifts the limit.")


@require_POST
@staff_view("merchants.view_merchant", contract_risk.LIMIT_PERM, sections=("risk",))
def contract_lift_limit(request, merchant_no: str, contract_id: int):
    return _contract_limit_change(request, merchant_no, contract_id, service=contract_risk.contract_lift_limit,
                                  verb="lifted", done="The limit of the contract with {account} is lifted: "
                                  "routing may choose it again.",
                                  done_suspended="The limit of the suspended contract with {account} is lifted: "
                                  "it stays suspended, and resumed it comes back active.")


@require_safe
@staff_view("merchants.view_contract", sections=("onboarding", "risk"))
def contract_sign_qr(request, merchant_no: str, contract_id: int):
    """The sign URL as an SVG file, to print or send to the merchant."""
    contract = _contract(merchant_no, contract_id)
    if not contract.sign_url:
        raise Http404("the channel gave no sign URL")
    svg = segno.make(contract.sign_url, error="m")
    response = HttpResponse(content_type="image/svg+xml")
    svg.save(response, kind="svg", scale=8, border=4)
    response["Content-Disposition"] = f'inline; filename="sign-{merchant_no}-{contract.channel_account.code}.svg"'
    return response


# --- merchant rates (issue 4 "Contract": the rate per product, ≥ the account's cost unless operations overrides) ---
LOOKUP_LIMIT = 20


@require_safe
@staff_view(sections=RATE_SECTIONS, any_of=RATE_PERMS)
def rates_lookup(request):
    """Operations' way to a merchant's rates: by merchant number or name (no record, no PII)."""
    q = request.GET.get("q", "").strip()
    found = []
    if q:
        found = list(Merchant.objects.filter(Q(merchant_no__iexact=q) | Q(short_name__icontains=q)
                                             | Q(legal_name__icontains=q))
                     .annotate(contract_count=Count("contracts")).order_by("merchant_no")[:LOOKUP_LIMIT])
    return render(request, "merchants/rates_lookup.html", {"q": q, "found": found, "limit": LOOKUP_LIMIT})


def _rates_page(request, merchant: Merchant, *, rate_form: ContractRateForm | None = None, status: int = 200):
    user = request.user
    contracts = merchant.contracts.select_related("channel_account").order_by("channel_account__code")
    return render(request, "merchants/merchant_rates.html", {
        "merchant": merchant, "may_open_merchant": _may_open_merchant_page(user),
        "contracts": [{"contract": c, "rates": _rate_rows(c, user, bound=rate_form), "rate_page": "rates"}
                      for c in contracts]}, status=status)


@require_safe
@staff_view(sections=RATE_SECTIONS, any_of=RATE_PERMS)
def merchant_rates(request, merchant_no: str):
    """A merchant's contract rates beside each account's cost, with their history and the "Change rate" forms —
    the one merchant page operations opens (see RATE_PERMS)."""
    return _rates_page(request, _merchant(merchant_no))


@require_POST
@staff_view(sections=RATE_SECTIONS, any_of=RATE_PERMS)
def contract_rate(request, merchant_no: str, contract_id: int):
    """Change one product's rate (``contract_set_rate``). A refused change shows the page it came from again with
    the error beside the field it names; nothing is written."""
    contract = _contract(merchant_no, contract_id)
    product = request.POST.get("product", "")
    rate = contract.rates.filter(product=product).first()
    offer = ChannelProduct.objects.filter(account=contract.channel_account_id, product=product).first()
    if rate is None or offer is None:
        raise Http404("the contract has no rate for that product on this account")
    form = ContractRateForm(request.POST, contract_id=contract.pk, product=product, cost_rate=offer.cost_rate,
                            may_override=request.user.has_perm(contract_services.OVERRIDE_RATE_PERM))
    if form.is_valid():
        try:
            changed = contract_services.contract_set_rate(contract_id=contract.pk, actor=request.user,
                                                          **form.service_kwargs())
        except ApplicationError as exc:
            # The service names its fields as its parameters; the form calls the reason "reason".
            field = {"below_cost_reason": "reason"}.get(exc.param or "", exc.param or "")
            form.add_error(field if field in form.fields else None, field_message(exc.message, exc.param or ""))
        else:
            below = f" — below the cost {percent_text(offer.cost_rate)}: {changed.below_cost_reason}" \
                if changed.below_cost_reason else ""
            messages.success(request, f"{contract.channel_account.name} {product}: {percent_text(rate.rate)} → "
                             f"{percent_text(changed.rate)}{below}. New orders are priced at it.")
            return _after_rate_change(request, contract)
    merchant = contract.merchant
    if request.POST.get("page") == "merchant" and _may_open_merchant_page(request.user):
        return render(request, "merchants/merchant_detail.html",
                      _detail_context(request, merchant, rate_form=form), status=400)
    return _rates_page(request, merchant, rate_form=form, status=400)


def _after_rate_change(request, contract: Contract):
    args = [contract.merchant.merchant_no]
    if request.POST.get("page") == "merchant" and _may_open_merchant_page(request.user):
        return redirect(reverse("merchants:detail", args=args) + f"#contract-{contract.pk}")
    return redirect(reverse("merchants:rates", args=args) + f"#contract-{contract.pk}")


# --- API apps (merchant-api.md "Authentication and signing") ----------------------------------------------------
# Clerks issue and change apps (they hold merchants.add_/change_merchantapp through "merchants.*": they onboard the
# merchant and hand it its credentials); risk officers see them (merchants.view_*). Making a merchant a partner is
# the risk officer's (app_services.PARTNER_PERM, aggpay.roles). The services check the permissions again.


def _apps_context(user, merchant: Merchant) -> dict:
    clerk = user.has_perm("aggpay.access_onboarding")
    may_change = clerk and user.has_perm(app_services.CHANGE_PERM)
    apps = list(merchant.apps.order_by("created_at", "id"))
    rsa_apps = [app for app in apps if app.sign_type == SignType.RSA]
    rows = [{"app": app, "can_reveal": may_change and app.sign_type == SignType.HMAC
             and app.secret_revealed_at is None and bool(app.secret)} for app in apps]
    return {
        "apps": rows,
        "can_view_apps": user.has_perm("merchants.view_merchantapp"),
        "can_issue_app": clerk and user.has_perm(app_services.ISSUE_PERM) and merchant.state != MerchantState.CLOSED,
        "can_change_app": may_change,
        "can_partner": user.has_perm(app_services.PARTNER_PERM),
        # Shown once for all of the merchant's RSA apps: aggpay signs its answers to them with it.
        "platform_public_key": platform_key().public_key_pem if rsa_apps else "",
        "platform_key_url": reverse("merchants:app_platform_key", args=[merchant.merchant_no, rsa_apps[0].app_id])
        if rsa_apps else "",
    }


def _merchant_app(merchant_no: str, app_id: str) -> MerchantApp:
    return get_object_or_404(MerchantApp.objects.select_related("merchant"), app_id=app_id,
                             merchant__merchant_no=merchant_no)


def _app_url(app: MerchantApp) -> str:
    return reverse("merchants:app_detail", args=[app.merchant.merchant_no, app.app_id])


def _secret_page(request, app: MerchantApp, secret: str, *, intro: str):
    if intro:
        messages.success(request, intro)
    response = render(request, "merchants/app_secret.html", {"merchant": app.merchant, "app": app, "secret": secret})
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
@staff_view("merchants.change_merchantapp")
def app_reveal(request, merchant_no: str, app_id: str):
    """Show the payments app's HMAC secret exactly once (``app_secret_reveal``); the page is not cached."""
    app = _merchant_app(merchant_no, app_id)
    try:
        secret = app_secret_reveal(app_id=app.app_id, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc)
        return redirect(reverse("merchants:detail", args=[merchant_no]) + "#apps")
    return _secret_page(request, app, secret, intro="")


@require_http_methods(["GET", "HEAD", "POST"])
@staff_view("merchants.add_merchantapp")
def app_issue(request, merchant_no: str):
    """Issue an app: HMAC → its secret is shown on the answer, once; RSA → the app's page with the platform key."""
    merchant = _merchant(merchant_no)
    form = AppIssueForm(request.POST or None, partner=merchant.is_partner)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            app, secret = app_services.merchant_app_issue(
                merchant_id=merchant.pk, actor=request.user, name=data["name"], scopes=data["scopes"],
                sign_type=data["sign_type"], notify_url=data["notify_url"], public_key_pem=data["public_key_pem"])
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            if secret is not None:
                return _secret_page(request, app, secret, intro="App issued.")
            messages.success(request, f"App {app.app_id} issued with the merchant's RSA key. Give the merchant the "
                             "app id and the platform public key below.")
            return redirect(_app_url(app))
    status = 400 if form.is_bound else 200
    return render(request, "merchants/app_issue.html", {"merchant": merchant, "form": form}, status=status)


def _app_detail_context(request, app: MerchantApp, **forms) -> dict:
    user = request.user
    may_change = user.has_perm("aggpay.access_onboarding") and user.has_perm(app_services.CHANGE_PERM)
    rsa_app = app.sign_type == SignType.RSA
    return {
        "merchant": app.merchant, "app": app, "can_change_app": may_change,
        "rsa_app": rsa_app,
        "public_key_sha256": app_services.public_key_fingerprint(app.public_key_pem)
        if rsa_app and app.public_key_pem else "",
        "platform_public_key": platform_key().public_key_pem if rsa_app else "",
        "platform_key_url": reverse("merchants:app_platform_key", args=[app.merchant.merchant_no, app.app_id])
        if rsa_app else "",
        "notify_form": forms.get("notify_form") or AppNotifyUrlForm(initial={"notify_url": app.notify_url}),
        "key_form": forms.get("key_form") or AppPublicKeyForm(),
        "history": AuditLog.objects.filter(target_type=MerchantApp._meta.label_lower, target_id=str(app.pk))
        .select_related("actor")[:20],
    }


@require_safe
@staff_view("merchants.view_merchantapp", sections=("onboarding", "risk"))
def app_detail(request, merchant_no: str, app_id: str):
    app = _merchant_app(merchant_no, app_id)
    return render(request, "merchants/app_detail.html", _app_detail_context(request, app))


def _app_change(request, app: MerchantApp, call, *, form=None, form_name: str = "", done: str):
    """Run ``call()``; on a domain error show the app's page again with it (on ``form``'s field when it names one),
    the app unchanged."""
    try:
        call()
    except ApplicationError as exc:
        if form is not None:
            add_service_error(form, exc)
        else:
            _error(request, exc, "Not changed: ")
        app.refresh_from_db()
        return render(request, "merchants/app_detail.html",
                      _app_detail_context(request, app, **({form_name: form} if form is not None else {})),
                      status=exc.status)
    messages.success(request, done)
    return redirect(_app_url(app))


@require_POST
@staff_view("merchants.change_merchantapp")
def app_notify_url(request, merchant_no: str, app_id: str):
    app = _merchant_app(merchant_no, app_id)
    form = AppNotifyUrlForm(request.POST)
    if not form.is_valid():
        return render(request, "merchants/app_detail.html",
                      _app_detail_context(request, app, notify_form=form), status=400)
    url = form.cleaned_data["notify_url"]
    return _app_change(
        request, app, lambda: app_services.merchant_app_notify_url_set(app_id=app.app_id, actor=request.user,
                                                                       notify_url=url),
        form=form, form_name="notify_form",
        done=f"Notify URL of {app.app_id} set to {url.strip()}." if url.strip()
        else f"Notify URL of {app.app_id} cleared.")


@require_POST
@staff_view("merchants.change_merchantapp")
def app_rotate(request, merchant_no: str, app_id: str):
    """A new HMAC secret, shown on this answer once; the old one is refused from the next API call on."""
    app = _merchant_app(merchant_no, app_id)
    reason = AppReasonForm(request.POST)
    reason.is_valid()
    try:
        app, secret = app_services.merchant_app_secret_rotate(app_id=app.app_id, actor=request.user,
                                                              reason=reason.cleaned_data.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc, "Not rotated: ")
        return redirect(_app_url(app))
    return _secret_page(request, app, secret,
                        intro="Secret rotated: the old secret is refused from the merchant's next API call on.")


@require_POST
@staff_view("merchants.change_merchantapp")
def app_public_key(request, merchant_no: str, app_id: str):
    app = _merchant_app(merchant_no, app_id)
    form = AppPublicKeyForm(request.POST)
    if not form.is_valid():
        return render(request, "merchants/app_detail.html", _app_detail_context(request, app, key_form=form),
                      status=400)
    return _app_change(
        request, app, lambda: app_services.merchant_app_public_key_replace(
            app_id=app.app_id, actor=request.user, public_key_pem=form.cleaned_data["public_key_pem"],
            reason=form.cleaned_data["reason"]),
        form=form, form_name="key_form",
        done=f"New public key registered on {app.app_id}: requests signed with the old private key are refused "
             "from now on.")


@require_POST
@staff_view("merchants.change_merchantapp")
def app_active(request, merchant_no: str, app_id: str, action: str):
    services = {"deactivate": (app_services.merchant_app_deactivate,
                               "deactivated: its API calls are refused (401) and it gets no notifications"),
                "reactivate": (app_services.merchant_app_reactivate, "reactivated: it may call the API again")}
    if action not in services:
        raise Http404("no such action")
    service, done = services[action]
    app = _merchant_app(merchant_no, app_id)
    reason = AppReasonForm(request.POST)
    reason.is_valid()
    return _app_change(request, app, lambda: service(app_id=app.app_id, actor=request.user,
                                                     reason=reason.cleaned_data.get("reason", "")),
                       done=f"App {app.app_id} {done}.")


@require_safe
@staff_view("merchants.view_merchantapp", sections=("onboarding", "risk"))
def app_platform_key(request, merchant_no: str, app_id: str):
    """aggpay's platform public key as a .pem file, for the merchant to verify aggpay's answers (RSA apps)."""
    app = _merchant_app(merchant_no, app_id)
    if app.sign_type != SignType.RSA:
        raise Http404("HMAC apps verify aggpay's answers with their secret")
    key = platform_key()
    response = HttpResponse(key.public_key_pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="aggpay_platform_public_{key.key_id}.pem"'
    return response


@require_POST
@staff_view(app_services.PARTNER_PERM, sections=("onboarding", "risk"))
def merchant_partner(request, merchant_no: str):
    merchant = _merchant(merchant_no)
    form = PartnerForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not changed: " + " ".join(e for errors in form.errors.values() for e in errors))
    else:
        wanted = form.cleaned_data["is_partner"]
        try:
            app_services.merchant_partner_set(merchant_id=merchant.pk, actor=request.user, is_partner=wanted,
                                              reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            _error(request, exc, "Not changed: ")
        else:
            messages.success(request, f"{merchant.merchant_no} is now a partner: its apps may be given the partner "
                             "onboarding scope." if wanted else f"{merchant.merchant_no} is no longer a partner: "
                             "its apps' onboarding calls are refused from now on.")
    return redirect(reverse("merchants:detail", args=[merchant.merchant_no]) + "#apps")


# --- risk review (/staff/risk/) -----------------------------------------------------------------------------------
DECIDED_STATES = (ApplicationState.APPROVED, ApplicationState.CONTRACTING, ApplicationState.COMPLETED)


@require_safe
@staff_view("merchants.view_merchant", sections=("risk",))
def review_queue(request):
    form = ReviewQueueForm(request.GET or None)
    base = workbench.applications_base()
    if subject := form.value("subject_type"):
        base = base.filter(merchant__subject_type=subject)
    if product := form.value("product"):
        base = workbench.filter_applications(base, product=product)
    base = workbench.search(base, form.value("q"))
    if form.value("mine"):
        base = base.filter(reviewer=request.user)
    counts = workbench.counts_by_state(base)
    state = form.value("state")
    if state == ApplicationState.APPROVED:
        applications = base.filter(state__in=DECIDED_STATES).order_by("-decided_at", "-id")
    elif state in (ApplicationState.RETURNED, ApplicationState.REJECTED):
        applications = base.filter(state=state).order_by("-decided_at", "-id")
    elif state:
        applications = base.filter(state=state).order_by("submitted_at", "id")
    else:
        # Oldest submission first (issue 4): the SLA clock runs from submission.
        applications = base.filter(state__in=workbench.OPEN_REVIEW_STATES).order_by("submitted_at", "id")
    # "Over the review SLA" (the home tile, the header's overdue count): only the open reviews past the SLA.
    overdue_only = request.GET.get("overdue") == "1"
    if overdue_only:
        applications = workbench.overdue_reviews(applications)
    page = _page(request, applications)
    frozen = Merchant.objects.filter(state=MerchantState.FROZEN).order_by("-updated_at", "-id")[:50]
    tabs = [("", "Open", counts.get(ApplicationState.SUBMITTED, 0) + counts.get(ApplicationState.RISK_REVIEW, 0))]
    tabs += [(value, label, sum(counts.get(s, 0) for s in DECIDED_STATES) if value == ApplicationState.APPROVED
              else counts.get(value, 0)) for value, label in ReviewQueueForm.STATES]
    return render(request, "staff/risk.html", {
        "form": form, "state": state, "tabs": tabs, "page": page, "rows": workbench.review_rows(page.object_list),
        "query": query_without(request, "page"), "tab_query": query_without(request, "page", "state", "overdue"), "frozen": frozen,
        "overdue": workbench.overdue_reviews(base).count(), "overdue_only": overdue_only,
        "overdue_query": query_without(request, "page", "state", "overdue"),
        "sla_hours": int(workbench.REVIEW_SLA.total_seconds() // 3600),
        "can_review": request.user.has_perm("merchants.review_application"),
    })


def _review_application(application_id: int) -> OnboardingApplication:
    return get_object_or_404(workbench.applications_base(), pk=application_id)


@require_safe
@staff_view("merchants.review_application", sections=("risk",))
def review_detail(request, application_id: int):
    application = _review_application(application_id)
    return render(request, "merchants/review_detail.html", _review_context(request, application))


def _review_context(request, application, **forms) -> dict:
    merchant = application.merchant
    history = merchant.applications.exclude(pk=application.pk).order_by("-created_at")
    return {
        "application": application, "merchant": merchant,
        "sections": workbench.record_sections(merchant),
        "scenarios": merchant.scenarios or [], "stores": list(merchant.stores.all()),
        "documents": _documents(merchant),
        "missing": [DOC_LABELS.get(d, d) for d in onboarding.missing_documents(merchant)],
        "timeline": workbench.application_timeline(application),
        "previous_returns": _returned_reasons(application),
        "history": history,
        "waiting": workbench.review_rows([application])[0] if application.submitted_at else None,
        "approve_form": forms.get("approve_form") or ApproveForm(),
        "return_formset": forms.get("return_formset") or ReturnReasonFormSet(prefix="reasons"),
        "reject_form": forms.get("reject_form") or RejectForm(),
        "can_take": application.state == ApplicationState.SUBMITTED,
        "can_decide": application.state == ApplicationState.RISK_REVIEW,
        "requested_online": any(s.get("type") != "store" for s in merchant.scenarios or []),
    }


@require_POST
@staff_view("merchants.review_application", sections=("risk",))
def review_take(request, application_id: int):
    application = _review_application(application_id)
    try:
        onboarding.application_review_start(application_id=application.pk, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc, "Not taken: ")
        return _back(request, reverse("staff:risk"))
    messages.success(request, f"You took {application.merchant.merchant_no} for review.")
    return redirect("merchants:review", application.pk)


@require_POST
@staff_view("merchants.review_application", sections=("risk",))
def review_decide(request, application_id: int, decision: str):
    application = _review_application(application_id)
    merchant_no = application.merchant.merchant_no
    try:
        if decision == "approve":
            form = ApproveForm(request.POST)
            if not form.is_valid():
                return _invalid_decision(request, application, approve_form=form)
            application = onboarding.application_approve(application_id=application.pk, actor=request.user,
                                                         notes=form.cleaned_data["notes"])
            count = application.contracts.count()
            messages.success(request, f"{merchant_no} approved: {count} contract{'s' if count != 1 else ''} sent to "
                             "the channels.")
        elif decision == "return":
            formset = ReturnReasonFormSet(request.POST, prefix="reasons")
            problems = _return_row_problems(formset)
            if problems or not return_reasons(formset):
                # The rows at fault by number and field; "at least one reason" only when no row gives one.
                none = "" if return_reasons(formset) else "give at least one reason (the field and what to correct)"
                messages.error(request, f"Not returned: {': '.join(filter(None, [none, '; '.join(problems)]))}.")
                return _invalid_decision(request, application, return_formset=formset)
            onboarding.application_return(application_id=application.pk, actor=request.user,
                                          reasons=return_reasons(formset))
            messages.success(request, f"{merchant_no} returned to the clerk for correction.")
        elif decision == "reject":
            form = RejectForm(request.POST)
            if not form.is_valid():
                return _invalid_decision(request, application, reject_form=form)
            onboarding.application_reject(application_id=application.pk, actor=request.user,
                                          reason=form.cleaned_data["reason"])
            messages.success(request, f"{merchant_no} rejected.")
        else:
            raise Http404("no such decision")
    except ApplicationError as exc:
        _error(request, exc, f"Not {decision}d: " if decision != "return" else "Not returned: ")
        return redirect("merchants:review", application.pk)
    return redirect("staff:risk")


def _return_row_problems(formset) -> list[str]:
    """What is wrong with each row of the return form, naming the row and its field (design §5: bad input gets an
    error naming the field): a field picked with nothing to correct written beside it would otherwise be dropped
    without a word — the clerk would never hear of it. The row's own error goes on its text box."""
    labels = dict(return_field_choices())
    formset.is_valid()
    problems = [str(error).rstrip(".") for error in formset.non_form_errors()]  # e.g. more rows than it takes
    for number, form in enumerate(formset.forms, start=1):
        if not form.is_valid():
            problems.append(f"row {number}: {' '.join(e for errors in form.errors.values() for e in errors)}")
            continue
        field = form.cleaned_data.get("field", "")
        if field and not form.cleaned_data.get("reason", "").strip():
            label = labels.get(field, field)
            form.add_error("reason", f"Say what to correct in {label}, or set the row back to General.")
            problems.append(f"row {number} ({label}) names a field but not what to correct in it")
    return problems


def _invalid_decision(request, application, **forms):
    return render(request, "merchants/review_detail.html", _review_context(request, application, **forms),
                  status=400)

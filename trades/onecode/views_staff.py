"""Staff pages for store codes (码牌): generate per store, download PNG/SVG, print a batch sheet, retire a code.

Who may: onboarding clerks and operations (issue 5 "ops or clerks generate codes") — by their section permission,
or anyone granted ``trades.generate_storecode`` explicitly. Every change is audited (services).
"""

from __future__ import annotations

from collections import defaultdict
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from aggpay.errors import ApplicationError, NotFound
from aggpay.querystring import query_without
from aggpay.roles import forbidden
from merchants.models import Merchant
from trades.models.store_codes import StoreCode
from trades.onecode import qr, services

PERMISSIONS = ("trades.generate_storecode", "aggpay.access_onboarding", "aggpay.access_operations")
CODES_PAGE_SIZE = 50
BATCHES_PAGE_SIZE = 20
MERCHANTS_PAGE_SIZE = 50


def may_manage_codes(user) -> bool:
    # is_staff as in aggpay.roles._check: an account whose staff status was taken away keeps its roles and its
    # session, but not the back office.
    return user.is_authenticated and user.is_staff and any(user.has_perm(perm) for perm in PERMISSIONS)


def codes_permission(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not may_manage_codes(request.user):
            return forbidden(request, missing=" or ".join(PERMISSIONS))
        return view(request, *args, **kwargs)

    return wrapped


def code_url(code: StoreCode) -> str:
    """What the QR encodes: the public /c/<code> page on our public host."""
    return settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/") + reverse("onecode:scan", args=[code.code])


class CodeFilterForm(forms.Form):
    """The store-code workbench's filters (all optional); ``merchant`` only on the all-merchants list."""

    merchant = forms.CharField(required=False, max_length=64, label="Merchant")
    store = forms.CharField(required=False, max_length=64, label="Store")
    batch = forms.CharField(required=False, max_length=24, label="Batch")
    active = forms.ChoiceField(required=False, label="State",
                               choices=[("", "All"), ("1", "Active"), ("0", "Retired")])
    code = forms.CharField(required=False, max_length=24, label="Code")

    def filter(self, codes):
        if not self.is_valid():
            return codes.none()
        data = {key: value.strip() if isinstance(value, str) else value for key, value in self.cleaned_data.items()}
        if data["merchant"]:
            codes = codes.filter(Q(merchant__merchant_no__iexact=data["merchant"])
                                 | Q(merchant__short_name__icontains=data["merchant"]))
        if data["store"]:
            codes = codes.filter(Q(store__store_no__iexact=data["store"]) | Q(store__name__icontains=data["store"]))
        if data["batch"]:
            codes = codes.filter(batch=data["batch"])
        if data["code"]:
            codes = codes.filter(code=data["code"])
        return codes

    def filter_active(self, codes):
        if self.is_valid() and self.cleaned_data["active"]:
            codes = codes.filter(active=self.cleaned_data["active"] == "1")
        return codes


def _codes_list(request: HttpRequest, codes) -> dict:
    """The filtered codes, one page at a time, with how many match (and of them how many are active)."""
    form = CodeFilterForm(request.GET or None)
    matching = form.filter(codes) if request.GET else codes
    counts = matching.aggregate(total=Count("id"), active=Count("id", filter=Q(active=True)))
    counts["retired"] = counts["total"] - counts["active"]
    listed = form.filter_active(matching) if request.GET else matching
    listed = listed.select_related("merchant", "store").order_by("-created_at", "-id")
    page = Paginator(listed, CODES_PAGE_SIZE).get_page(request.GET.get("page"))
    return {"form": form, "page": page, "counts": counts, "query": query_without(request, "page"),
            "here": request.get_full_path()}


@require_GET
@codes_permission
def merchant_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    merchants = Merchant.objects.order_by("merchant_no").annotate(codes=Count("store_codes"))
    if query:
        merchants = merchants.filter(Q(merchant_no__icontains=query) | Q(short_name__icontains=query)
                                     | Q(legal_name__icontains=query))
    page = Paginator(merchants, MERCHANTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "trades/store_codes/index.html", {
        "page": page, "merchants": page.object_list, "q": query, "query": query_without(request, "page")})


@require_GET
@codes_permission
def code_list(request: HttpRequest) -> HttpResponse:
    """Every merchant's codes: find the code a payer or a shop reports, a batch, a store's codes."""
    return render(request, "trades/store_codes/codes.html", _codes_list(request, StoreCode.objects.all()))


def _batches(request: HttpRequest, merchant: Merchant):
    """The merchant's batches, newest first, each with when, which stores, by whom and how many codes."""
    batches = (StoreCode.objects.filter(merchant=merchant).values("batch")
               .annotate(created_at=Min("created_at"), codes=Count("id"), active=Count("id", filter=Q(active=True)))
               .order_by("-created_at", "-batch"))
    page = Paginator(batches, BATCHES_PAGE_SIZE).get_page(request.GET.get("batches_page"))
    page.object_list = list(page.object_list)
    # The stores and the people of this page's batches in one more query that any database answers: PostgreSQL's
    # ArrayAgg did it in the first, and the page was a 500 on the demo's SQLite.
    stores, creators = defaultdict(set), defaultdict(set)
    pairs = (StoreCode.objects.filter(merchant=merchant, batch__in=[b["batch"] for b in page.object_list])
             .values_list("batch", "store__store_no", "created_by__username").distinct())
    for batch, store_no, username in pairs:
        stores[batch].add(store_no)
        if username:
            creators[batch].add(username)
    names = dict(merchant.stores.values_list("store_no", "name"))
    for batch in page.object_list:
        batch["stores"] = [(no, names.get(no, "")) for no in sorted(stores[batch["batch"]])]
        batch["creators"] = sorted(creators[batch["batch"]])
    return page


@require_http_methods(["GET", "POST"])
@codes_permission
def merchant_codes(request: HttpRequest, merchant_id: int) -> HttpResponse:
    merchant = get_object_or_404(Merchant, pk=merchant_id)
    if request.method == "POST":
        try:
            per_store = int(request.POST.get("per_store") or "0")
        except ValueError:
            per_store = 0
        store_ids = [int(v) for v in request.POST.getlist("stores") if v.isdigit()]
        try:
            codes = services.storecodes_generate(merchant=merchant, store_ids=store_ids, per_store=per_store,
                                                 actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Generated {len(codes)} codes.")
            return redirect("onecode:staff-batch", batch=codes[0].batch)
    context = _codes_list(request, StoreCode.objects.filter(merchant=merchant))
    context.update({"merchant": merchant, "stores": merchant.stores.order_by("store_no"),
                    "batches": _batches(request, merchant), "batches_query": query_without(request, "batches_page"),
                    "max_per_store": services.MAX_CODES_PER_STORE})
    return render(request, "trades/store_codes/merchant.html", context)


@require_GET
@codes_permission
def code_png(request: HttpRequest, code_id: int) -> HttpResponse:
    code = get_object_or_404(StoreCode, pk=code_id)
    response = HttpResponse(qr.qr_png(code_url(code)), content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="storecode-{code.code}.png"'
    return response


@require_GET
@codes_permission
def code_svg(request: HttpRequest, code_id: int) -> HttpResponse:
    code = get_object_or_404(StoreCode, pk=code_id)
    response = HttpResponse(qr.qr_svg(code_url(code)), content_type="image/svg+xml")
    response["Content-Disposition"] = f'inline; filename="storecode-{code.code}.svg"'
    return response


@require_GET
@codes_permission
def batch_sheet(request: HttpRequest, batch: str) -> HttpResponse:
    """The batch's active codes to print. Retired ones are left off, and counted on the sheet: a retired code's
    sticker only tells the payer the code is not valid (views_payer.scan), so reprinting a batch must not put it
    back on a counter. There is no switch to print them: to use a retired code again, restore it (audited)."""
    codes = list(StoreCode.objects.filter(batch=batch).select_related("store", "merchant").order_by("store__store_no",
                                                                                                     "id"))
    if not codes:
        return render(request, "trades/store_codes/sheet.html", {"cards": [], "batch": batch}, status=404)
    cards = [{"code": c, "url": code_url(c), "svg": qr.qr_svg_inline(code_url(c))} for c in codes if c.active]
    merchant = codes[0].merchant
    retired_url = (reverse("onecode:staff-merchant", args=[merchant.pk])
                   + "?" + urlencode({"batch": batch, "active": "0"}))
    return render(request, "trades/store_codes/sheet.html", {"cards": cards, "batch": batch, "merchant": merchant,
                                                             "retired": len(codes) - len(cards),
                                                             "retired_url": retired_url})


@require_POST
@codes_permission
def code_active(request: HttpRequest, code_id: int) -> HttpResponse:
    active = request.POST.get("active") == "1"
    try:
        code = services.storecode_set_active(code_id=code_id, active=active, actor=request.user,
                                             reason=request.POST.get("reason", "")[:256])
    except NotFound:
        raise Http404("no such store code") from None
    except ApplicationError as exc:  # no reason to retire it: nothing changed
        code = get_object_or_404(StoreCode, pk=code_id)
        messages.error(request, f"Code {code.code} was not retired: {exc.message}.")
    else:
        messages.success(request, f"Code {code.code} is now {'active' if code.active else 'retired'}.")
    # Back to the list the clerk was working in (its filters and page), if that is one of our pages.
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                require_https=request.is_secure()):
        return redirect(back)
    return redirect("onecode:staff-merchant", merchant_id=code.merchant_id)

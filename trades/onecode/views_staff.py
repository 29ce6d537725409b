"""Staff pages for store codes (码牌): generate per store, download PNG/SVG, print a batch sheet, retire a code.

Who may: onboarding clerks and operations (issue 5 "ops or clerks generate codes") — by their section permission,
or anyone granted ``trades.generate_storecode`` explicitly. Every change is audited (services).
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from aggpay.errors import ApplicationError
from aggpay.roles import forbidden
from merchants.models import Merchant
from trades.models.store_codes import StoreCode
from trades.onecode import qr, services

PERMISSIONS = ("trades.generate_storecode", "aggpay.access_onboarding", "aggpay.access_operations")


def may_manage_codes(user) -> bool:
    return user.is_authenticated and any(user.has_perm(perm) for perm in PERMISSIONS)


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


@require_GET
@codes_permission
def merchant_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    merchants = Merchant.objects.order_by("merchant_no")
    if query:
        merchants = merchants.filter(Q(merchant_no__icontains=query) | Q(short_name__icontains=query)
                                     | Q(legal_name__icontains=query))
    return render(request, "trades/store_codes/index.html", {"merchants": merchants[:50], "q": query})


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
    codes = StoreCode.objects.filter(merchant=merchant).select_related("store")[:500]
    batches = (StoreCode.objects.filter(merchant=merchant).values_list("batch", flat=True)
               .order_by("batch").distinct())
    return render(request, "trades/store_codes/merchant.html", {
        "merchant": merchant, "stores": merchant.stores.all(), "codes": codes, "batches": list(batches),
        "max_per_store": services.MAX_CODES_PER_STORE})


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
    codes = list(StoreCode.objects.filter(batch=batch).select_related("store", "merchant").order_by("store__store_no",
                                                                                                     "id"))
    if not codes:
        return render(request, "trades/store_codes/sheet.html", {"cards": [], "batch": batch}, status=404)
    cards = [{"code": c, "url": code_url(c), "svg": qr.qr_svg_inline(code_url(c))} for c in codes]
    return render(request, "trades/store_codes/sheet.html", {"cards": cards, "batch": batch,
                                                             "merchant": codes[0].merchant})


@require_POST
@codes_permission
def code_active(request: HttpRequest, code_id: int) -> HttpResponse:
    active = request.POST.get("active") == "1"
    code = services.storecode_set_active(code_id=code_id, active=active, actor=request.user,
                                         reason=request.POST.get("reason", "")[:256])
    messages.success(request, f"Code {code.code} is now {'active' if code.active else 'retired'}.")
    return redirect("onecode:staff-merchant", merchant_id=code.merchant_id)

"""Staff shell pages: home, one landing page per section (design.md §8) and the audit log. The onboarding and risk
sections open on the workbench queues of ``merchants.views``, finance on the report of ``trades.views_finance``.

Every view is guarded by a section or model permission (design §5 rule 11); pages show only what exists
today and say so plainly where a later issue brings the data.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_safe

from aggpay.models import AuditLog
from aggpay.querystring import query_without
from aggpay.roles import (
    ROLES,
    permission_required_403,
    section_required,
    staff_required,
    staff_sections,
    user_roles,
)
from aggpay.staff.forms import AuditFilterForm
from aggpay.staff.queues import section_queues

PAGE_SIZE = 25
AUDIT_PAGE_SIZE = 50


def _page(request, queryset, size: int):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


@require_safe
@staff_required
def home(request):
    sections = [{**section, "queues": section_queues(section["slug"], request.user)}
                for section in staff_sections(request.user)]
    return render(request, "staff/home.html", {"sections": sections, "roles": user_roles(request.user)})


@require_safe
@section_required("support")
def support(request):
    # The support section opens on the trade workbench (issue 5 "Staff pages"): search and the queues' counts,
    # for those who may see trades.
    can_view_trades = request.user.has_perm("trades.view_order")
    queues = []
    if can_view_trades:
        from trades import workbench

        queues = workbench.home_queues()
    return render(request, "staff/support.html", {"can_view_trades": can_view_trades, "trade_queues": queues})


@require_safe
@section_required("operations")
def operations(request):
    return render(request, "staff/operations.html")


@require_safe
@section_required("admin")
def admin(request):
    users = get_user_model().objects.filter(is_staff=True).order_by("username").prefetch_related("groups")
    role_by_slug = {role.slug: role for role in ROLES}
    rows = [
        {"user": user, "roles": [role_by_slug[g.name] for g in user.groups.all() if g.name in role_by_slug],
         "other_groups": [g.name for g in user.groups.all() if g.name not in role_by_slug]}
        for user in users
    ]
    can_audit = request.user.has_perm("aggpay.view_audit")
    return render(request, "staff/admin.html", {
        "rows": rows,
        "roles": ROLES,
        "recent_audit": AuditLog.objects.select_related("actor")[:10] if can_audit else None,
        "can_manage_users": request.user.is_staff and request.user.has_perm("auth.change_user"),
    })


@require_safe
@permission_required_403("aggpay.access_admin", "aggpay.view_audit")
def audit(request):
    form = AuditFilterForm(request.GET or None)
    entries = form.apply(AuditLog.objects.select_related("actor"))
    return render(request, "staff/audit.html", {
        "form": form,
        "page": _page(request, entries, AUDIT_PAGE_SIZE),
        "query": query_without(request, "page"),
    })

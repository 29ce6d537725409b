"""Staff roles (design.md §8), kept in code: the ``ROLES`` table is the source of truth for the six groups.

A permission spec is ``"app_label.codename"``, ``"app_label.*"`` (every permission of the app) or any
``fnmatch`` pattern on the codename such as ``"app_label.view_*"``; a leading ``-`` removes what it matches.
Specs that match nothing yet are fine: later issues add models, and ``roles_sync`` runs after every
``migrate`` (post_migrate, wired in ``aggpay.apps``) so their permissions attach without touching this file.

The managed groups are read-only in the Django admin (``aggpay.admin_users``), and an edit made some other way
does not stick: the next migrate puts back what this table says. Change the table instead (it is reviewed in
git, which is the audit trail for role design).

Each role also gets one *section* permission (``aggpay.access_<section>``) that gates its workbench pages.
Those permissions hang off a model-less content type ``aggpay.staffsection`` because the aggpay models
module belongs to the platform skeleton; ``roles_sync`` creates them itself, so it works on an empty DB.
(``manage.py remove_stale_contenttypes`` lists that content type as stale: answer "no"; if it is removed
anyway, the next ``migrate`` recreates the permissions and re-attaches them.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import wraps

from django.apps import apps as global_apps
from django.contrib.auth.views import redirect_to_login
from django.db import DEFAULT_DB_ALIAS
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject

logger = logging.getLogger(__name__)

SECTION_APP_LABEL = "aggpay"
SECTION_MODEL = "staffsection"


@dataclass(frozen=True)
class Section:
    slug: str
    label: str
    label_zh: str
    url_name: str
    # Extra pages listed under the section in the sidebar: (label, url name or absolute path, required perm).
    links: tuple[tuple[str, str, str], ...] = ()

    @property
    def permission(self) -> str:
        return f"{SECTION_APP_LABEL}.access_{self.slug}"

    @property
    def codename(self) -> str:
        return f"access_{self.slug}"


@dataclass(frozen=True)
class Role:
    slug: str  # also the Group name: stable, so renaming a label never orphans memberships
    label: str
    label_zh: str
    description: str
    section: str
    permissions: tuple[str, ...] = field(default_factory=tuple)


SECTIONS: tuple[Section, ...] = (
    Section("onboarding", "Onboarding", "进件", "staff:onboarding",
            links=(("Batch import", "/staff/onboarding/batch/", "merchants.add_merchant"),
                   ("Store codes", "/staff/store-codes/", "trades.generate_storecode"))),
    Section("risk", "Risk", "风控", "staff:risk",
            links=(("Refused callbacks", "/staff/channels/security/callbacks/", "channels.view_channelcallback"),
                   ("Channel risk notices", "risk:notices", "risk.view_channelrisknotice"))),
    Section("support", "Support", "客服", "staff:support",
            links=(("Trades", "/staff/trades/", "trades.view_order"),)),
    # H4's channel pages are mounted at /staff/channels/ by aggpay/urls.py; linked by path, not by name.
    Section("operations", "Operations", "运营", "staff:operations",
            links=(("Channels", "/staff/channels/", "aggpay.access_operations"),
                   ("Trades", "/staff/trades/", "trades.view_order"),
                   ("Store codes", "/staff/store-codes/", "trades.generate_storecode"),
                   ("Merchant rates", "merchants:rates_lookup", "merchants.override_contract_rate"))),
    # Finance reads trades (its role holds trades.view_*) to check a statement's line or a fee against the trade.
    Section("finance", "Finance", "财务", "staff:finance",
            links=(("Trades", "/staff/trades/", "trades.view_order"),)),
    Section("admin", "Administration", "系统管理", "staff:admin",
            links=(("Audit log", "staff:audit", "aggpay.view_audit"),)),
)
SECTIONS_BY_SLUG = {section.slug: section for section in SECTIONS}

# Clerks prepare and submit; deciding on an application and freezing are risk's (design §8), so the
# decision verbs are carved out of "merchants.*" even once the onboarding issue adds them.
_DECISIONS = ("-merchants.review_*", "-merchants.approve_*", "-merchants.reject_*",
              "-merchants.freeze_*", "-merchants.unfreeze_*")
# Making a merchant a partner (its apps may onboard merchants, merchant-api.md "Partner onboarding") is not a
# clerk's either: it is risk's (below), with superusers (merchants/services/apps.py ``PARTNER_PERM``).
# Clerks submit and correct; designating and pricing below cost (an operator's override with a reason, issue 4
# "Contract") are others' decisions.
_NOT_CLERKS = ("-merchants.designate_*", "-merchants.override_*")

# A channel risk notice is the channel's word (risk.ChannelRiskNotice): its callback records it and only
# risk.services.channel_notices changes it, checking handle_channelrisknotice and auditing. The model's add, change
# and delete permissions serve nothing, so no role holds them (least privilege).
_NOTICES_NOT_EDITED = ("-risk.add_channelrisknotice", "-risk.change_channelrisknotice",
                       "-risk.delete_channelrisknotice")

ROLES: tuple[Role, ...] = (
    Role("onboarding_clerk", "Onboarding clerk", "进件专员",
         "Creates and edits merchants and applications, imports batches, submits to channels, answers returns.",
         section="onboarding",
         permissions=("merchants.*", "-merchants.delete_*", *_DECISIONS, *_NOT_CLERKS, "trades.generate_storecode",
                      "trades.view_storecode")),
    Role("risk_officer", "Risk officer", "风控专员",
         "Reviews applications, maintains lists and limits, acts on channel risk events, freezes merchants.",
         section="risk",
         # "risk.*" holds the channel risk notices: reading, handling them and limiting a contract on one
         # (risk.ChannelRiskNotice: handle_channelrisknotice, limit_contract); not writing one by hand.
         permissions=("risk.*", *_NOTICES_NOT_EDITED, "merchants.view_*", "merchants.review_*",
                      "merchants.approve_*", "merchants.reject_*", "merchants.freeze_*", "merchants.unfreeze_*",
                      # Designating a partner trusts a merchant to submit others for onboarding: a decision on
                      # merchants like approving one (design §8: risk reviews applications; admin's is users and
                      # roles), made on the merchant page, which is risk's and the clerks' (merchants.views
                      # merchant_partner: sections onboarding and risk) — an admin could not reach it.
                      "merchants.designate_partner",
                      # Refused channel callbacks are security events for risk (issue 5 "Callbacks").
                      "channels.view_channelcallback", "channels.review_channelcallback")),
    Role("support_agent", "Support agent", "客服专员",
         "Handles complaints, files appeals, resends notifications, looks up trades.",
         section="support",
         permissions=("trades.view_*", "trades.resend_delivery", "trades.refund_order", "risk.view_*",
                      "risk.*complaint*", "risk.*appeal*", "-risk.delete_*")),
    Role("operations", "Operations", "运营",
         "Channel accounts, products, rates, routing rules, traffic switches, interface evaluations.",
         section="operations",
         # Operations may read callbacks (the admin's list, to debug a channel); marking refused ones reviewed is
         # risk's: they are security events (issue 5 "Callbacks").
         permissions=("channels.*", "-channels.review_channelcallback",
                      # Callbacks its accounts received and did not process are operations' queue: marking them
                      # handled is theirs (channels.services.callback_handling); named, so narrowing channels.*
                      # one day does not drop it.
                      "channels.handle_channelcallback",
                      "trades.view_order", "trades.view_refund", "trades.view_storecode",
                      "trades.generate_storecode",
                      # Operations owns rates: a merchant's rate below the account's cost only by its override,
                      # with a reason (issue 4 "Contract"; merchants.services.contracts.contract_set_rate).
                      "merchants.override_contract_rate")),
    Role("finance", "Finance", "财务",
         "Fees, bills, reconciliation, discrepancies, statements, profit reports.",
         section="finance",
         permissions=("trades.view_*", "trades.*recon*", "trades.*discrepanc*", "trades.*bill*",
                      "trades.*statement*", "-trades.delete_*")),
    Role("admin", "Administrator", "系统管理员",
         "Users and roles; reads the audit log.",
         section="admin",
         # Least privilege for "users and roles": accounts, and reading the groups to hand them out. No
         # auth.*_group / *_permission (a group's permissions are code, and whoever edits them grants
         # anything), no deleting (deactivate instead: audit rows keep pointing at the account). Superuser
         # status and individual permissions are a superuser's (aggpay.admin_users, aggpay.staff.services).
         permissions=("auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group",
                      "aggpay.view_audit", "aggpay.view_auditlog")),
)
ROLES_BY_SLUG = {role.slug: role for role in ROLES}


# --- syncing groups ----------------------------------------------------------------------------------


def resolve_specs(specs, available) -> set:
    """Keys of ``available`` (``(app_label, codename)`` pairs) that the specs grant, minus the ``-`` ones."""
    granted, removed = set(), set()
    for spec in specs:
        target = removed if spec.startswith("-") else granted
        app_label, _, pattern = spec.lstrip("-").partition(".")
        if not app_label or not pattern:
            raise ValueError(f"permission spec {spec!r} must look like 'app_label.codename'")
        target.update(key for key in available if key[0] == app_label and fnmatchcase(key[1], pattern))
    return granted - removed


def roles_sync(*, apps=None, using: str = DEFAULT_DB_ALIAS) -> dict[str, dict[str, list[str]]]:
    """Create/update the six groups so each holds exactly the permissions ``ROLES`` grants that exist now.

    Idempotent. ``apps`` is a (historical) app registry when called from a migration. Returns what changed,
    per group: ``{"added": [...], "removed": [...]}`` (empty when nothing did).
    """
    registry = apps or global_apps
    Group = registry.get_model("auth", "Group")
    Permission = registry.get_model("auth", "Permission")
    ContentType = registry.get_model("contenttypes", "ContentType")

    section_type, _ = ContentType.objects.using(using).get_or_create(
        app_label=SECTION_APP_LABEL, model=SECTION_MODEL
    )
    for section in SECTIONS:
        Permission.objects.using(using).get_or_create(
            content_type=section_type, codename=section.codename,
            defaults={"name": f"Can use the {section.label} section ({section.label_zh})"},
        )

    available = {
        (app_label, codename): pk
        for pk, app_label, codename in Permission.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    changes: dict[str, dict[str, list[str]]] = {}
    for role in ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=role.slug)
        wanted = resolve_specs((*role.permissions, SECTIONS_BY_SLUG[role.section].permission), available)
        current = {
            (app_label, codename)
            for app_label, codename in group.permissions.values_list("content_type__app_label", "codename")
        }
        added, removed = sorted(wanted - current), sorted(current - wanted)
        if added or removed:
            group.permissions.set([available[key] for key in wanted])
            changes[role.slug] = {"added": [".".join(k) for k in added], "removed": [".".join(k) for k in removed]}
            logger.info("role %s: +%d -%d permissions", role.slug, len(added), len(removed))
    return changes


def roles_sync_after_migrate(sender, *, using=DEFAULT_DB_ALIAS, apps=None, **kwargs) -> None:
    """post_migrate receiver: re-sync once, after the *last* app's permissions have been created.

    Django sends post_migrate once per app (those with a models module) and creates each app's permissions
    in its own turn, so syncing on an earlier turn would miss the apps after it.
    """
    last = [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]
    if sender is not last:
        return
    registry = apps or global_apps
    try:
        registry.get_model("auth", "Group")
        registry.get_model("contenttypes", "ContentType")
    except LookupError:  # auth or contenttypes migrated to zero: nothing to attach to
        return
    roles_sync(apps=registry, using=using)


# --- who may do what ---------------------------------------------------------------------------------


def user_roles(user) -> list[Role]:
    """The roles (in table order) whose group the user belongs to."""
    if user is None or not user.is_authenticated:
        return []
    names = set(user.groups.values_list("name", flat=True))
    return [role for role in ROLES if role.slug in names]


def _url(target: str) -> str:
    if target.startswith("/"):
        return target
    try:
        return reverse(target)
    except NoReverseMatch:
        return ""


def staff_sections(user) -> list[dict]:
    """The sections the user may use, with their URLs and permitted sub-pages (superusers see all)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    sections = []
    for section in SECTIONS:
        if not user.has_perm(section.permission):
            continue
        links = [
            {"label": label, "url": _url(target)}
            for label, target, perm in section.links
            if user.has_perm(perm) and _url(target)
        ]
        sections.append({"slug": section.slug, "label": section.label, "label_zh": section.label_zh,
                         "url": _url(section.url_name), "links": links})
    return sections


def _nav(request) -> list[dict]:
    """``staff_sections`` with the entry for the current page marked ``active`` (the deepest match wins)."""
    sections = staff_sections(getattr(request, "user", None))
    path = request.path
    for section in sections:
        for link in section["links"]:
            link["active"] = path.startswith(link["url"])
        section["active"] = path.startswith(section["url"]) and not any(link["active"] for link in section["links"])
    return sections


def roles_context(request) -> dict:
    """Template context for the shell: the nav and the user's roles, computed only if a template uses them."""
    user = getattr(request, "user", None)
    return {
        "staff_nav": SimpleLazyObject(lambda: _nav(request)),
        "staff_roles": SimpleLazyObject(lambda: user_roles(user)),
    }


# --- guarding views ----------------------------------------------------------------------------------


def forbidden(request, *, missing: str):
    """403 page for a signed-in user without the permission (a redirect to login would loop)."""
    return render(request, "staff/forbidden.html", {"missing_permission": missing}, status=403)


def _check(request, perms: tuple[str, ...]):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        # Only staff accounts open the back office (aggpay.staff.forms.StaffAuthenticationForm): an account whose
        # staff status was taken away loses its pages at once, as in the Django admin, not when its session ends.
        return forbidden(request, missing="staff status")
    missing = [perm for perm in perms if not request.user.has_perm(perm)]
    if missing:
        return forbidden(request, missing=", ".join(missing))
    return None


def permission_required_403(*perms: str):
    """View decorator: anonymous → login page; signed in without every ``perms`` → 403."""
    if not perms:
        raise ValueError("permission_required_403 needs at least one permission")

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            return _check(request, perms) or view(request, *args, **kwargs)

        return wrapped

    return decorator


def staff_required(view):
    """View decorator for pages every role opens (the home page): anonymous → login page; not staff → 403."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        return _check(request, ()) or view(request, *args, **kwargs)

    return wrapped


def section_required(slug: str):
    """View decorator for a section's pages, e.g. ``@section_required("finance")``."""
    if slug not in SECTIONS_BY_SLUG:
        raise ValueError(f"unknown staff section {slug!r}; known: {sorted(SECTIONS_BY_SLUG)}")
    return permission_required_403(SECTIONS_BY_SLUG[slug].permission)


class PermissionRequired403Mixin:
    """CBV mixin: ``permission_required = ("channels.view_channelaccount",)``; optional ``section = "operations"``."""

    permission_required: tuple[str, ...] | str = ()
    section: str | None = None

    def get_required_permissions(self) -> tuple[str, ...]:
        perms = (self.permission_required,) if isinstance(self.permission_required, str) else tuple(
            self.permission_required
        )
        if self.section is not None:
            if self.section not in SECTIONS_BY_SLUG:
                raise ValueError(f"unknown staff section {self.section!r}")
            perms = (SECTIONS_BY_SLUG[self.section].permission, *perms)
        if not perms:
            raise ValueError(f"{type(self).__name__} sets neither section nor permission_required")
        return perms

    def dispatch(self, request, *args, **kwargs):
        return _check(request, self.get_required_permissions()) or super().dispatch(request, *args, **kwargs)


class SectionRequiredMixin(PermissionRequired403Mixin):
    """CBV mixin for a section's pages: set ``section = "finance"``."""

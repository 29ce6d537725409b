"""Roles kept in code (design.md §8): groups, their permissions, and the re-sync after every migrate."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.sql import emit_post_migrate_signal

from aggpay.roles import ROLES, SECTIONS, resolve_specs, roles_sync, staff_sections, user_roles

pytestmark = pytest.mark.django_db


def group_perms(slug: str) -> set[str]:
    group = Group.objects.get(name=slug)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_it_creates_six_groups_each_with_its_own_section_permission():
    roles_sync()
    assert set(Group.objects.values_list("name", flat=True)) >= {role.slug for role in ROLES}
    assert len(ROLES) == 6
    for role in ROLES:
        sections = {perm for perm in group_perms(role.slug) if ".access_" in perm}
        assert sections == {f"aggpay.access_{role.section}"}


def test_syncing_twice_changes_nothing_the_second_time():
    roles_sync()
    before = {role.slug: group_perms(role.slug) for role in ROLES}
    groups, perms = Group.objects.count(), Permission.objects.count()

    assert roles_sync() == {}
    assert {role.slug: group_perms(role.slug) for role in ROLES} == before
    assert (Group.objects.count(), Permission.objects.count()) == (groups, perms)


def test_clerks_get_merchant_permissions_but_not_deleting_or_deciding():
    roles_sync()
    perms = group_perms("onboarding_clerk")
    assert {"merchants.add_merchant", "merchants.change_merchant", "merchants.view_merchantapp"} <= perms
    assert not any(p.startswith("merchants.delete_") for p in perms)
    # Deciding on applications is risk's (design §8), even though it is a merchants permission.
    assert "merchants.review_application" not in perms
    assert not any(p.startswith(("channels.", "auth.")) for p in perms)
    # Of trades, clerks only make one-code-pay store codes for the stores they onboard (issue 5).
    assert {p for p in perms if p.startswith("trades.")} == {"trades.generate_storecode", "trades.view_storecode"}


def test_only_operations_may_price_a_merchant_below_the_accounts_cost():
    # Issue 4 "Contract": a rate below cost "unless an operator overrides with a reason"; clerks' merchants.* stops
    # short of it.
    roles_sync()
    holders = {role.slug for role in ROLES if "merchants.override_contract_rate" in group_perms(role.slug)}
    assert holders == {"operations"}


def test_risk_officers_review_and_only_view_merchants():
    roles_sync()
    perms = group_perms("risk_officer")
    assert {"merchants.view_merchant", "merchants.review_application", "aggpay.access_risk"} <= perms
    assert "merchants.change_merchant" not in perms
    assert "merchants.add_merchant" not in perms


NOTICE_WRITES = ("add_channelrisknotice", "change_channelrisknotice", "delete_channelrisknotice")


def test_risk_officers_read_and_handle_channel_risk_notices_but_never_write_one_by_hand():
    # The channel's callback records a notice and risk.services.channel_notices changes it (checking
    # handle_channelrisknotice, audited): the model's add/change/delete serve nothing, so "risk.*" stops short.
    roles_sync()
    perms = group_perms("risk_officer")
    assert {"risk.view_channelrisknotice", "risk.handle_channelrisknotice", "risk.limit_contract"} <= perms
    writes = {f"risk.{codename}" for codename in NOTICE_WRITES}
    assert not any(writes & group_perms(role.slug) for role in ROLES)


def test_a_deployment_whose_risk_officers_could_write_notices_loses_that_on_the_next_migrate():
    # Roles live in code: the post_migrate re-sync takes back what the table no longer grants (no data migration).
    roles_sync()
    Group.objects.get(name="risk_officer").permissions.add(
        *Permission.objects.filter(content_type__app_label="risk", codename__in=NOTICE_WRITES))

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    perms = group_perms("risk_officer")
    assert not {f"risk.{codename}" for codename in NOTICE_WRITES} & perms
    assert "risk.handle_channelrisknotice" in perms


def test_operations_get_every_channel_permission_but_reviewing_refused_callbacks_and_admins_get_users_and_audit():
    roles_sync()
    channel_perms = {
        f"channels.{codename}"
        for codename in Permission.objects.filter(content_type__app_label="channels").values_list("codename", flat=True)
    }
    # Marking a refused callback reviewed is risk's (security events, issue 5 "Callbacks"); reading them is not.
    assert channel_perms - group_perms("operations") == {"channels.review_channelcallback"}
    admin = group_perms("admin")
    # Users and roles, at least privilege: accounts and reading groups; groups and permissions are code.
    assert {p for p in admin if p.startswith("auth.")} == {
        "auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group"}
    assert {"aggpay.view_audit", "aggpay.view_auditlog"} <= admin
    assert not any(p.startswith("merchants.") for p in admin)


def test_a_permission_granted_by_hand_is_taken_back_because_roles_live_in_code():
    roles_sync()
    extra = Permission.objects.get(content_type__app_label="auth", codename="delete_user")
    Group.objects.get(name="support_agent").permissions.add(extra)

    changes = roles_sync()

    assert changes["support_agent"]["removed"] == ["auth.delete_user"]
    assert "auth.delete_user" not in group_perms("support_agent")


def test_permissions_of_models_added_later_attach_after_migrate():
    """A later issue's model (a stand-in trades model here) gets its perms onto the groups on the next migrate."""
    roles_sync()
    later, _ = ContentType.objects.get_or_create(app_label="trades", model="laterreport")
    for codename in ("view_laterreport", "delete_laterreport"):
        Permission.objects.get_or_create(content_type=later, codename=codename, defaults={"name": codename})

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    assert "trades.view_laterreport" in group_perms("support_agent")
    assert "trades.view_laterreport" in group_perms("finance")
    assert "trades.delete_laterreport" not in group_perms("finance")
    assert "trades.view_laterreport" not in group_perms("operations")


def test_a_deleted_group_comes_back_on_the_next_migrate():
    Group.objects.filter(name="finance").delete()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert "aggpay.access_finance" in group_perms("finance")


def test_specs_match_exact_codenames_wildcards_and_exclusions():
    available = {("merchants", "add_merchant"), ("merchants", "delete_merchant"), ("merchants", "view_store"),
                 ("risk", "view_list")}
    assert resolve_specs(["merchants.*", "-merchants.delete_*"], available) == {
        ("merchants", "add_merchant"), ("merchants", "view_store")}
    assert resolve_specs(["merchants.view_*", "risk.view_list"], available) == {
        ("merchants", "view_store"), ("risk", "view_list")}
    assert resolve_specs(["merchants.review_application"], available) == set()
    with pytest.raises(ValueError):
        resolve_specs(["merchants"], available)


def test_user_roles_and_sections_follow_group_membership(staff_member, django_user_model):
    clerk = staff_member("onboarding_clerk")
    assert [role.slug for role in user_roles(clerk)] == ["onboarding_clerk"]
    assert [section["slug"] for section in staff_sections(clerk)] == ["onboarding"]

    admin = staff_member("admin")
    admin_sections = staff_sections(admin)
    assert [section["slug"] for section in admin_sections] == ["admin"]
    assert admin_sections[0]["links"] == [{"label": "Audit log", "url": "/staff/admin/audit/"}]

    root = django_user_model.objects.create_superuser("root", "root@example.com", "x" * 12)
    assert [section["slug"] for section in staff_sections(root)] == [section.slug for section in SECTIONS]
    assert user_roles(root) == []

"""Users and roles in the Django admin: an administrator manages accounts and hands out roles, and nothing more.

The ``admin`` role (design §8: "users and roles") must not reach superuser status, individual permissions or a
role's permissions, must not touch a superuser's account or its own roles, and every change is audited (rule 9).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from aggpay.errors import Forbidden
from aggpay.models import AuditLog
from aggpay.staff.services import staff_user_update
from tests.conftest import STAFF_PASSWORD

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"


def role(slug: str) -> Group:
    return Group.objects.get(name=slug)


def perm(label: str) -> Permission:
    app_label, codename = label.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def change_form(user, **overrides) -> dict:
    """Everything the change page posts back for ``user`` as it is, with ``overrides`` on top."""
    data = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name,
        "email": user.email, "is_active": "on" if user.is_active else "", "is_staff": "on" if user.is_staff else "",
        "groups": [group.pk for group in user.groups.all()],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"), "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "", "last_login_1": "",
    }
    if user.is_superuser:
        data["is_superuser"] = "on"
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


def audit_rows(action: str):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


@pytest.fixture
def admin_li(staff_member, client):
    """Persona: Li, an administrator (the real ``admin`` role group), signed in."""
    li = staff_member("admin", username="li.admin")
    client.force_login(li)
    return li


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", STAFF_PASSWORD)


# --- what an administrator may do -------------------------------------------------------------------------------


def test_an_admin_creates_a_clerk_with_the_clerk_role_and_it_is_audited(client, admin_li, django_user_model):
    response = client.post(f"{USERS}add/", {
        "username": "chen.clerk", "usable_password": "true", "password1": STAFF_PASSWORD,
        "password2": STAFF_PASSWORD, "email": "chen@example.com", "groups": [role("onboarding_clerk").pk],
    })

    assert response.status_code == 302, response.content
    chen = django_user_model.objects.get(username="chen.clerk")
    assert chen.is_staff and chen.check_password(STAFF_PASSWORD) and not chen.is_superuser
    assert list(chen.groups.values_list("name", flat=True)) == ["onboarding_clerk"]
    [row] = [row for row in audit_rows("aggpay.staff_user.created") if row.target_id == str(chen.pk)]
    assert row.actor_id == admin_li.pk
    assert row.data == {"role": "onboarding_clerk", "is_staff": True}


def test_an_admin_changes_a_users_roles_and_the_audit_row_shows_before_and_after(client, admin_li, clerk_wang):
    response = client.post(f"{USERS}{clerk_wang.pk}/change/",
                           change_form(clerk_wang, groups=[role("onboarding_clerk").pk, role("risk_officer").pk]))

    assert response.status_code == 302, response.content
    assert sorted(clerk_wang.groups.values_list("name", flat=True)) == ["onboarding_clerk", "risk_officer"]
    [row] = audit_rows("aggpay.staff_user.changed")
    assert row.actor_id == admin_li.pk
    assert row.data == {"changes": {"groups": {"before": ["onboarding_clerk"],
                                               "after": ["onboarding_clerk", "risk_officer"]}}}
    clerk_wang.refresh_from_db()
    assert clerk_wang.password not in str(row.data)


def test_an_admin_deactivates_a_user_and_a_password_reset_is_audited_without_the_password(client, admin_li,
                                                                                          clerk_wang):
    client.post(f"{USERS}{clerk_wang.pk}/change/", change_form(clerk_wang, is_active=""))
    clerk_wang.refresh_from_db()
    assert not clerk_wang.is_active
    assert audit_rows("aggpay.staff_user.changed")[0].data == {
        "changes": {"is_active": {"before": True, "after": False}}}

    new_password = "another long passphrase"
    response = client.post(f"{USERS}{clerk_wang.pk}/password/", {
        "usable_password": "true", "password1": new_password, "password2": new_password})

    assert response.status_code == 302
    clerk_wang.refresh_from_db()
    assert clerk_wang.check_password(new_password)
    [row] = audit_rows("aggpay.staff_user.password_changed")
    assert row.data == {"usable_password": True}
    assert new_password not in str(row.data) and clerk_wang.password not in str(row.data)


def test_the_user_and_group_pages_open_for_an_admin_with_their_own_roles_read_only(client, admin_li, clerk_wang):
    for page in (USERS, f"{USERS}add/", f"{USERS}{clerk_wang.pk}/change/", f"{USERS}{clerk_wang.pk}/password/",
                 "/admin/auth/group/", f"/admin/auth/group/{role('admin').pk}/change/"):
        assert client.get(page).status_code == 200, page
    own = client.get(f"{USERS}{admin_li.pk}/change/").content.decode()
    assert 'name="email"' in own and 'name="groups"' not in own and 'name="is_active"' not in own
    assert b"delete_selected" not in client.get(USERS).content  # admins deactivate; they do not delete


# --- what an administrator may not do ---------------------------------------------------------------------------


def test_an_admin_cannot_make_themselves_superuser(client, admin_li):
    client.post(f"{USERS}{admin_li.pk}/change/", change_form(admin_li, is_superuser="on"))

    admin_li.refresh_from_db()
    assert not admin_li.is_superuser
    assert not admin_li.has_perm("trades.refund_order")


def test_an_admin_cannot_give_themselves_another_role(client, admin_li):
    client.post(f"{USERS}{admin_li.pk}/change/",
                change_form(admin_li, groups=[role("admin").pk, role("operations").pk]))

    assert list(admin_li.groups.values_list("name", flat=True)) == ["admin"]
    assert not admin_li.has_perm("channels.change_channelaccount")


def test_an_admin_cannot_make_anyone_superuser_or_grant_individual_permissions(client, admin_li, clerk_wang):
    refund = perm("trades.refund_order")
    client.post(f"{USERS}{clerk_wang.pk}/change/",
                change_form(clerk_wang, is_superuser="on", user_permissions=[refund.pk]))
    client.post(f"{USERS}{admin_li.pk}/change/", change_form(admin_li, user_permissions=[refund.pk]))

    for user in (clerk_wang, admin_li):
        user.refresh_from_db()
        assert not user.is_superuser
        assert not user.user_permissions.exists()
    page = client.get(f"{USERS}{clerk_wang.pk}/change/").content.decode()
    assert 'name="is_superuser"' not in page
    assert 'name="user_permissions"' not in page


def test_an_admin_is_offered_only_the_role_groups(client, admin_li, clerk_wang):
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(perm("trades.refund_order"))

    response = client.post(f"{USERS}{clerk_wang.pk}/change/", change_form(clerk_wang, groups=[auditors.pk]))

    assert response.status_code == 200  # the form refuses the choice
    assert list(clerk_wang.groups.values_list("name", flat=True)) == ["onboarding_clerk"]
    assert not AuditLog.objects.filter(action="aggpay.staff_user.changed").exists()


def test_an_admin_cannot_edit_a_roles_permissions_or_make_a_group(client, admin_li):
    admin_group = role("admin")
    before = set(admin_group.permissions.all())

    response = client.post(f"/admin/auth/group/{admin_group.pk}/change/", {
        "name": "admin", "permissions": [p.pk for p in Permission.objects.all()]})

    assert response.status_code == 403
    assert set(admin_group.permissions.all()) == before
    assert client.post("/admin/auth/group/add/", {
        "name": "everything", "permissions": [perm("trades.refund_order").pk]}).status_code == 403
    assert not Group.objects.filter(name="everything").exists()
    assert client.get(f"/admin/auth/group/{admin_group.pk}/change/").status_code == 200  # reading is fine


def test_an_admin_cannot_edit_delete_or_reset_the_password_of_a_superuser(client, admin_li, root):
    assert client.post(f"{USERS}{root.pk}/change/", change_form(root, email="evil@example.com")).status_code == 403
    assert client.post(f"{USERS}{root.pk}/password/", {
        "usable_password": "true", "password1": "taken over at last", "password2": "taken over at last",
    }).status_code == 403
    assert client.post(f"{USERS}{root.pk}/delete/", {"post": "yes"}).status_code == 403

    root.refresh_from_db()
    assert root.email == "root@example.com" and root.check_password(STAFF_PASSWORD)


def test_the_service_refuses_a_privilege_change_even_if_a_form_let_it_through(admin_li, clerk_wang):
    with pytest.raises(Forbidden) as excinfo, transaction.atomic():
        staff_user_update(actor=admin_li, user_id=clerk_wang.pk, changes={"is_superuser": True})
    assert excinfo.value.param == "is_superuser"
    with pytest.raises(Forbidden), transaction.atomic():
        staff_user_update(actor=admin_li, user_id=clerk_wang.pk, user_permissions=[perm("trades.refund_order")])
    with pytest.raises(Forbidden), transaction.atomic():
        staff_user_update(actor=admin_li, user_id=admin_li.pk, groups=["admin", "finance"])
    clerk_wang.refresh_from_db()
    assert not clerk_wang.is_superuser and not AuditLog.objects.filter(action="aggpay.staff_user.changed").exists()


# --- a superuser still can --------------------------------------------------------------------------------------


def test_a_superuser_still_grants_superuser_status_and_individual_permissions(client, root, clerk_wang):
    client.force_login(root)
    refund = perm("trades.refund_order")

    response = client.post(f"{USERS}{clerk_wang.pk}/change/",
                           change_form(clerk_wang, is_superuser="on", user_permissions=[refund.pk]))

    assert response.status_code == 302, response.content
    clerk_wang.refresh_from_db()
    assert clerk_wang.is_superuser
    [row] = audit_rows("aggpay.staff_user.changed")
    assert row.actor_id == root.pk
    assert row.data["changes"] == {"is_superuser": {"before": False, "after": True},
                                   "user_permissions": {"before": [], "after": ["trades.refund_order"]}}


def test_a_superuser_manages_other_groups_audited_but_role_groups_stay_code(client, root):
    client.force_login(root)
    refund = perm("trades.refund_order")

    assert client.post("/admin/auth/group/add/", {"name": "auditors", "permissions": [refund.pk]}).status_code == 302
    auditors = Group.objects.get(name="auditors")
    assert list(auditors.permissions.all()) == [refund]
    assert audit_rows("aggpay.staff_group.created")[0].data == {"name": "auditors",
                                                                "permissions": ["trades.refund_order"]}

    finance = role("finance")
    before = set(finance.permissions.all())
    assert client.post(f"/admin/auth/group/{finance.pk}/change/", {
        "name": "finance", "permissions": [refund.pk]}).status_code == 403
    assert set(finance.permissions.all()) == before


def test_a_superuser_deletes_a_user_and_it_is_audited(client, root, staff_member, django_user_model):
    mistake = staff_member("finance", username="typo.user")
    client.force_login(root)

    assert client.post(f"{USERS}{mistake.pk}/delete/", {"post": "yes"}).status_code == 302

    assert not django_user_model.objects.filter(username="typo.user").exists()
    [row] = audit_rows("aggpay.staff_user.deleted")
    assert row.target_id == str(mistake.pk)
    assert row.data["account"]["groups"] == ["finance"]
    assert "password" not in row.data["account"]

"""staff_user_create: one staff user per role for the demo seed and for admins (audited)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from aggpay.staff.services import staff_user_create

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase"


def test_it_creates_an_active_staff_user_in_the_roles_group_and_audits_it(django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "x" * 12)

    user = staff_user_create(username="olga", password=PASSWORD, role="operations", email="olga@example.com",
                             actor=admin)

    assert user.is_staff and user.is_active and not user.is_superuser
    assert user.check_password(PASSWORD)
    assert list(user.groups.values_list("name", flat=True)) == ["operations"]
    assert user.has_perm("aggpay.access_operations")
    row = AuditLog.objects.get(action="aggpay.staff_user.created")
    assert (row.actor_id, row.target_type, row.target_id) == (admin.pk, "auth.user", str(user.pk))
    assert row.data == {"role": "operations", "is_staff": True}
    assert PASSWORD not in str(row.data) + row.reason


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"role": "janitor"}, "role"),
        ({"username": ""}, "username"),
        ({"password": "short"}, "password"),
        ({"password": "password123456"}, "password"),  # too common
    ],
)
def test_it_rejects_bad_input_naming_the_field_and_writes_nothing(django_user_model, kwargs, param):
    args = {"username": "olga", "password": PASSWORD, "role": "finance", **kwargs}
    with pytest.raises(InvalidRequest) as excinfo:
        staff_user_create(**args)
    assert excinfo.value.param == param
    assert not django_user_model.objects.filter(username="olga").exists()
    assert not AuditLog.objects.exists()


def test_a_taken_username_is_refused():
    staff_user_create(username="olga", password=PASSWORD, role="finance")
    with pytest.raises(InvalidRequest) as excinfo:
        staff_user_create(username="olga", password=PASSWORD, role="admin")
    assert excinfo.value.param == "username"


def test_it_recreates_missing_groups_before_adding_the_user():
    Group.objects.filter(name="support_agent").delete()
    user = staff_user_create(username="sam", password=PASSWORD, role="support_agent")
    assert user.has_perm("aggpay.access_support")

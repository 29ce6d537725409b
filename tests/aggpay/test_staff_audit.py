"""The audit log page for admins (/staff/admin/audit/): lists, filters, pages, never writes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.models import AuditLog
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def write(*, actor, action, target=None, reason="", when=None):
    with transaction.atomic():
        entry = audit_log(actor=actor, action=action, target=target, reason=reason)
    if when is not None:
        # created_at is auto_now_add and rows are append-only through the ORM: back-date with SQL (tests only).
        with connection.cursor() as cursor:
            cursor.execute("UPDATE aggpay_auditlog SET created_at = %s WHERE id = %s", [when, entry.pk])
    return entry


@pytest.fixture
def admin_client(client, staff_member):
    user = staff_member("admin", username="alice")
    client.force_login(user)
    return client


@pytest.fixture
def log(staff_member):
    bob = staff_member("onboarding_clerk", username="bob")  # writes aggpay.staff_user.created (actor system)
    tea, noodles = MerchantFactory(short_name="Tea Corner"), MerchantFactory(short_name="Noodle Bar")
    write(actor=bob, action="merchants.merchant.created", target=tea)
    write(actor=bob, action="merchants.merchant.created", target=noodles)
    write(actor="api:app_1", action="merchants.app.created", target=tea)
    write(actor=None, action="channels.account.created", reason="old",
          when=timezone.now() - dt.timedelta(days=10))
    return {"bob": bob, "tea": tea, "noodles": noodles}


def actions(response):
    return [(e.actor_label, e.action, e.target_repr) for e in response.context["page"]]


def test_it_lists_every_entry_newest_first(admin_client, log):
    response = admin_client.get("/staff/admin/audit/")
    assert response.status_code == 200
    rows = actions(response)
    assert len(rows) == AuditLog.objects.count() == 6  # two staff users created + four written here
    assert rows[0] == ("api:app_1", "merchants.app.created", str(log["tea"]))
    assert rows[-1][1] == "channels.account.created"


def test_it_filters_by_actor(admin_client, log):
    rows = actions(admin_client.get("/staff/admin/audit/", {"actor": "bob"}))
    assert [r[2] for r in rows] == [str(log["noodles"]), str(log["tea"])]


def test_it_filters_by_action_prefix(admin_client, log):
    rows = actions(admin_client.get("/staff/admin/audit/", {"action": "merchants."}))
    assert {r[1] for r in rows} == {"merchants.merchant.created", "merchants.app.created"}
    assert len(rows) == 3


def test_it_filters_by_target_id_type_or_name(admin_client, log):
    by_name = actions(admin_client.get("/staff/admin/audit/", {"target": "tea corner"}))
    assert {r[1] for r in by_name} == {"merchants.merchant.created", "merchants.app.created"}
    by_id = actions(admin_client.get("/staff/admin/audit/", {"target": f"merchants.merchant#{log['noodles'].pk}"}))
    assert by_id == [("bob", "merchants.merchant.created", str(log["noodles"]))]
    by_type = actions(admin_client.get("/staff/admin/audit/", {"target": "auth.user"}))
    assert {r[1] for r in by_type} == {"aggpay.staff_user.created"}


def test_it_filters_by_local_date_range(local_midday, admin_client, log):
    today = timezone.localdate()
    recent = actions(admin_client.get("/staff/admin/audit/", {"date_from": today.isoformat()}))
    assert "channels.account.created" not in {r[1] for r in recent}
    assert len(recent) == 5
    old_day = (today - dt.timedelta(days=10)).isoformat()
    old = actions(admin_client.get("/staff/admin/audit/", {"date_from": old_day, "date_to": old_day}))
    assert [r[1] for r in old] == ["channels.account.created"]


def test_a_bad_date_is_reported_and_the_other_filters_still_apply(admin_client, log):
    response = admin_client.get("/staff/admin/audit/", {"date_from": "yesterday", "actor": "bob"})
    assert response.status_code == 200
    assert "date_from" in response.context["form"].errors
    assert len(actions(response)) == 2


def test_it_pages_through_long_logs_keeping_the_filters(admin_client, staff_member):
    bob = staff_member("onboarding_clerk", username="bob")
    with transaction.atomic():
        for n in range(55):
            audit_log(actor=bob, action="merchants.merchant.created", reason=f"row {n}")
    first = admin_client.get("/staff/admin/audit/", {"actor": "bob"})
    assert len(first.context["page"]) == 50
    assert 'href="?actor=bob&amp;page=2"' in first.content.decode()
    second = admin_client.get("/staff/admin/audit/", {"actor": "bob", "page": 2})
    assert len(second.context["page"]) == 5


def test_the_page_is_read_only(admin_client, log):
    count = AuditLog.objects.count()
    assert admin_client.post("/staff/admin/audit/", {"action": "x"}).status_code == 405
    assert AuditLog.objects.count() == count


def test_someone_with_the_admin_section_but_without_audit_permission_gets_403(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("half-admin", password="x" * 12, is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="aggpay", codename="access_admin"))
    client.force_login(user)
    assert client.get("/staff/admin/").status_code == 200
    assert client.get("/staff/admin/audit/").status_code == 403

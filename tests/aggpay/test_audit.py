"""aggpay.audit: one append-only row per staff change, written in the same transaction (design §5 rule 9)."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory

from aggpay.audit import audit_log
from aggpay.middleware import RequestIdMiddleware
from aggpay.models import AuditLog
from merchants.services.merchants import merchant_create, merchant_freeze


class Boom(Exception):
    pass


@pytest.mark.django_db
def test_a_service_change_writes_its_audit_row(tea_house, staff_member):
    officer = staff_member("risk_officer", username="risk.wang")
    merchant_freeze(merchant_id=tea_house.pk, actor=officer, reason="chargeback spike")
    row = AuditLog.objects.get(action="merchants.merchant.freeze")
    assert row.actor == officer
    assert row.actor_label == "risk.wang"
    assert (row.target_type, row.target_id) == ("merchants.merchant", str(tea_house.pk))
    assert row.reason == "chargeback spike"
    assert row.data == {"from": "active", "to": "frozen"}


@pytest.mark.django_db
def test_the_audit_row_is_rolled_back_with_the_change():
    with pytest.raises(Boom), transaction.atomic():
        merchant = merchant_create(actor="clerk.li", legal_name="Rolled Back Co., Ltd.", short_name="Rolled Back")
        assert AuditLog.objects.filter(target_id=str(merchant.pk), action="merchants.merchant.created").exists()
        raise Boom
    assert not AuditLog.objects.filter(action="merchants.merchant.created").exists()


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_write_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_log(actor=None, action="aggpay.test.outside")
    assert not AuditLog.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_and_its_row_are_both_there_after_commit():
    merchant = merchant_create(actor="clerk.li", legal_name="Committed Co., Ltd.", short_name="Committed")
    assert AuditLog.objects.filter(target_id=str(merchant.pk), action="merchants.merchant.created").count() == 1


@pytest.mark.django_db
def test_audit_rows_cannot_be_changed_or_deleted():
    with transaction.atomic():
        row = audit_log(actor=None, action="aggpay.test.append_only", data={"n": 1})
    row.reason = "rewriting history"
    with pytest.raises(TypeError, match="append-only"):
        row.save()
    with pytest.raises(TypeError, match="append-only"):
        row.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditLog.objects.filter(pk=row.pk).update(reason="rewritten")
    with pytest.raises(TypeError, match="append-only"):
        AuditLog.objects.filter(pk=row.pk).delete()
    assert AuditLog.objects.get(pk=row.pk).reason == ""


@pytest.mark.django_db
def test_it_labels_the_system_and_api_callers():
    with transaction.atomic():
        system = audit_log(actor=None, action="aggpay.test.system")
        api = audit_log(actor="api:app_teahouse0001", action="aggpay.test.api")
    assert (system.actor, system.actor_label) == (None, "system")
    assert (api.actor, api.actor_label) == (None, "api:app_teahouse0001")


@pytest.mark.django_db
def test_it_records_the_request_id_of_the_request_that_made_the_change():
    written = {}

    def view(request):
        with transaction.atomic():
            written["row"] = audit_log(actor=None, action="aggpay.test.request")
        return HttpResponse("ok")

    response = RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="lb-0123456789abcdef"))
    assert response["X-Request-Id"] == "lb-0123456789abcdef"
    assert AuditLog.objects.get(pk=written["row"].pk).request_id == "lb-0123456789abcdef"


@pytest.mark.django_db
def test_outside_a_request_the_request_id_is_left_blank():
    with transaction.atomic():
        row = audit_log(actor=None, action="aggpay.test.no_request")
    assert row.request_id == ""


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", [
    "lb-0123456789abcdef\n",  # "$" matched before the newline: a 500 from the response header, a split log line
    "lb-0123456789abcdef\nforged log line",
    "x" * 65,  # longer than AuditLog.request_id
    "lb-01234567 89",
    "lb-0123456789<script>",
    "short",
], ids=["trailing-newline", "newline", "too-long", "space", "markup", "too-short"])
def test_an_incoming_request_id_that_is_not_a_short_safe_token_is_replaced(incoming):
    written = {}

    def view(request):
        with transaction.atomic():
            written["row"] = audit_log(actor=None, action="aggpay.test.request")
        return HttpResponse("ok")

    response = RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID=incoming))

    assert re.fullmatch(r"req_[0-9a-f]{24}", response["X-Request-Id"])
    assert AuditLog.objects.get(pk=written["row"].pk).request_id == response["X-Request-Id"]

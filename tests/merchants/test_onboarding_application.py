"""A clerk drafts, documents and submits an application; a risk officer reviews it (design §4, issue 4)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from aggpay.errors import Forbidden, InvalidRequest, InvalidState
from aggpay.models import AuditLog
from merchants.models import ApplicationState, Merchant, OnboardingApplication
from merchants.services.onboarding import (
    application_approve,
    application_reject,
    application_return,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
    merchant_record_update,
)
from tests.factories import UserFactory
from tests.merchants.records import ID_NUMBER, png, record

CLERK_PERMS = ("add_merchant", "change_merchant", "view_merchant")


def _user_with(username: str, *codenames: str):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="merchants", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def clerk(db):
    """Persona: Wang the onboarding clerk."""
    return _user_with("wang.clerk", *CLERK_PERMS)


@pytest.fixture
def risk_officer(db):
    """Persona: Zhao the risk officer."""
    return _user_with("zhao.risk", "review_application", "view_merchant")


def _documented_application(clerk):
    application = merchant_onboard_draft(actor=clerk, data=record())
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type, uploaded_file=png())
    return application


def test_it_drafts_a_merchant_with_encrypted_pii(clerk):
    application = merchant_onboard_draft(actor=clerk, data=record())
    merchant = application.merchant
    assert application.state == ApplicationState.DRAFT
    assert merchant.state == "onboarding"
    assert merchant.legal_person_id_number == ID_NUMBER
    with connection.cursor() as cursor:
        cursor.execute("SELECT legal_person_id_number, contact_phone FROM merchants_merchant WHERE id = %s",
                       [merchant.pk])
        raw_id, raw_phone = cursor.fetchone()
    assert ID_NUMBER not in raw_id and "13800138000" not in raw_phone
    assert AuditLog.objects.filter(action="merchants.application.drafted", actor=clerk).count() == 1


def test_it_writes_nothing_when_the_record_is_invalid(clerk):
    with pytest.raises(InvalidRequest):
        merchant_onboard_draft(actor=clerk, data=record(contact_phone="123"))
    assert Merchant.objects.count() == 0 and OnboardingApplication.objects.count() == 0


def test_it_refuses_a_submission_with_missing_documents_and_names_them(clerk):
    application = merchant_onboard_draft(actor=clerk, data=record())
    document_add(merchant_id=application.merchant_id, actor=clerk, doc_type="licence", uploaded_file=png())
    with pytest.raises(InvalidRequest) as excinfo:
        application_submit(application_id=application.pk, actor=clerk)
    assert excinfo.value.param == "documents"
    assert "bank_card" in excinfo.value.message and "licence" not in excinfo.value.message
    application.refresh_from_db()
    assert application.state == ApplicationState.DRAFT


def test_it_checks_documents_by_content_not_by_name(clerk):
    application = merchant_onboard_draft(actor=clerk, data=record())
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("licence.png", b"MZ\x90\x00 not an image", content_type="image/png")
    with pytest.raises(InvalidRequest) as excinfo:
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type="licence", uploaded_file=fake)
    assert excinfo.value.param == "file"


def test_approval_creates_contracts_on_the_accounts_that_onboard_the_products(clerk, risk_officer,
                                                                             onboarding_accounts):
    application = _documented_application(clerk)
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk_officer)
    approved = application_approve(application_id=application.pk, actor=risk_officer, notes="real tea house")
    assert approved.state == ApplicationState.CONTRACTING
    assert approved.reviewer == risk_officer
    contracts = {c.channel_account.code: c for c in approved.contracts.all()}
    assert sorted(contracts) == ["alipay-isv", "bank-a", "wechatpay-isv"]  # Bank B does not onboard
    assert all(c.state == "pending" for c in contracts.values())
    assert sorted(contracts["bank-a"].rates.values_list("product", flat=True)) == [
        "alipay.qr", "unionpay.qr", "wechat.native"]
    actions = list(AuditLog.objects.filter(target_id=str(application.pk)).order_by("id").values_list("action", flat=True))
    assert actions[-4:] == ["merchants.application.submitted", "merchants.application.review_started",
                            "merchants.application.approved", "merchants.contracts.created"]


def test_approval_fails_whole_when_no_account_onboards_the_products(clerk, risk_officer):
    application = _documented_application(clerk)
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk_officer)
    with pytest.raises(InvalidRequest) as excinfo:
        application_approve(application_id=application.pk, actor=risk_officer)
    assert excinfo.value.param == "requested_products"
    application.refresh_from_db()
    assert application.state == ApplicationState.RISK_REVIEW


def test_a_returned_application_is_corrected_and_resubmitted(clerk, risk_officer):
    application = _documented_application(clerk)
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk_officer)
    returned = application_return(application_id=application.pk, actor=risk_officer,
                                  reasons=[{"field": "service_phone", "reason": "number does not answer"}])
    assert returned.state == ApplicationState.RETURNED
    assert returned.returned_reasons == [{"field": "service_phone", "reason": "number does not answer"}]
    corrected = merchant_record_update(application_id=application.pk, actor=clerk,
                                       data=record(service_phone="0571-87654321"))
    assert corrected.state == ApplicationState.DRAFT
    assert application_submit(application_id=application.pk, actor=clerk).state == ApplicationState.SUBMITTED


def test_a_clerk_cannot_review_and_a_rejection_needs_a_reason(clerk, risk_officer):
    application = _documented_application(clerk)
    application_submit(application_id=application.pk, actor=clerk)
    with pytest.raises(Forbidden):
        application_review_start(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk_officer)
    with pytest.raises(InvalidRequest):
        application_reject(application_id=application.pk, actor=risk_officer, reason="")
    assert application_reject(application_id=application.pk, actor=risk_officer,
                              reason="fake store photos").state == ApplicationState.REJECTED
    with pytest.raises(InvalidState):
        merchant_record_update(application_id=application.pk, actor=clerk, data=record())


@pytest.mark.django_db(transaction=True)
def test_two_clerks_submitting_at_once_make_one_transition():
    clerk = _user_with("wang.clerk", *CLERK_PERMS)
    colleague = _user_with("chen.clerk", *CLERK_PERMS)
    application = _documented_application(clerk)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def submit(actor):
        barrier.wait()
        try:
            application_submit(application_id=application.pk, actor=actor)
            outcomes.append("ok")
        except InvalidState:
            outcomes.append("invalid_state")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(actor,)) for actor in (clerk, colleague)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["invalid_state", "ok"]
    assert AuditLog.objects.filter(action="merchants.application.submitted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_risk_officers_approving_at_once_make_one_transition_and_one_set_of_contracts(onboarding_accounts):
    clerk = _user_with("wang.clerk", *CLERK_PERMS)
    officers = [_user_with(name, "review_application") for name in ("zhao.risk", "qian.risk")]
    application = _documented_application(clerk)
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=officers[0])
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(actor):
        barrier.wait()
        try:
            application_approve(application_id=application.pk, actor=actor)
            outcomes.append("ok")
        except InvalidState:
            outcomes.append("invalid_state")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(actor,)) for actor in officers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["invalid_state", "ok"]
    assert AuditLog.objects.filter(action="merchants.application.approved").count() == 1
    assert application.contracts.count() == 3

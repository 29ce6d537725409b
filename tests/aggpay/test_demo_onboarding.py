"""The demo's onboarding desk (aggpay/management/demo_onboarding.py): seed_demo leaves the clerk and the risk
officer real work — applicants in each of their queues, made through the services as the demo users."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from aggpay.management import demo, demo_onboarding
from aggpay.models import AuditLog
from merchants.models import Merchant, OnboardingApplication
from merchants.services.onboarding import merchant_record_update, missing_documents
from tests.merchants.records import licence_no

pytestmark = pytest.mark.django_db


def _seed(*extra: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-channels", *extra, stdout=out)
    return out.getvalue()


def _signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=demo.DEMO_STAFF_PASSWORD)
    return client


def test_it_fills_each_queue_of_the_onboarding_desk():
    _seed()
    states = Counter(OnboardingApplication.objects.exclude(merchant__merchant_no=demo.DEMO_MERCHANT_NO)
                     .values_list("state", flat=True))
    assert states == {"draft": 2, "submitted": 1, "risk_review": 1, "returned": 1}


def test_one_draft_still_lacks_documents_and_the_other_is_ready_to_submit():
    _seed()
    incomplete = Merchant.objects.get(legal_name=demo_onboarding.APPLICANTS[0].legal_name)
    ready = Merchant.objects.get(legal_name=demo_onboarding.APPLICANTS[1].legal_name)
    assert set(missing_documents(incomplete)) == {"bank_card", "licence", "store_front", "store_inside"}
    assert missing_documents(ready) == []
    assert ready.subject_type == "micro"


def test_the_returned_application_says_what_to_correct():
    _seed()
    returned = OnboardingApplication.objects.get(state="returned")
    assert [reason["field"] for reason in returned.returned_reasons] == ["licence", "stores[0].name"]
    assert "模糊" in returned.returned_reasons[0]["reason"]


def test_each_step_is_audited_under_the_demo_user_a_visitor_can_sign_in_as():
    _seed()
    by_action = {(row.action, row.actor_label) for row in AuditLog.objects.filter(action__startswith="merchants.application.")}
    assert ("merchants.application.submitted", demo.DEMO_USERNAMES["onboarding_clerk"]) in by_action
    assert ("merchants.application.review_started", demo.DEMO_USERNAMES["risk_officer"]) in by_action
    assert ("merchants.application.returned", demo.DEMO_USERNAMES["risk_officer"]) in by_action


def test_without_the_staff_users_the_steps_are_the_seeds():
    _seed("--skip-staff")
    assert OnboardingApplication.objects.filter(state="returned").exists()
    labels = set(AuditLog.objects.filter(action__startswith="merchants.application.")
                 .values_list("actor_label", flat=True))
    assert labels == {demo.SEED_ACTOR}


def test_running_it_again_adds_no_applicant():
    _seed()
    before = (Merchant.objects.count(), OnboardingApplication.objects.count(), AuditLog.objects.count())
    output = _seed()
    assert (Merchant.objects.count(), OnboardingApplication.objects.count(), AuditLog.objects.count()) == before
    assert output.count("exists  applicant") == len(demo_onboarding.APPLICANTS)


def test_it_can_be_left_out():
    _seed("--skip-onboarding")
    assert set(Merchant.objects.values_list("merchant_no", flat=True)) == {demo.DEMO_MERCHANT_NO,
                                                                          demo.DEMO_PARTNER_NO}


def test_the_clerk_and_the_risk_officer_open_their_home_on_work():
    _seed()
    clerk_home = _signed_in(demo.DEMO_USERNAMES["onboarding_clerk"]).get("/staff/onboarding/?state=returned")
    assert clerk_home.status_code == 200
    assert "上城烘焙坊" in clerk_home.content.decode()
    risk_queue = _signed_in(demo.DEMO_USERNAMES["risk_officer"]).get("/staff/risk/")
    assert risk_queue.status_code == 200
    page = risk_queue.content.decode()
    assert "拱墅便民超市" in page and "滨江健身" in page


@pytest.mark.parametrize("corrected", ["legal_name", "licence_no"])
def test_running_it_again_after_the_clerk_corrected_an_applicant_keeps_it_and_adds_none(corrected):
    """The returned applicant is there to be corrected; a rename made the next `make demo` onboard the business
    again, which its licence number refuses (an InvalidRequest out of seed_demo)."""
    _seed()
    returned = demo_onboarding.APPLICANTS[4]
    application = OnboardingApplication.objects.get(merchant__legal_name=returned.legal_name)
    data = demo_onboarding._record(returned)
    if corrected == "legal_name":
        data["legal_name"] = data["settlement_account"]["account_holder"] = "杭州上城烘焙食品有限公司"
    else:
        data["licence_no"] = licence_no(99)
    clerk = get_user_model().objects.get(username=demo.DEMO_USERNAMES["onboarding_clerk"])
    merchant_record_update(application_id=application.pk, actor=clerk, data=data)
    before = Merchant.objects.count()

    output = _seed()

    assert Merchant.objects.count() == before
    assert output.count("exists  applicant") == len(demo_onboarding.APPLICANTS)

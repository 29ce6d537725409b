"""The risk officer's review queue and review page: oldest submissions first with SLA badges, take, and approve /
return with per-field reasons / reject with notes — each through the onboarding services (design §4)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aggpay.models import AuditLog
from merchants.models import OnboardingApplication
from merchants.services.onboarding import application_review_start, application_submit
from tests.merchants.test_workbench_queue import draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(clerk_wang):
    """Three submitted applications, 30 h, 20 h and 1 h ago."""
    applications = []
    for n, hours in ((1, 1), (2, 30), (3, 20)):
        application = draft(clerk_wang, n)
        application_submit(application_id=application.pk, actor=clerk_wang)
        OnboardingApplication.objects.filter(pk=application.pk).update(
            submitted_at=timezone.now() - dt.timedelta(hours=hours))
        applications.append(application)
    return applications


def test_the_queue_lists_submissions_oldest_first_with_sla_badges(client, risk_zhao, submitted):
    client.force_login(risk_zhao)
    response = client.get("/staff/risk/")
    rows = response.context["rows"]
    assert [r.application.pk for r in rows] == [submitted[1].pk, submitted[2].pk, submitted[0].pk]
    assert [(r.waiting, r.tone, r.overdue) for r in rows] == [("30 h", "bad", True), ("20 h", "warn", False),
                                                              ("1 h", "ok", False)]
    html = response.content.decode()
    assert "1 overdue" in html and "30 h · over SLA" in html
    tabs = {value: n for value, _label, n in response.context["tabs"]}
    assert tabs[""] == 3 and tabs["submitted"] == 3 and tabs["risk_review"] == 0


def test_taking_an_application_moves_it_into_review_with_the_officer_as_reviewer(client, risk_zhao, submitted):
    client.force_login(risk_zhao)
    response = client.post(f"/staff/merchants/review/{submitted[1].pk}/take/")
    assert response.status_code == 302 and response["Location"] == f"/staff/merchants/review/{submitted[1].pk}/"
    submitted[1].refresh_from_db()
    assert submitted[1].state == "risk_review" and submitted[1].reviewer == risk_zhao

    again = client.post(f"/staff/merchants/review/{submitted[1].pk}/take/", follow=True)
    assert "Not taken: the application is risk_review" in again.content.decode()
    mine = client.get("/staff/risk/", {"mine": "on", "state": "risk_review"})
    assert [r.application.pk for r in mine.context["rows"]] == [submitted[1].pk]


def test_the_review_page_shows_record_and_documents_side_by_side(client, risk_zhao, submitted):
    application = submitted[0]
    application_review_start(application_id=application.pk, actor=risk_zhao)
    client.force_login(risk_zhao)
    response = client.get(f"/staff/merchants/review/{application.pk}/")
    html = response.content.decode()
    assert html.index('id="record"') < html.index('id="documents"') < html.index('id="decision"')
    assert html.count('class="doc"') == 6
    for button in ('id="approve"', 'id="return"', 'id="reject"'):
        assert button in html
    assert "Taken for review" in html  # the application's history


def test_approving_creates_the_contracts(client, risk_zhao, submitted, onboarding_accounts):
    application = submitted[0]
    application_review_start(application_id=application.pk, actor=risk_zhao)
    client.force_login(risk_zhao)
    response = client.post(f"/staff/merchants/review/{application.pk}/approve/", {"notes": "store visited"},
                           follow=True)
    application.refresh_from_db()
    assert application.state == "contracting" and application.review_notes == "store visited"
    assert sorted(application.contracts.values_list("channel_account__code", flat=True)) == [
        "alipay-isv", "bank-a", "wechatpay-isv"]
    assert "approved: 3 contracts sent to the channels" in response.content.decode()


def test_returning_names_each_field_and_reason(client, risk_zhao, submitted):
    application = submitted[0]
    application_review_start(application_id=application.pk, actor=risk_zhao)
    client.force_login(risk_zhao)
    response = client.post(f"/staff/merchants/review/{application.pk}/return/", {
        "reasons-TOTAL_FORMS": "4", "reasons-INITIAL_FORMS": "0",
        "reasons-0-field": "settlement_account.account_number", "reasons-0-reason": "does not match the bank card",
        "reasons-1-field": "documents.store_inside", "reasons-1-reason": "photo shows another shop",
        "reasons-2-field": "", "reasons-2-reason": ""})
    assert response.status_code == 302
    application.refresh_from_db()
    assert application.state == "returned"
    assert application.returned_reasons == [
        {"field": "settlement_account.account_number", "reason": "does not match the bank card"},
        {"field": "documents.store_inside", "reason": "photo shows another shop"}]
    entry = AuditLog.objects.get(action="merchants.application.returned")
    assert entry.actor == risk_zhao and "photo shows another shop" in entry.reason


def test_returning_without_a_reason_changes_nothing(client, risk_zhao, submitted):
    application = submitted[0]
    application_review_start(application_id=application.pk, actor=risk_zhao)
    client.force_login(risk_zhao)
    response = client.post(f"/staff/merchants/review/{application.pk}/return/", {
        "reasons-TOTAL_FORMS": "4", "reasons-INITIAL_FORMS": "0", "reasons-0-field": "licence_no"})
    assert response.status_code == 400
    assert "give at least one reason" in response.content.decode()
    application.refresh_from_db()
    assert application.state == "risk_review"


def test_rejecting_needs_a_reason_and_records_it(client, risk_zhao, submitted):
    application = submitted[0]
    application_review_start(application_id=application.pk, actor=risk_zhao)
    client.force_login(risk_zhao)
    assert client.post(f"/staff/merchants/review/{application.pk}/reject/", {"reason": ""}).status_code == 400
    application.refresh_from_db()
    assert application.state == "risk_review"

    client.post(f"/staff/merchants/review/{application.pk}/reject/", {"reason": "licence belongs to someone else"})
    application.refresh_from_db()
    assert application.state == "rejected" and application.review_notes == "licence belongs to someone else"
    decided = client.get("/staff/risk/", {"state": "rejected"})
    assert [r.application.pk for r in decided.context["rows"]] == [application.pk]
    assert decided.context["rows"][0].waiting.startswith("took ")


def test_deciding_before_taking_is_refused_by_the_service_which_says_to_take_the_review_first(
        client, risk_zhao, submitted):
    client.force_login(risk_zhao)
    response = client.post(f"/staff/merchants/review/{submitted[0].pk}/approve/", {"notes": ""}, follow=True)
    assert ("Not approved: the application is submitted and nobody has taken it for review yet; take the review "
            "first, then approve it") in response.content.decode()
    submitted[0].refresh_from_db()
    assert submitted[0].state == "submitted"

"""Returning an application on the review page (/staff/merchants/review/…/return/) with a row whose field is picked
but whose "what to correct" is empty: the page says which row and field lacks its text, on the message and beside the
row, and nothing is returned (design §5: bad input gets a clear error naming the field, nothing partial written) —
even when another row has its text, since the clerk would otherwise never hear of the field picked."""

from __future__ import annotations

import re

import pytest

from merchants.models import OnboardingApplication
from merchants.services.onboarding import application_review_start, application_submit
from tests.merchants.test_workbench_queue import draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_review(clerk_wang, risk_zhao, client):
    application = draft(clerk_wang, 1)
    application_submit(application_id=application.pk, actor=clerk_wang)
    application_review_start(application_id=application.pk, actor=risk_zhao)
    client.force_login(risk_zhao)
    return application


def send_back(client, application, rows: list[tuple[str, str]]):
    data = {"reasons-TOTAL_FORMS": "4", "reasons-INITIAL_FORMS": "0"}
    for i, (field, reason) in enumerate(rows):
        data[f"reasons-{i}-field"], data[f"reasons-{i}-reason"] = field, reason
    return client.post(f"/staff/merchants/review/{application.pk}/return/", data)


def message(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def row(response, number: int) -> str:
    return re.search(rf'<tr data-row="{number}"(.*?)</tr>', response.content.decode(), re.S).group(1)


def test_a_field_picked_without_text_is_named_by_its_row_and_field(client, in_review):
    response = send_back(client, in_review, [("licence_no", "")])

    assert response.status_code == 400
    assert message(response) == ("Not returned: give at least one reason (the field and what to correct): row 1 "
                                 "(Licence number) names a field but not what to correct in it.")
    first = row(response, 1)
    assert 'class="has-error"' in first
    assert "Say what to correct in Licence number, or set the row back to General." in first
    assert 'aria-invalid="true"' in first
    assert "has-error" not in row(response, 2)
    assert OnboardingApplication.objects.get(pk=in_review.pk).state == "risk_review"


def test_another_row_with_its_text_does_not_let_the_empty_one_through(client, in_review):
    """Before, the row with text was returned and the picked field silently dropped."""
    response = send_back(client, in_review, [("settlement_account.account_number", "does not match the bank card"),
                                             ("", ""),
                                             ("documents.store_inside", "   ")])

    assert response.status_code == 400
    assert message(response) == ("Not returned: row 3 (Document: Store inside) names a field but not what to correct "
                                 "in it.")
    assert "has-error" in row(response, 3) and "has-error" not in row(response, 1)
    application = OnboardingApplication.objects.get(pk=in_review.pk)
    assert (application.state, application.returned_reasons) == ("risk_review", [])


def test_every_row_at_fault_is_named(client, in_review):
    response = send_back(client, in_review, [("licence_no", ""), ("stores", "two stores are missing"),
                                             ("scenarios", "")])

    assert message(response) == ("Not returned: row 1 (Licence number) names a field but not what to correct in it; "
                                 "row 3 (Business scenarios) names a field but not what to correct in it.")


def test_text_without_a_field_is_a_general_reason_and_returns(client, in_review):
    response = send_back(client, in_review, [("", "the whole record is a copy of another merchant's")])

    assert response.status_code == 302
    application = OnboardingApplication.objects.get(pk=in_review.pk)
    assert application.state == "returned"
    assert application.returned_reasons == [{"field": "", "reason": "the whole record is a copy of another merchant's"}]

"""Every workbench page checks its permission (design §5 rule 11): clerks work the onboarding pages, risk officers the
review pages, both read a merchant's page, everyone else gets the 403 page, anonymous visitors the login page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages(drafted_tea_house):
    merchant_no = drafted_tea_house.merchant.merchant_no
    document = drafted_tea_house.merchant.documents.first()
    return {
        "clerk queue": "/staff/onboarding/",
        "new merchant": "/staff/merchants/new/",
        "edit merchant": f"/staff/merchants/{merchant_no}/edit/",
        "merchant page": f"/staff/merchants/{merchant_no}/",
        "document": f"/staff/merchants/{merchant_no}/documents/{document.pk}/",
        "review queue": "/staff/risk/",
        "review page": f"/staff/merchants/review/{drafted_tea_house.pk}/",
    }


ALLOWED = {
    "onboarding_clerk": {"clerk queue", "new merchant", "edit merchant", "merchant page", "document"},
    "risk_officer": {"merchant page", "document", "review queue", "review page"},
    "support_agent": set(),
    "operations": set(),
    "finance": set(),
    "admin": set(),
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_opens_only_its_workbench_pages(client, staff_member, pages, role):
    client.force_login(staff_member(role, username=f"{role}-x"))
    for name, path in pages.items():
        response = client.get(path)
        expected = 200 if name in ALLOWED[role] else 403
        assert response.status_code == expected, (role, name)
        if expected == 403:
            assert b"You do not have access to this page" in response.content


def test_anonymous_visitors_are_sent_to_sign_in(client, pages):
    for path in pages.values():
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/staff/login/?next="), path


def test_a_risk_officer_cannot_post_clerk_actions(client, risk_zhao, drafted_tea_house):
    client.force_login(risk_zhao)
    merchant_no = drafted_tea_house.merchant.merchant_no
    assert client.post(f"/staff/merchants/{merchant_no}/submit/").status_code == 403
    assert client.post("/staff/merchants/bulk-submit/", {"application": [drafted_tea_house.pk]}).status_code == 403
    drafted_tea_house.refresh_from_db()
    assert drafted_tea_house.state == "draft"


def test_a_clerk_cannot_decide_a_review(client, clerk_wang, drafted_tea_house):
    client.force_login(clerk_wang)
    client.post(f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/submit/")
    for decision in ("take", "approve", "return", "reject"):
        response = client.post(f"/staff/merchants/review/{drafted_tea_house.pk}/{decision}/", {"reason": "x"})
        assert response.status_code == 403, decision
    drafted_tea_house.refresh_from_db()
    assert drafted_tea_house.state == "submitted"


def test_the_clerk_merchant_page_offers_actions_the_risk_officer_does_not_get(client, clerk_wang, risk_zhao,
                                                                            drafted_tea_house):
    path = f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/"
    client.force_login(clerk_wang)
    html = client.get(path).content.decode()
    assert 'id="submit-application"' in html and "Edit record" in html
    client.force_login(risk_zhao)
    html = client.get(path).content.decode()
    assert 'id="submit-application"' not in html and "Edit record" not in html
    assert 'name="doc_type"' not in html  # no upload form without change permission

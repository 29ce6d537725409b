"""The staff shell in a real browser: sign in per role, the nav shows that role's sections, others give 403."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from aggpay.roles import ROLES
from merchants.services.onboarding import merchant_onboard_draft
from tests.merchants.records import licence_no, record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def nav_sections(page) -> list[str]:
    return page.locator("aside [data-section]").evaluate_all("els => els.map(e => e.dataset.section)")


@pytest.mark.parametrize("role", ROLES, ids=[role.slug for role in ROLES])
def test_each_role_signs_in_and_sees_only_its_sections(sign_in, staff_member, live_server, role):
    staff_member(role.slug, username=f"{role.slug}-b")
    page = sign_in(f"{role.slug}-b")

    assert nav_sections(page) == [role.section]
    assert page.locator(".topbar .badge.role").inner_text() == f"{role.label_zh} · {role.label}"

    own = page.goto(f"{live_server.url}/staff/{role.section}/")
    assert own.status == 200
    forbidden = "finance" if role.section != "finance" else "operations"
    response = page.goto(f"{live_server.url}/staff/{forbidden}/")
    assert response.status == 403
    assert page.get_by_role("heading", name="You do not have access to this page").is_visible()


def test_signing_out_returns_to_the_login_page(sign_in, staff_member, live_server):
    staff_member("support_agent", username="sam")
    page = sign_in("sam")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live_server.url + "/staff/login/")
    page.goto(live_server.url + "/staff/support/")
    assert page.url == live_server.url + "/staff/login/?next=/staff/support/"


def test_the_home_page_renders_the_shell(sign_in, staff_member, tmp_path):
    """One screenshot of a two-role user's home page, for a person to look at (saved under pytest's tmp dir)."""
    user = staff_member("onboarding_clerk", username="lin")
    user.groups.add(Group.objects.get(name="admin"))
    for n in range(3):  # three businesses: one licence is onboarded once
        merchant_onboard_draft(actor=user, data=record(licence_no=licence_no(n)))
    page = sign_in("lin")

    assert nav_sections(page) == ["onboarding", "admin"]
    assert page.locator(".section-card").count() == 2
    counts = page.locator(".section-card[data-section=onboarding] .count")
    assert counts.nth(1).inner_text() == "3"  # Drafts (the first queue is "Needs action")
    # Our stylesheet loaded (the sidebar is laid out beside the content, not above it).
    assert page.locator("aside.sidebar").bounding_box()["width"] == 220
    assert page.evaluate("typeof htmx") == "object"

    shot = tmp_path / "staff-home.png"
    page.set_viewport_size({"width": 1366, "height": 800})
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

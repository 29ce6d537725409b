"""Staff shell: sign-in, the home page per role, and every section page permission-checked (design §5 rule 11)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from aggpay.roles import ROLES, SECTIONS
from merchants.services.merchants import merchant_activate, merchant_freeze
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from tests.conftest import STAFF_PASSWORD
from tests.factories import ChannelAccountFactory, MerchantFactory
from tests.merchants.conftest import offer

pytestmark = pytest.mark.django_db

SECTION_PAGES = {section.slug: f"/staff/{section.slug}/" for section in SECTIONS}
ALL_PAGES = ["/staff/", *SECTION_PAGES.values(), "/staff/admin/audit/"]


@pytest.fixture
def signed_in(client, staff_member):
    def sign_in(role: str):
        user = staff_member(role)
        client.force_login(user)
        return user

    return sign_in


def test_the_root_redirects_to_the_staff_home(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/staff/"


@pytest.mark.parametrize("path", ALL_PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/staff/login/?next={path}"


@pytest.mark.parametrize("role", [role.slug for role in ROLES])
def test_each_role_reaches_its_own_section_and_gets_403_on_the_others(client, signed_in, role):
    signed_in(role)
    own = next(r.section for r in ROLES if r.slug == role)
    for slug, path in SECTION_PAGES.items():
        response = client.get(path)
        expected = 200 if slug == own else 403
        assert response.status_code == expected, (role, path)
        if expected == 403:
            assert b"You do not have access to this page" in response.content


def test_a_clerk_cannot_open_finance_or_the_audit_log(client, signed_in):
    signed_in("onboarding_clerk")
    assert client.get("/staff/finance/").status_code == 403
    assert client.get("/staff/admin/audit/").status_code == 403


def test_support_cannot_open_operations(client, signed_in):
    signed_in("support_agent")
    response = client.get("/staff/operations/")
    assert response.status_code == 403
    assert b"aggpay.access_operations" in response.content


def test_the_nav_lists_only_the_sections_of_the_users_roles(client, signed_in):
    signed_in("finance")
    html = client.get("/staff/").content.decode()
    assert 'data-section="finance"' in html
    for other in ("onboarding", "risk", "support", "operations", "admin"):
        assert f'data-section="{other}"' not in html
    assert "财务 · Finance" in html  # the role badge in the top bar


def test_the_clerk_home_counts_applications_by_queue(client, signed_in, drafted_tea_house):
    signed_in("onboarding_clerk")

    queues = {q.label: q.count for s in client.get("/staff/").context["sections"] for q in s["queues"]}

    assert queues == {"Needs action": 0, "Drafts": 1, "Waiting for risk": 0, "In risk review": 0, "Contracting": 0,
                      "Completed": 0}


def contracting_tile(client) -> str:
    """The home page's "Contracting" tile, as rendered."""
    html = client.get("/staff/").content.decode()
    return next(li for li in re.findall(r"<li>.*?</li>", html, flags=re.S) if ">Contracting</a>" in li)


def test_the_contracting_count_is_not_coloured_when_no_application_is_contracting(client, signed_in,
                                                                                  drafted_tea_house):
    signed_in("onboarding_clerk")

    assert re.search(r'<span class="count ">0</span>', contracting_tile(client))


def test_the_contracting_count_is_coloured_when_applications_are_contracting(client, signed_in, risk_zhao,
                                                                             drafted_tea_house):
    clerk = signed_in("onboarding_clerk")
    offer(ChannelAccountFactory(kind="wechatpay", code="wechatpay-isv"), "wechat.native", "0.0038")
    application_submit(application_id=drafted_tea_house.pk, actor=clerk)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)  # its contract is with the channel

    assert re.search(r'<span class="count warn">1</span>', contracting_tile(client))


def test_the_admin_home_counts_todays_audit_entries(local_midday, client, signed_in):
    admin = signed_in("admin")  # creating the user wrote one audit row today
    MerchantFactory()  # a factory row writes none
    response = client.get("/staff/")
    queues = {q.label: q.count for s in response.context["sections"] for q in s["queues"]}
    assert queues["Audit entries today"] == 1
    assert queues["Staff users"] == 1
    assert admin.username in response.content.decode()


def test_sections_without_data_say_so_instead_of_showing_numbers(client, signed_in):
    signed_in("finance")
    response = client.get("/staff/")
    (section,) = response.context["sections"]
    assert section["queues"] == []
    assert b"No items yet." in response.content


def test_operations_links_to_the_channel_pages(client, signed_in):
    signed_in("operations")
    assert b'href="/staff/channels/"' in client.get("/staff/operations/").content


def test_the_risk_page_lists_frozen_merchants(client, signed_in):
    merchant = MerchantFactory(short_name="Suspicious Shop")
    MerchantFactory(short_name="Calm Shop")
    merchant_activate(merchant_id=merchant.pk, actor=None, reason="test")
    merchant_freeze(merchant_id=merchant.pk, actor=None, reason="chargebacks")
    signed_in("risk_officer")
    response = client.get("/staff/risk/")
    assert [m.short_name for m in response.context["frozen"]] == ["Suspicious Shop"]


def test_the_admin_page_lists_staff_users_with_their_roles(client, signed_in, staff_member):
    signed_in("admin")
    staff_member("finance", username="fiona")
    html = client.get("/staff/admin/").content.decode()
    assert "fiona" in html
    assert "财务 · Finance" in html


def test_staff_sign_in_with_the_login_form_and_land_on_home(client, staff_member):
    staff_member("support_agent", username="sam")
    response = client.post("/staff/login/", {"username": "sam", "password": STAFF_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/staff/"
    assert client.get("/staff/support/").status_code == 200


def test_accounts_that_are_not_staff_cannot_sign_in(client, django_user_model):
    django_user_model.objects.create_user("outsider", password=STAFF_PASSWORD, is_staff=False)
    response = client.post("/staff/login/", {"username": "outsider", "password": STAFF_PASSWORD})
    assert response.status_code == 200
    assert b"no access to the back office" in response.content
    assert client.get("/staff/").status_code == 302


def test_an_account_whose_staff_status_is_taken_away_loses_the_workbench_at_once(client, signed_in, staff_member):
    from aggpay.staff.services import staff_user_update

    agent = signed_in("support_agent")
    assert client.get("/staff/support/").status_code == 200

    staff_user_update(actor=staff_member("admin"), user_id=agent.pk, changes={"is_staff": False})

    # The session is still valid (only deactivation ends it); the pages must not be, as in the Django admin.
    for path in ("/staff/", "/staff/support/", "/staff/trades/"):
        assert client.get(path).status_code == 403, path


def test_signing_out_needs_a_post(client, signed_in):
    signed_in("finance")
    assert client.get(reverse("staff:logout")).status_code == 405
    response = client.post(reverse("staff:logout"))
    assert response.status_code == 302
    assert client.get("/staff/").status_code == 302


def test_a_user_without_a_role_sees_an_empty_home_and_403_everywhere_else(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("newbie", password=STAFF_PASSWORD, is_staff=True))
    response = client.get("/staff/")
    assert response.status_code == 200
    assert b"You have no role yet" in response.content
    for path in SECTION_PAGES.values():
        assert client.get(path).status_code == 403


def test_the_cbv_mixin_redirects_anonymous_users_and_refuses_other_roles(rf, staff_member):
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse
    from django.views import View

    from aggpay.roles import SectionRequiredMixin

    class ChannelList(SectionRequiredMixin, View):
        section = "operations"

        def get(self, request):
            return HttpResponse("channels")

    def call(user):
        request = rf.get("/staff/channels/")
        request.user = user
        return ChannelList.as_view()(request)

    anonymous = call(AnonymousUser())
    assert (anonymous.status_code, anonymous["Location"]) == (302, "/staff/login/?next=/staff/channels/")
    assert call(staff_member("finance")).status_code == 403
    allowed = call(staff_member("operations"))
    assert (allowed.status_code, allowed.content) == (200, b"channels")


def test_the_permission_mixin_needs_every_listed_permission(rf, staff_member):
    from django.http import HttpResponse
    from django.views import View

    from aggpay.roles import PermissionRequired403Mixin

    class AuditExport(PermissionRequired403Mixin, View):
        permission_required = ("aggpay.access_admin", "aggpay.view_audit")

        def get(self, request):
            return HttpResponse("csv")

    def call(user):
        request = rf.get("/x/")
        request.user = user
        return AuditExport.as_view()(request)

    assert call(staff_member("admin")).status_code == 200
    assert call(staff_member("risk_officer")).status_code == 403

"""The clerk's queue: tabs with counts per state, filters, search, paging, the "needs action" view and bulk submit
with an outcome per row (issue 4 "Clerk workbench")."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.models import OnboardingApplication
from merchants.services.contracts import contract_apply_result
from merchants.services.onboarding import (
    application_approve,
    application_return,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from tests.merchants.records import licence_no, png, record

pytestmark = pytest.mark.django_db

DOCS = ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside")


def licence(n: int) -> str:
    return licence_no(n)


def draft(clerk, n: int, *, documents=DOCS, **changes) -> OnboardingApplication:
    application = merchant_onboard_draft(actor=clerk, data=record(
        legal_name=f"杭州茶馆{n}号有限公司", short_name=f"茶馆{n}", licence_no=licence(n),
        settlement_account={**record()["settlement_account"], "account_holder": f"杭州茶馆{n}号有限公司"},
        **changes))
    for doc_type in documents:
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{n}-{doc_type}.png"))
    return application


def merchant_nos(response) -> list[str]:
    return [row.merchant.merchant_no for row in response.context["rows"]]


def test_the_tabs_count_applications_per_state(client, clerk_wang, risk_zhao):
    drafts = [draft(clerk_wang, n) for n in range(3)]
    application_submit(application_id=drafts[0].pk, actor=clerk_wang)
    application_submit(application_id=drafts[1].pk, actor=clerk_wang)
    application_review_start(application_id=drafts[1].pk, actor=risk_zhao)
    client.force_login(clerk_wang)

    response = client.get("/staff/onboarding/")
    tabs = {value: n for value, _label, n in response.context["tabs"]}
    assert tabs["draft"] == 1 and tabs["submitted"] == 1 and tabs["risk_review"] == 1 and tabs["completed"] == 0
    assert response.context["total"] == 3
    html = response.content.decode()
    assert 'data-tab="draft"' in html and "Risk review" in html

    response = client.get("/staff/onboarding/", {"state": "draft"})
    assert merchant_nos(response) == [drafts[2].merchant.merchant_no]


def test_search_finds_by_merchant_no_name_and_licence_number(client, clerk_wang):
    a, b = draft(clerk_wang, 1), draft(clerk_wang, 2)
    client.force_login(clerk_wang)
    assert merchant_nos(client.get("/staff/onboarding/", {"q": a.merchant.merchant_no})) == [a.merchant.merchant_no]
    assert merchant_nos(client.get("/staff/onboarding/", {"q": "茶馆2"})) == [b.merchant.merchant_no]
    assert merchant_nos(client.get("/staff/onboarding/", {"q": licence(1).lower()})) == [a.merchant.merchant_no]


def test_filters_by_subject_product_age_channel_and_contract_state(client, clerk_wang, risk_zhao,
                                                                   onboarding_accounts):
    qr_only = draft(clerk_wang, 1, requested_products=["alipay.qr"])
    wechat = draft(clerk_wang, 2, requested_products=["wechat.native"])
    micro = merchant_onboard_draft(actor=clerk_wang, data=record(
        subject_type="micro", legal_name="王五", short_name="王五小吃", licence_no="",
        legal_person_name="王五", requested_products=["wechat.native"],
        settlement_account={**record()["settlement_account"], "account_type": "personal", "account_holder": "王五"}))
    OnboardingApplication.objects.filter(pk=qr_only.pk).update(updated_at=timezone.now() - dt.timedelta(days=5))
    for application in (wechat,):
        application_submit(application_id=application.pk, actor=clerk_wang)
        application_review_start(application_id=application.pk, actor=risk_zhao)
        application_approve(application_id=application.pk, actor=risk_zhao)  # contracts stay pending: no commit
    client.force_login(clerk_wang)

    def nos(**params):
        return sorted(merchant_nos(client.get("/staff/onboarding/", params)))

    assert nos(subject_type="micro") == [micro.merchant.merchant_no]
    assert nos(product="alipay.qr") == [qr_only.merchant.merchant_no]
    assert nos(product="wechat.native") == sorted([wechat.merchant.merchant_no, micro.merchant.merchant_no])
    assert nos(age="3to7d") == [qr_only.merchant.merchant_no]
    assert qr_only.merchant.merchant_no not in nos(age="lt1d")
    assert nos(channel_account="wechatpay-isv") == [wechat.merchant.merchant_no]
    assert nos(channel_account="bank-a", contract_state="pending") == [wechat.merchant.merchant_no]
    assert nos(channel_account="bank-a", contract_state="active") == []
    # A stale or mistyped filter is ignored rather than emptying the queue.
    assert len(nos(product="no.such.product")) == 3


def test_the_queue_is_paginated_oldest_change_first(client, clerk_wang):
    applications = [draft(clerk_wang, n, documents=()) for n in range(27)]
    OnboardingApplication.objects.filter(pk=applications[-1].pk).update(
        updated_at=timezone.now() - dt.timedelta(days=9))
    client.force_login(clerk_wang)
    first = client.get("/staff/onboarding/")
    assert len(first.context["rows"]) == 25
    assert first.context["rows"][0].merchant.merchant_no == applications[-1].merchant.merchant_no
    assert first.context["rows"][0].tone == "bad"  # over a week in the same state
    assert "Page 1 of 2" in first.content.decode()
    assert len(client.get("/staff/onboarding/", {"page": 2}).context["rows"]) == 2


def test_bulk_submit_reports_an_outcome_per_row(client, clerk_wang):
    complete = draft(clerk_wang, 1)
    incomplete = draft(clerk_wang, 2, documents=("licence",))
    client.force_login(clerk_wang)

    response = client.post("/staff/merchants/bulk-submit/", {
        "application": [complete.pk, incomplete.pk], "next": "/staff/onboarding/?state=draft"})
    assert response.status_code == 302 and response["Location"] == "/staff/onboarding/?state=draft"
    complete.refresh_from_db()
    incomplete.refresh_from_db()
    assert complete.state == "submitted" and incomplete.state == "draft"

    page = client.get(response["Location"])
    results = page.context["bulk_results"]
    assert results["done"] == 1 and results["failed"] == 1
    outcome = {row["merchant_no"]: (row["ok"], row["message"]) for row in results["rows"]}
    assert outcome[complete.merchant.merchant_no] == (True, "submitted for risk review")
    assert outcome[incomplete.merchant.merchant_no][0] is False
    assert "documents missing: bank_card" in outcome[incomplete.merchant.merchant_no][1]
    html = page.content.decode()
    assert "1 submitted" in html and "1 not submitted" in html
    # Shown once: the next visit has no stale results.
    assert client.get("/staff/onboarding/").context["bulk_results"] is None


def test_bulk_submit_ignores_a_next_url_off_this_site(client, clerk_wang):
    application = draft(clerk_wang, 1)
    client.force_login(clerk_wang)
    response = client.post("/staff/merchants/bulk-submit/", {"application": [application.pk],
                                                              "next": "https://evil.example/"})
    assert response["Location"] == "/staff/onboarding/"


def test_needs_action_lists_returned_applications_and_contracts_waiting_on_someone(
        client, clerk_wang, risk_zhao, onboarding_accounts):
    returned = draft(clerk_wang, 1)
    application_submit(application_id=returned.pk, actor=clerk_wang)
    application_review_start(application_id=returned.pk, actor=risk_zhao)
    application_return(application_id=returned.pk, actor=risk_zhao,
                       reasons=[{"field": "licence_no", "reason": "licence number unreadable"}])
    approved = draft(clerk_wang, 2, requested_products=["wechat.native"])
    application_submit(application_id=approved.pk, actor=clerk_wang)
    application_review_start(application_id=approved.pk, actor=risk_zhao)
    application_approve(application_id=approved.pk, actor=risk_zhao)
    contracts = {c.channel_account.code: c for c in approved.contracts.all()}
    for code, answer in (("wechatpay-isv", OnboardingResult(state=OnboardingState.TO_BE_SIGNED,
                                                              sign_url="https://pay.weixin.qq.com/sign/abc")),
                         ("bank-a", OnboardingResult(state=OnboardingState.REJECTED, message="资料不全",
                                                     rejections=[{"field": "bank_card", "reason": "银行卡照片模糊"}]))):
        contract_apply_result(contract_id=contracts[code].pk, source="channel", submitting=True,
                              result=OnboardingResult(state=OnboardingState.SUBMITTED, application_id=f"{code}-1"))
        contract_apply_result(contract_id=contracts[code].pk, source="channel", result=answer)
    client.force_login(clerk_wang)

    response = client.get("/staff/onboarding/", {"view": "action"})
    assert response.context["action_count"] == 3
    assert [a.pk for a, _reasons in response.context["returned"]] == [returned.pk]
    assert sorted(c.state for c in response.context["action_contracts"]) == ["rejected", "to_be_signed"]
    html = response.content.decode()
    assert "<strong>Licence number</strong>: licence number unreadable" in html and "银行卡照片模糊" in html
    assert "https://pay.weixin.qq.com/sign/abc" in html
    home = client.get("/staff/")
    queues = {q.label: q.count for s in home.context["sections"] for q in s["queues"]}
    assert queues["Needs action"] == 3 and queues["Contracting"] == 1


def test_the_risk_officer_home_counts_the_review_queue(client, clerk_wang, risk_zhao):
    late = draft(clerk_wang, 1)
    application_submit(application_id=late.pk, actor=clerk_wang)
    OnboardingApplication.objects.filter(pk=late.pk).update(submitted_at=timezone.now() - dt.timedelta(hours=30))
    application_submit(application_id=draft(clerk_wang, 2).pk, actor=clerk_wang)
    client.force_login(risk_zhao)
    queues = {q.label: q.count for s in client.get("/staff/").context["sections"] for q in s["queues"]}
    assert queues["Applications waiting for review"] == 2
    assert queues["Over the review SLA"] == 1



def test_searching_by_merchant_no_or_name_offers_merchants_without_an_application(client, clerk_wang):
    from tests.factories import MerchantFactory

    demo = MerchantFactory(short_name="Demo Tea", legal_name="Demo Tea House Ltd")
    draft(clerk_wang, 1)
    client.force_login(clerk_wang)

    for q in (demo.merchant_no, "demo tea"):
        response = client.get("/staff/onboarding/", {"q": q})
        assert [m.merchant_no for m in response.context["merchant_matches"]] == [demo.merchant_no]
        assert response.context["rows"] == []  # it has no application to list
        assert f'href="/staff/merchants/{demo.merchant_no}/"' in response.content.decode()
    assert client.get(f"/staff/merchants/{demo.merchant_no}/").status_code == 200
    assert 'id="merchant-matches"' not in client.get("/staff/onboarding/").content.decode()

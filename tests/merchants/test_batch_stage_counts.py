"""The stage counts of the clerk's home tiles and of the batch page say where the merchants are: an application
completes with its first active contract (design §4), but while another of its merchant's contracts is still in
flight — WeChat Pay waiting for the merchant to sign, say — the merchant is still contracting. Found by an onboarding
clerk's trial: risk approved a batch of 10, Alipay activated them, WeChat still waited for the signatures, and the
tiles said "Contracting 0 / Completed 10". Both pages read the stages in a fixed number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.batch.examples import documents_zip, example_rows
from merchants.models import ApplicationState, ImportJob, OnboardingApplication
from merchants.services.contracts import contract_apply_result
from merchants.services.onboarding import application_approve, application_review_start
from tests.merchants.test_batch_pages import INDEX, post_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk_client(client, staff_member):
    client.force_login(staff_member("onboarding_clerk", username="lin.clerk"))
    return client


def approve(application: OnboardingApplication, risk) -> None:
    application_review_start(application_id=application.pk, actor=risk)
    application_approve(application_id=application.pk, actor=risk)


def answer(application: OnboardingApplication, *, wechat: str) -> None:
    """The channels' answers: every contract but WeChat's goes active; WeChat's answers ``wechat``."""
    for contract in application.contracts.select_related("channel_account").order_by("id"):
        contract_apply_result(contract_id=contract.pk, source="channel", submitting=True, result=OnboardingResult(
            state=OnboardingState.SUBMITTED, application_id=f"app-{contract.pk}"))
        state = wechat if contract.channel_account.kind == "wechatpay" else OnboardingState.FINISHED
        if state != OnboardingState.SUBMITTED:
            contract_apply_result(contract_id=contract.pk, source="channel", result=OnboardingResult(
                state=state, sub_mchid=f"sub-{contract.pk}" if state == OnboardingState.FINISHED else "",
                sign_url="https://pay.weixin.qq.com/sign/x" if state == OnboardingState.TO_BE_SIGNED else ""))


@pytest.fixture
def contracting_batch(clerk_client, risk_zhao, onboarding_accounts):
    """A batch of four merchants approved by risk: WeChat waits for the signature of two, is still reviewing the
    third, and signed the fourth; every other contract is active."""
    rows = example_rows(4)
    post_upload(clerk_client, rows, documents=documents_zip(rows))
    job = ImportJob.objects.get()
    clerk_client.post(f"{INDEX}{job.pk}/confirm/")
    clerk_client.post(f"{INDEX}{job.pk}/submit/", {"all": "1"})
    applications = [row.application for row in job.rows.select_related("application").order_by("row_number")]
    for application, wechat in zip(applications, (OnboardingState.TO_BE_SIGNED, OnboardingState.TO_BE_SIGNED,
                                                  OnboardingState.SUBMITTED, OnboardingState.FINISHED), strict=True):
        approve(application, risk_zhao)
        answer(application, wechat=wechat)
    assert set(OnboardingApplication.objects.values_list("state", flat=True)) == {ApplicationState.COMPLETED}
    return job


def tiles(client) -> dict:
    return {q.label: q.count for s in client.get("/staff/").context["sections"] for q in s["queues"]}


def test_the_home_tiles_count_a_merchant_still_signing_with_wechat_as_contracting(client, contracting_batch,
                                                                                   clerk_wang):
    client.force_login(clerk_wang)
    counts = tiles(client)
    assert (counts["Contracting"], counts["Completed"]) == (3, 1)


def test_the_clerks_queue_lists_and_counts_each_stage_as_the_tiles_do(client, contracting_batch, clerk_wang):
    """A tile's count is the rows its link opens (/staff/onboarding/?state=…): the queue's tabs and lists read the
    stages as the tiles do."""
    client.force_login(clerk_wang)
    merchants = {stage: {row.application.merchant.merchant_no for row in client.get(
        "/staff/onboarding/", {"state": stage}).context["rows"]} for stage in ("contracting", "completed")}
    signed = contracting_batch.rows.get(row_number=5).application.merchant.merchant_no  # the fourth: WeChat signed
    assert len(merchants["contracting"]) == 3 and merchants["completed"] == {signed}
    tabs = {value: count for value, _label, count in client.get("/staff/onboarding/").context["tabs"]}
    assert (tabs["contracting"], tabs["completed"]) == (3, 1) == (len(merchants["contracting"]),
                                                                  len(merchants["completed"]))


def test_a_merchant_whose_last_contract_is_refused_is_completed(client, contracting_batch, clerk_wang):
    pending = contracting_batch.rows.get(row_number=4).application  # WeChat still reviewing
    wechat = pending.contracts.get(channel_account__kind="wechatpay")
    contract_apply_result(contract_id=wechat.pk, source="channel",
                          result=OnboardingResult(state=OnboardingState.REJECTED, message="资料不全"))
    client.force_login(clerk_wang)
    counts = tiles(client)
    assert (counts["Contracting"], counts["Completed"]) == (2, 2)


def test_the_batch_page_says_contracting_while_wechat_waits_for_the_signature(clerk_client, contracting_batch):
    page = clerk_client.get(f"{INDEX}{contracting_batch.pk}/").content.decode()
    stages = page[page.index('id="batch-stages"'):]
    stages = stages[:stages.index("</div>")]
    assert 'data-stage="contracting">3<' in stages and 'data-stage="completed">1<' in stages
    drafts = page[page.index('id="drafts"'):]
    assert drafts.count('data-stage="contracting"') == 3 and drafts.count('data-stage="completed"') == 1
    assert drafts.count(": to be signed") == 2 and drafts.count(": submitted") == 1  # which contract, and why


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_batch_page_and_the_home_read_the_stages_in_a_fixed_number_of_queries(
        clerk_client, contracting_batch, risk_zhao):
    url = f"{INDEX}{contracting_batch.pk}/"
    few_batch, few_home = _queries(clerk_client, url), _queries(clerk_client, "/staff/")

    rows = example_rows(9)[4:]  # five more merchants in the same batch's shape, in another batch
    post_upload(clerk_client, rows, documents=documents_zip(rows))
    more = ImportJob.objects.order_by("-id").first()
    clerk_client.post(f"{INDEX}{more.pk}/confirm/")
    clerk_client.post(f"{INDEX}{more.pk}/submit/", {"all": "1"})
    for row in more.rows.select_related("application"):
        approve(row.application, risk_zhao)
        answer(row.application, wechat=OnboardingState.TO_BE_SIGNED)

    assert _queries(clerk_client, f"{INDEX}{more.pk}/") == few_batch  # five merchants as four
    assert _queries(clerk_client, "/staff/") == few_home  # nine merchants as four

"""The merchant page: the masked record, documents served only to permitted staff, the application's and each
contract's timeline, and the next actions — submit, resubmit, refresh from the channel, sign URL/QR, the API secret
shown once."""

from __future__ import annotations

import re

import pytest
import requests

from aggpay.audit import audit_log
from aggpay.models import AuditLog
from channels.adapters.base import OnboardingResult, OnboardingState
from channels.models import ChannelAccount
from channels.simulators import wechatpay as wechat_sim
from merchants.models import ContractState, MerchantApp
from merchants.services.apps import merchant_app_create
from merchants.services.contracts import contract_apply_result, contract_set_rate
from merchants.services.onboarding import (
    application_approve,
    application_review_start,
    application_submit,
)
from tests.merchants.conftest import offer
from tests.merchants.records import ID_NUMBER, png

pytestmark = pytest.mark.django_db

RAW_PII = (ID_NUMBER, "13800138000", "571234567890123", "li.si@example.com", "张三", "李四")


def approve(application, clerk, risk):
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    return application_approve(application_id=application.pk, actor=risk, notes="scenario checked")


def answer(contract, state, **fields):
    return contract_apply_result(contract_id=contract.pk, source="channel",
                                 result=OnboardingResult(state=state, **fields))


def test_no_page_shows_pii_unmasked(client, clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts):
    merchant_no = drafted_tea_house.merchant.merchant_no
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    pages = {clerk_wang: ["/staff/onboarding/", "/staff/onboarding/?view=action", f"/staff/merchants/{merchant_no}/"],
             risk_zhao: ["/staff/risk/", f"/staff/merchants/review/{drafted_tea_house.pk}/",
                         f"/staff/merchants/{merchant_no}/"]}
    for user, paths in pages.items():
        client.force_login(user)
        for path in paths:
            html = client.get(path).content.decode()
            for value in RAW_PII:
                assert value not in html, (path, value)
    client.force_login(clerk_wang)
    html = client.get(f"/staff/merchants/{merchant_no}/").content.decode()
    assert "110105********002X" in html and "138****8000" in html and "***********0123" in html
    assert "l****@example.com" in html and "张*" in html


def test_documents_are_served_to_staff_with_permission_only(client, clerk_wang, risk_zhao, staff_member,
                                                            drafted_tea_house):
    document = drafted_tea_house.merchant.documents.get(doc_type="licence")
    path = f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/documents/{document.pk}/"
    client.force_login(risk_zhao)
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png" and response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    client.force_login(staff_member("support_agent"))
    assert client.get(path).status_code == 403
    client.force_login(clerk_wang)
    other = f"/staff/merchants/M000000000000/documents/{document.pk}/"
    assert client.get(other).status_code == 404  # a document is reached only through its own merchant
    page = client.get(f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/").content.decode()
    assert f'src="{path}"' in page  # thumbnails come from the permission-checked view


def test_a_clerk_submits_from_the_merchant_page_and_missing_documents_are_named(client, clerk_wang,
                                                                                drafted_tea_house):
    merchant = drafted_tea_house.merchant
    merchant.documents.filter(doc_type="bank_card").delete()
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()
    assert "Upload the missing documents first: Bank card / account permit" in page

    response = client.post(f"/staff/merchants/{merchant.merchant_no}/submit/", follow=True)
    assert "Not submitted: documents missing: bank_card" in response.content.decode()
    drafted_tea_house.refresh_from_db()
    assert drafted_tea_house.state == "draft"

    upload = client.post(f"/staff/merchants/{merchant.merchant_no}/documents/", {
        "doc_type": "bank_card", "file": png("card.png")})
    assert upload.status_code == 302
    response = client.post(f"/staff/merchants/{merchant.merchant_no}/submit/", follow=True)
    assert "submitted for risk review" in response.content.decode()
    drafted_tea_house.refresh_from_db()
    assert drafted_tea_house.state == "submitted"


def test_the_timelines_show_every_step_and_the_channels_answers(client, clerk_wang, risk_zhao, drafted_tea_house,
                                                                onboarding_accounts):
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    contracts = {c.channel_account.code: c for c in application.contracts.all()}
    wechat, bank = contracts["wechatpay-isv"], contracts["bank-a"]
    contract_apply_result(contract_id=wechat.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.SUBMITTED, application_id="2000001"))
    answer(wechat, OnboardingState.AUDITING, message="审核中")
    answer(wechat, OnboardingState.REJECTED, message="资料有误",
           rejections=[{"field": "license_copy", "reason": "营业执照照片模糊"}])
    contract_apply_result(contract_id=bank.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.SUBMITTED, application_id="B-77"))
    answer(bank, OnboardingState.FINISHED, sub_mchid="BANKMCH0001", message="已开通")
    client.force_login(clerk_wang)

    response = client.get(f"/staff/merchants/{application.merchant.merchant_no}/")
    html = response.content.decode()
    cards = {c["contract"].channel_account.code: c for c in response.context["contracts"]}
    wechat_steps = [(e.from_state, e.to_state) for e in cards["wechatpay-isv"]["timeline"]]
    assert wechat_steps == [("", "pending"), ("pending", "submitted"), ("submitted", "auditing"),
                            ("auditing", "rejected")]
    assert "营业执照照片模糊" in html and "license_copy" in html
    assert cards["wechatpay-isv"]["can_resubmit"] and not cards["wechatpay-isv"]["can_refresh"]
    assert "BANKMCH0001" in html and cards["bank-a"]["contract"].state == ContractState.ACTIVE
    rates = {r["product"]: r for r in cards["bank-a"]["rates"]}
    assert rates["wechat.native"]["rate"] == "0.38%" and rates["wechat.native"]["cost"] == "0.20%"
    titles = [e.title for e in response.context["timeline"]]
    assert titles[:2] == ["Drafted", "6 documents added"]  # one line for the batch of uploads
    assert "Business licence, ID card (portrait side)" in html
    for step in ("Submitted for risk review", "Taken for review", "Approved", "Contracts created",
                 "Completed (first contract active)", "Merchant activated"):
        assert step in titles
    assert "scenario checked" in html  # the approval notes


def test_the_sign_url_is_shown_with_a_qr_code(client, clerk_wang, risk_zhao, drafted_tea_house,
                                              onboarding_accounts):
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    wechat = application.contracts.get(channel_account__code="wechatpay-isv")
    sign_url = "https://pay.weixin.qq.com/public/apply4ec_sign/s?applymentId=2000001&sign=abc"
    contract_apply_result(contract_id=wechat.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.SUBMITTED, application_id="2000001"))
    answer(wechat, OnboardingState.TO_BE_SIGNED, sign_url=sign_url, sub_mchid="1900000109")
    client.force_login(clerk_wang)
    html = client.get(f"/staff/merchants/{application.merchant.merchant_no}/").content.decode()
    sign_box = html[html.index('data-role="sign"'):]
    assert "<svg" in sign_box[:400] and "The merchant must sign" in sign_box
    assert sign_url.replace("&", "&amp;") in sign_box
    svg = client.get(f"/staff/merchants/{application.merchant.merchant_no}/contracts/{wechat.pk}/sign-qr.svg")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content


def test_refresh_from_channel_follows_the_real_channel(client, clerk_wang, risk_zhao, drafted_tea_house,
                                                       simulator_server, django_capture_on_commit_callbacks):
    root = simulator_server.base_url
    account = ChannelAccount.objects.create(code="wechatpay-isv", kind="wechatpay", name="WeChat Pay ISV",
                                            base_url=f"{root}/wechatpay", enabled=True,
                                            config=wechat_sim.provision(root, name="h9-refresh"))
    offer(account, "wechat.native", "0.0038")
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    with django_capture_on_commit_callbacks(execute=True):  # Celery (eager) submits to the simulator
        application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
    contract = drafted_tea_house.contracts.get()
    assert contract.state in (ContractState.SUBMITTED, ContractState.AUDITING)
    merchant_no = drafted_tea_house.merchant.merchant_no
    client.force_login(clerk_wang)

    requests.post(f"{root}/wechatpay/_control/applications/{contract.channel_application_id}",
                  json={"action": "ask_sign"}, timeout=5).raise_for_status()
    refresh = f"/staff/merchants/{merchant_no}/contracts/{contract.pk}/refresh/"
    response = client.post(refresh, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<section class="card contract-card" id="contract-{contract.pk}"')
    assert 'data-state="to_be_signed"' in html and "<svg" in html and "/_payer/sign?applyment_id=" in html
    assert "→ to_be_signed" in html  # the outcome message inside the swapped card
    asked = AuditLog.objects.get(action="merchants.contract.staff_refreshed")  # who asked, and what came of it
    assert asked.actor == clerk_wang and asked.data["to"] == "to_be_signed"

    requests.post(f"{root}/wechatpay/_control/applications/{contract.channel_application_id}",
                  json={"action": "finish"}, timeout=5).raise_for_status()
    response = client.post(refresh, follow=True)
    contract.refresh_from_db()
    assert contract.state == ContractState.ACTIVE and contract.sub_mchid
    assert contract.sub_mchid in response.content.decode()
    assert response.context["merchant"].state == "active"


def test_a_rejected_contract_is_resubmitted_from_its_card(client, clerk_wang, risk_zhao, drafted_tea_house,
                                                          onboarding_accounts):
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    bank = application.contracts.get(channel_account__code="bank-a")
    contract_apply_result(contract_id=bank.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.REJECTED, message="资料不全",
                                                  rejections=[{"field": "bank_card", "reason": "照片模糊"}]))
    client.force_login(clerk_wang)
    merchant_no = application.merchant.merchant_no
    html = client.get(f"/staff/merchants/{merchant_no}/").content.decode()
    assert f'/staff/merchants/{merchant_no}/contracts/{bank.pk}/resubmit/' in html
    assert 'name="doc_type"' in html  # a new picture can be uploaded to fix the rejection

    response = client.post(f"/staff/merchants/{merchant_no}/contracts/{bank.pk}/resubmit/", follow=True)
    # Bank A's gateway in these fixtures does not answer: the resubmission is recorded and retried later.
    assert response.status_code == 200
    assert AuditLog.objects.filter(action="merchants.contract.resubmit_requested", actor=clerk_wang).count() == 1
    bank.refresh_from_db()
    assert "submission unanswered" in bank.events.last().message


def test_the_payments_secret_is_shown_once(client, clerk_wang, risk_zhao, drafted_tea_house):
    app, _ = merchant_app_create(merchant=drafted_tea_house.merchant, actor=None, scopes=["payments"],
                                 name="payments")
    path = f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/apps/{app.app_id}/reveal/"
    client.force_login(risk_zhao)
    assert client.post(path).status_code == 403
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{drafted_tea_house.merchant.merchant_no}/").content.decode()
    assert f'id="reveal-{app.app_id}"' in page and app.secret not in page

    first = client.post(path)
    assert first.status_code == 200 and first["Cache-Control"] == "private, no-store"
    assert re.search(rf'id="app-secret">{re.escape(app.secret)}<', first.content.decode())
    second = client.post(path, follow=True)
    assert app.secret not in second.content.decode()
    assert "was already shown" in second.content.decode()
    assert MerchantApp.objects.get(pk=app.pk).secret_revealed_at is not None
    assert AuditLog.objects.filter(action="merchants.app.secret_revealed").count() == 1


def test_a_contracts_timeline_tells_what_the_system_did_from_what_staff_did(client, clerk_wang, risk_zhao,
                                                                             drafted_tea_house, onboarding_accounts):
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    bank = application.contracts.get(channel_account__code="bank-a")
    contract_set_rate(contract_id=bank.pk, actor=clerk_wang, product="unionpay.qr", rate="0.0030")
    # The row the contract poller writes when it sends a lost submission again (no person involved).
    audit_log(actor=None, action="merchants.contract.submission_resent", target=bank,
              data={"business_code": bank.business_code, "resend_of": None, "channel_answer": "NOT_FOUND"})
    client.force_login(clerk_wang)

    response = client.get(f"/staff/merchants/{application.merchant.merchant_no}/")

    card = {c["contract"].channel_account.code: c for c in response.context["contracts"]}["bank-a"]
    audited = {e.message: (e.source, e.actor) for e in card["timeline"] if not e.to_state}
    assert audited == {"rate changed": ("staff", "wang.clerk"), "submission resent": ("system", "system")}
    items = {re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", item)).strip()
             for item in re.findall(r"<li[^>]*>(.*?)</li>", response.content.decode(), flags=re.S)
             if "submission resent" in item or "rate changed" in item}
    assert {re.sub(r"^\S+ \S+ · ", "", item) for item in items} == {
        "staff · wang.clerk Staff rate changed", "system System submission resent"}


def test_an_active_contract_is_suspended_only_with_a_reason(client, clerk_wang, risk_zhao, drafted_tea_house,
                                                            onboarding_accounts):
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    bank = application.contracts.get(channel_account__code="bank-a")
    contract_apply_result(contract_id=bank.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.FINISHED, sub_mchid="BANKMCH0002"))
    path = f"/staff/merchants/{application.merchant.merchant_no}/contracts/{bank.pk}/suspend/"
    client.force_login(clerk_wang)

    response = client.post(path, {"reason": ""}, follow=True)
    assert "Not suspended: a reason is required" in response.content.decode()
    bank.refresh_from_db()
    assert bank.state == ContractState.ACTIVE

    client.post(path, {"reason": "merchant closed the shop for renovation"})
    bank.refresh_from_db()
    assert bank.state == ContractState.SUSPENDED
    html = client.get(f"/staff/merchants/{application.merchant.merchant_no}/").content.decode()
    assert "merchant closed the shop for renovation" in html  # in the contract's timeline
    assert client.post(f"/staff/merchants/{application.merchant.merchant_no}/contracts/{bank.pk}/explode/",
                       {"reason": "x"}).status_code == 404

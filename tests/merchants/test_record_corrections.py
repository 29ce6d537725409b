"""Correcting the record after a channel rejected a contract (design §4: a rejected contract is corrected and
resubmitted; issue 4 "Flow"). The clerk edits the approved merchant's record with the same checks and audit as a
draft, then resubmits just that contract. What risk approved the merchant as stays as it is, the settlement account
moves only while no other channel has it, and a risk rejection stays final (docs/api.md: "cannot be corrected or
resubmitted")."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from channels.adapters.base import OnboardingResult, OnboardingState
from channels.models import ChannelAccount
from channels.simulators import wechatpay as wechat_sim
from merchants.batch.examples import resident_id, uscc
from merchants.models import ApplicationState, ContractState, Merchant
from merchants.services.contracts import contract_apply_result, contract_poll
from merchants.services.onboarding import (
    application_approve,
    application_reject,
    application_review_start,
    application_submit,
    merchant_record_correct,
)
from tests.merchants.conftest import offer
from tests.merchants.records import record
from tests.merchants.test_workbench_form import form_data

pytestmark = pytest.mark.django_db

NEW_NUMBER = "6222000011112222333"
APPROVED_PRODUCTS = record()["requested_products"]


def approve(application, clerk, risk):
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    return application_approve(application_id=application.pk, actor=risk, notes="real tea house")


def answer(contract, state, **fields):
    contract.refresh_from_db()
    return contract_apply_result(contract_id=contract.pk, source="channel", submitting=contract.state == "pending",
                                 result=OnboardingResult(state=state, **fields))


def edit_form(**changes) -> dict:
    """The edit form as the browser posts it for the drafted Tea House: PII left empty keeps what is stored."""
    return form_data(requested_products=APPROVED_PRODUCTS, legal_person_id_number="", contact_phone="",
                     contact_email="", **{"settlement_account-account_number": "", "stores-INITIAL_FORMS": "1",
                                          "scenarios-INITIAL_FORMS": "1", **changes})


@pytest.fixture
def wechat_rejected_bank_active(clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts):
    """Tea House approved; Bank A opened it, WeChat Pay refused it (its contract is rejected), Alipay not yet sent."""
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    contracts = {c.channel_account.code: c for c in application.contracts.all()}
    answer(contracts["bank-a"], OnboardingState.FINISHED, application_id="B-1", sub_mchid="BANKA0001")
    answer(contracts["wechatpay-isv"], OnboardingState.REJECTED, application_id="2000001",
           rejections=[{"field": "merchant_shortname", "reason": "商户简称与门店招牌不符"}])
    return application


def test_a_clerk_corrects_the_record_a_channel_rejected_and_resubmits_it(
        client, simulator_server, clerk_wang, risk_zhao, drafted_tea_house, django_capture_on_commit_callbacks):
    root = simulator_server.base_url
    wechat = ChannelAccount.objects.create(code="wechatpay-isv", kind="wechatpay", name="WeChat Pay ISV",
                                           base_url=f"{root}/wechatpay", enabled=True,
                                           config=wechat_sim.provision(root, name="corrections-wechat"))
    offer(wechat, "wechat.native", "0.0038")
    with django_capture_on_commit_callbacks(execute=True):  # Celery (eager) submits the contract to WeChat
        application = approve(drafted_tea_house, clerk_wang, risk_zhao)
    contract = application.contracts.get()
    requests.post(f"{root}/wechatpay/_control/applications/{contract.channel_application_id}", timeout=5, json={
        "action": "reject", "reasons": [{"field": "account_number", "reason": "银行账号与开户名不符"}]}
                  ).raise_for_status()
    assert contract_poll(contract_id=contract.pk).state == ContractState.REJECTED
    merchant = application.merchant
    client.force_login(clerk_wang)

    page = client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()
    assert f'href="/staff/merchants/{merchant.merchant_no}/edit/"' in page  # "Correct the record"
    form = client.get(f"/staff/merchants/{merchant.merchant_no}/edit/")
    assert form.status_code == 200 and "银行账号与开户名不符" in form.content.decode()
    saved = client.post(f"/staff/merchants/{merchant.merchant_no}/edit/", edit_form(**{
        "short_name": "西湖茶馆龙井店", "settlement_account-account_number": NEW_NUMBER}))

    assert saved.status_code == 302 and saved["Location"] == f"/staff/merchants/{merchant.merchant_no}/"
    merchant.refresh_from_db()
    assert merchant.short_name == "西湖茶馆龙井店"
    assert merchant.settlement_accounts.get(current=True).account_number == NEW_NUMBER
    application.refresh_from_db()
    assert application.state == ApplicationState.CONTRACTING  # risk's approval stands; nothing to review again
    edited = AuditLog.objects.filter(action="merchants.application.edited", actor=clerk_wang).get()
    assert edited.data == {"from": "contracting", "to": "contracting", "rejected_by": ["wechatpay-isv"],
                           "changes": {"short_name": {"old": "西湖茶馆", "new": "西湖茶馆龙井店"},
                                       "settlement_account.account_number": "(changed)"}}

    client.post(f"/staff/merchants/{merchant.merchant_no}/contracts/{contract.pk}/resubmit/")
    requests.post(f"{root}/wechatpay/_control/applications/{contract.channel_application_id}",
                  json={"action": "finish"}, timeout=5).raise_for_status()
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.ACTIVE
    # WeChat Pay got the corrected record: the sub-merchant is paid to the corrected account.
    assert wechat.adapter().settlement_query(sub_mchid=contract.sub_mchid)["account_number"].endswith("2333")


@pytest.mark.parametrize(("changes", "param"), [
    ({"subject_type": "individual_business"}, "subject_type"),
    ({"licence_no": uscc(area="330106", serial=4242)}, "licence_no"),
    ({"legal_person_id_number": resident_id(area="330106", born=dt.date(1980, 5, 5), serial=7)},
     "legal_person_id_number"),
    ({"requested_products": ["wechat.native"]}, "requested_products"),
    ({"scenarios": [{"type": "store", "name": "龙井路店"},
                    {"type": "website", "name": "官网", "url": "https://teahouse.example.com"}]}, "scenarios"),
])
def test_a_correction_cannot_change_what_risk_approved(clerk_wang, wechat_rejected_bank_active, changes, param):
    merchant = wechat_rejected_bank_active.merchant
    with pytest.raises(InvalidRequest) as refused:
        merchant_record_correct(application_id=wechat_rejected_bank_active.pk, actor=clerk_wang,
                                data=record(short_name="西湖茶馆龙井店", **changes))
    assert refused.value.param == param and "approved by risk" in refused.value.message
    assert Merchant.objects.get(pk=merchant.pk).short_name == "西湖茶馆"  # nothing written
    assert not AuditLog.objects.filter(action="merchants.application.edited").exists()


def test_the_settlement_account_an_active_channel_pays_to_is_not_changed_by_a_correction(
        clerk_wang, wechat_rejected_bank_active):
    merchant = wechat_rejected_bank_active.merchant
    moved = record(short_name="西湖茶馆龙井店",
                   settlement_account={**record()["settlement_account"], "account_number": NEW_NUMBER})
    with pytest.raises(InvalidRequest) as refused:
        merchant_record_correct(application_id=wechat_rejected_bank_active.pk, actor=clerk_wang, data=moved)
    assert refused.value.param == "settlement_account" and "Bank A" in refused.value.message
    merchant.refresh_from_db()
    assert merchant.short_name == "西湖茶馆" and merchant.settlement_accounts.get().account_number != NEW_NUMBER

    # The same correction without moving the account is what WeChat Pay asked for.
    merchant_record_correct(application_id=wechat_rejected_bank_active.pk, actor=clerk_wang,
                            data=record(short_name="西湖茶馆龙井店"))
    assert Merchant.objects.get(pk=merchant.pk).short_name == "西湖茶馆龙井店"


def test_a_store_with_payment_codes_is_not_dropped_by_a_correction(clerk_wang, wechat_rejected_bank_active):
    from trades.models import StoreCode

    merchant = wechat_rejected_bank_active.merchant
    StoreCode.objects.create(merchant=merchant, store=merchant.stores.get(store_no="S001"), batch="B1")
    other_store = record(stores=[{"store_no": "S002", "name": "南山路店", "area_code": "330106",
                                  "address": "南山路2号"}])
    with pytest.raises(InvalidRequest) as refused:
        merchant_record_correct(application_id=wechat_rejected_bank_active.pk, actor=clerk_wang, data=other_store)
    assert refused.value.param == "stores" and "S001" in refused.value.message
    assert list(merchant.stores.values_list("store_no", flat=True)) == ["S001"]


def test_without_a_channel_rejection_an_approved_record_stays_closed(client, clerk_wang, risk_zhao,
                                                                     drafted_tea_house, onboarding_accounts):
    application = approve(drafted_tea_house, clerk_wang, risk_zhao)  # contracts pending: nothing refused yet
    merchant = application.merchant
    with pytest.raises(InvalidState):
        merchant_record_correct(application_id=application.pk, actor=clerk_wang, data=record(short_name="改名"))
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()
    assert f'href="/staff/merchants/{merchant.merchant_no}/edit/"' not in page
    assert client.post(f"/staff/merchants/{merchant.merchant_no}/edit/", edit_form(short_name="改名")).status_code \
        == 302
    assert Merchant.objects.get(pk=merchant.pk).short_name == "西湖茶馆"


def test_a_risk_rejection_stays_final(client, clerk_wang, risk_zhao, drafted_tea_house):
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    application_reject(application_id=drafted_tea_house.pk, actor=risk_zhao, reason="虚假门店照片")
    merchant = drafted_tea_house.merchant
    client.force_login(clerk_wang)

    page = client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()
    assert "Rejected by risk" in page and f'href="/staff/merchants/{merchant.merchant_no}/edit/"' not in page
    assert client.post(f"/staff/merchants/{merchant.merchant_no}/edit/", edit_form(short_name="改名")).status_code \
        == 302
    assert Merchant.objects.get(pk=merchant.pk).short_name == "西湖茶馆"
    with pytest.raises(InvalidState):
        merchant_record_correct(application_id=drafted_tea_house.pk, actor=clerk_wang, data=record(short_name="改名"))

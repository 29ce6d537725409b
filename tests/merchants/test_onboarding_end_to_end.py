"""End to end against the simulators (issue 4 "How it is checked"): a merchant onboarded onto WeChat Pay, Alipay and
Bank A — Bank A approves straight away, WeChat rejects, the clerk corrects and resubmits, then WeChat asks for a
signature, Alipay approves later — ends active with three sub-merchant ids, over real HTTP, with Celery running the
submissions and the channels calling back (bank apply notify, Alipay zft message)."""

from __future__ import annotations

import requests
from django.contrib.auth.models import Permission

from channels.models import ChannelAccount
from channels.simulators import alipay as alipay_sim
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants.models import ApplicationState, ContractState, Merchant, SettlementChange
from merchants.services.contracts import contract_poll, contract_resubmit
from merchants.services.onboarding import (
    application_approve,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from merchants.services.settlement import merchant_settlement_change, settlement_change_poll
from tests.factories import UserFactory
from tests.merchants.conftest import offer
from tests.merchants.records import png, record


def _user(username, *codenames):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="merchants", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


def _account(code, kind, root, config):
    return ChannelAccount.objects.create(code=code, kind=kind, name=code, base_url=f"{root}/{kind}", config=config,
                                         enabled=True)


def test_a_merchant_is_onboarded_onto_wechat_alipay_and_bank_a(transactional_db, live_server, simulator_server, settings):
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's apply notify comes back to
    root = simulator_server.base_url
    wechat = _account("wechatpay-isv", "wechatpay", root, wechat_sim.provision(root, name="e2e-wechat"))
    requests.post(f"{root}/wechatpay/_control/accounts/{wechat.config['sp_mchid']}/settings",
                  json={"settlement_review": {"delay_seconds": 0, "outcome": "approve"}}, timeout=5).raise_for_status()
    bank_a = _account("bank-a", "bank", root, bank_sim.provision(root, name="e2e-bank-a",
                                                                  settings={"auto_review": None,
                                                                                      "settlement_seconds": 0}))
    alipay = _account("alipay-isv", "alipay", root, alipay_sim.provision(
        root, name="e2e-alipay", message_url=f"{live_server.url}/callbacks/alipay-isv/"))
    offer(wechat, "wechat.native", "0.0038")
    offer(alipay, "alipay.qr", "0.0038")
    offer(bank_a, "wechat.native", "0.0020")
    offer(bank_a, "unionpay.qr", "0.0020")
    clerk = _user("wang.clerk", "add_merchant", "change_merchant", "change_contract")
    risk = _user("zhao.risk", "review_application")

    application = merchant_onboard_draft(actor=clerk, data=record(requested_products=[
        "wechat.native", "alipay.qr", "unionpay.qr"]))
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    application_approve(application_id=application.pk, actor=risk)  # commits: Celery (eager) submits both

    contracts = {c.channel_account.code: c for c in application.contracts.all()}
    wechat_contract, bank_contract = contracts["wechatpay-isv"], contracts["bank-a"]
    alipay_contract = contracts["alipay-isv"]
    assert alipay_contract.state in (ContractState.SUBMITTED, ContractState.AUDITING)
    assert wechat_contract.state in (ContractState.SUBMITTED, ContractState.AUDITING)
    assert wechat_contract.channel_application_id and bank_contract.channel_application_id
    assert len(wechat_contract.media_ids) == 6  # every picture uploaded to WeChat once

    # WeChat rejects the licence photo; the clerk uploads a new one and resubmits just that contract.
    requests.post(f"{root}/wechatpay/_control/applications/{wechat_contract.channel_application_id}",
                  json={"action": "reject", "reasons": [{"field": "license_copy", "reason": "营业执照照片模糊"}]},
                  timeout=5).raise_for_status()
    wechat_contract = contract_poll(contract_id=wechat_contract.pk)
    assert wechat_contract.state == ContractState.REJECTED
    assert "营业执照照片模糊" in str(wechat_contract.rejection_reasons)
    document_add(merchant_id=application.merchant_id, actor=clerk, doc_type="licence",
                 uploaded_file=png("sharper-licence.png"))
    wechat_contract = contract_resubmit(contract_id=wechat_contract.pk, actor=clerk)
    assert wechat_contract.state in (ContractState.SUBMITTED, ContractState.AUDITING)
    assert len(wechat_contract.media_ids) == 7  # only the new licence photo was uploaded again

    # Bank A approves straight away and tells us through its signed apply notify.
    requests.post(f"{root}/bank/_control/applications/{bank_contract.channel_application_id}",
                  json={"action": "approve"}, timeout=5).raise_for_status()
    requests.post(f"{root}/bank/_control/flush", timeout=10).raise_for_status()
    bank_contract.refresh_from_db()
    assert bank_contract.state == ContractState.ACTIVE
    assert bank_contract.sub_mchid

    merchant = Merchant.objects.get(pk=application.merchant_id)
    assert merchant.state == "active"  # the first active contract activates the merchant
    assert any(app.has_scope("payments") for app in merchant.apps.all())
    application.refresh_from_db()
    assert application.state == ApplicationState.COMPLETED

    # WeChat asks the merchant to sign; the clerk sees the sign URL; after signing the contract is active.
    requests.post(f"{root}/wechatpay/_control/applications/{wechat_contract.channel_application_id}",
                  json={"action": "ask_sign"}, timeout=5).raise_for_status()
    wechat_contract = contract_poll(contract_id=wechat_contract.pk)
    assert wechat_contract.state == ContractState.TO_BE_SIGNED and wechat_contract.sign_url
    requests.post(f"{root}/wechatpay/_control/applications/{wechat_contract.channel_application_id}",
                  json={"action": "finish"}, timeout=5).raise_for_status()
    wechat_contract = contract_poll(contract_id=wechat_contract.pk)
    assert wechat_contract.state == ContractState.ACTIVE and wechat_contract.sub_mchid

    # Alipay approves the 直付通 order and says so with its signed message to the app gateway URL.
    requests.post(f"{root}/alipay/_control/applications/{alipay_contract.channel_application_id}",
                  json={"action": "approve"}, timeout=5).raise_for_status()
    requests.post(f"{root}/alipay/_control/flush", timeout=10).raise_for_status()
    alipay_contract.refresh_from_db()
    assert alipay_contract.state == ContractState.ACTIVE and alipay_contract.sub_mchid
    sub_ids = {wechat_contract.sub_mchid, alipay_contract.sub_mchid, bank_contract.sub_mchid}
    assert len(sub_ids) == 3 and "" not in sub_ids

    timeline = list(wechat_contract.events.values_list("to_state", flat=True))
    assert timeline[0] == "pending" and "rejected" in timeline and timeline[-1] == "active"

    # Later the merchant moves its settlement account: both channels verify it asynchronously, then it is current.
    new_account = {"account_type": "corporate", "bank_name": "中国工商银行", "bank_branch": "杭州分行",
                   "account_number": "6222000011112222333", "account_holder": "杭州西湖茶馆有限公司"}
    changes = merchant_settlement_change(merchant_id=merchant.pk, actor=clerk, account=new_account)
    assert {c.state for c in SettlementChange.objects.filter(pk__in=[c.pk for c in changes])} == {"auditing"}
    assert merchant.settlement_accounts.get(current=True).account_number == "571234567890123"  # not yet
    alipay_change = SettlementChange.objects.get(merchant=merchant, contract=alipay_contract)
    requests.post(f"{root}/alipay/_control/applications/{alipay_change.application_no}",
                  json={"action": "approve"}, timeout=5).raise_for_status()
    for change in changes:
        settlement_change_poll(change_id=change.pk)
    assert SettlementChange.objects.filter(merchant=merchant).count() == 3
    assert set(SettlementChange.objects.filter(merchant=merchant).values_list("state", flat=True)) == {"succeeded"}
    assert merchant.settlement_accounts.get(current=True).account_number == "6222000011112222333"

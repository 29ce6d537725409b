"""A settlement account change one channel refuses (issue 4 "Flow", design §5 rule 12): the channels that accepted it
pay to the new account, the refusing one keeps paying to the old — nothing can undo the others' switch — so the
merchant page says which account each channel pays to and flags the refusal, instead of showing one account as if
every channel paid there. Against the simulators over HTTP: WeChat Pay accepts, Bank A is set to refuse."""

from __future__ import annotations

import base64

import requests

from channels.models import ChannelAccount
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants.models import ContractState, Merchant, SettlementChangeState
from merchants.services.contracts import contract_poll
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from merchants.services.settlement import merchant_settlement_change, settlement_change_poll
from tests.merchants.conftest import offer
from tests.merchants.records import png_bytes, record

OLD_NUMBER, NEW_NUMBER = "571234567890123", "6222000011112222333"
NEW_ACCOUNT = {"account_type": "corporate", "bank_name": "中国工商银行", "bank_branch": "杭州分行",
               "account_number": NEW_NUMBER, "account_holder": "杭州西湖茶馆有限公司"}


def _account(code: str, kind: str, root: str, config: dict) -> ChannelAccount:
    return ChannelAccount.objects.create(code=code, kind=kind, name=code, base_url=f"{root}/{kind}", config=config,
                                         enabled=True)


def _active_on_wechat_and_bank_a(root: str, application, clerk, risk) -> tuple:
    """WeChat Pay finishes its review at once and accepts settlement changes; Bank A approves by hand and refuses
    every settlement change (its fault setting ``settlement_outcome: FAIL``)."""
    wechat = _account("wechatpay-isv", "wechatpay", root, wechat_sim.provision(root, name="split-wechat"))
    requests.post(f"{root}/wechatpay/_control/accounts/{wechat.config['sp_mchid']}/settings", timeout=5, json={
        "auto_review": {"delay_seconds": 0, "outcome": "finish"},
        "settlement_review": {"delay_seconds": 0, "outcome": "approve"}}).raise_for_status()
    bank_a = _account("bank-a", "bank", root, bank_sim.provision(root, name="split-bank-a", settings={
        "auto_review": None, "settlement_seconds": 0, "settlement_outcome": "FAIL"}))
    offer(wechat, "wechat.native", "0.0038")
    offer(bank_a, "unionpay.qr", "0.0020")
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    application_approve(application_id=application.pk, actor=risk)  # commits: Celery (eager) submits both
    contracts = {c.channel_account.code: c for c in application.contracts.all()}
    requests.post(f"{root}/bank/_control/applications/{contracts['bank-a'].channel_application_id}",
                  json={"action": "approve"}, timeout=5).raise_for_status()
    requests.post(f"{root}/bank/_control/flush", timeout=10).raise_for_status()  # its apply notify activates it
    wechat_contract = contract_poll(contract_id=contracts["wechatpay-isv"].pk)
    contracts["bank-a"].refresh_from_db()
    assert (wechat_contract.state, contracts["bank-a"].state) == (ContractState.ACTIVE, ContractState.ACTIVE)
    return wechat, bank_a, wechat_contract


def test_a_change_one_channel_refuses_shows_on_the_merchant_page_where_each_channel_pays(
        transactional_db, live_server, simulator_server, settings, client, clerk_wang, risk_zhao,
        drafted_tea_house):
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's notifications come back to
    root = simulator_server.base_url
    wechat, bank_a, wechat_contract = _active_on_wechat_and_bank_a(root, drafted_tea_house, clerk_wang, risk_zhao)
    merchant = Merchant.objects.get(pk=drafted_tea_house.merchant_id)

    changes = merchant_settlement_change(merchant_id=merchant.pk, actor=clerk_wang, account=NEW_ACCOUNT)
    for change in changes:
        settlement_change_poll(change_id=change.pk)

    states = {c.contract.channel_account.code: (c.state, c.message) for c in merchant.settlement_changes.all()}
    assert states == {"wechatpay-isv": (SettlementChangeState.SUCCEEDED, ""),
                      "bank-a": (SettlementChangeState.FAILED, "账户信息与开户名不符")}
    # WeChat Pay really pays to the new account now; the record keeps the one Bank A still pays to.
    assert wechat.adapter().settlement_query(sub_mchid=wechat_contract.sub_mchid)["account_number"].endswith("2333")
    assert merchant.settlement_accounts.get(current=True).account_number == OLD_NUMBER

    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{merchant.merchant_no}/")
    html = page.content.decode()
    by_channel = {row.contract.channel_account.code: row for row in page.context["settlement_channels"]}
    assert by_channel["wechatpay-isv"].account.account_number == NEW_NUMBER
    assert not by_channel["wechatpay-isv"].on_record and by_channel["wechatpay-isv"].refused is None
    assert by_channel["bank-a"].account.account_number == OLD_NUMBER and by_channel["bank-a"].on_record
    assert by_channel["bank-a"].refused.message == "账户信息与开户名不符"
    attention = html.split('id="settlement-attention"', 1)[1].split("</div>", 1)[0]
    assert "bank-a refused" in attention and "账户信息与开户名不符" in attention
    assert "wechatpay-isv pays to 中国工商银行 ***************2333" in attention
    assert 'data-channel="wechatpay-isv" data-pays-to="***************2333"' in html
    assert 'data-channel="bank-a" data-pays-to="***********0123"' in html
    assert NEW_NUMBER not in html and OLD_NUMBER not in html  # masked everywhere

    # Bank A's problem is sorted out and the change is asked again: every channel pays to it, the record too.
    requests.post(f"{root}/bank/_control/accounts/{bank_a.config['org_no']}/settings",
                  json={"settlement_outcome": "SUCCESS"}, timeout=5).raise_for_status()
    for change in merchant_settlement_change(merchant_id=merchant.pk, actor=clerk_wang, account=NEW_ACCOUNT):
        settlement_change_poll(change_id=change.pk)
    assert merchant.settlement_accounts.get(current=True).account_number == NEW_NUMBER
    page = client.get(f"/staff/merchants/{merchant.merchant_no}/")
    assert all(row.on_record and row.refused is None for row in page.context["settlement_channels"])
    assert 'id="settlement-attention"' not in page.content.decode()


def test_the_partner_sees_which_account_each_channel_pays_to_after_a_change_one_refused(
        transactional_db, live_server, simulator_server, settings, signed_api, westlake_app, clerk_wang, risk_zhao):
    """merchant-api.md "Partner onboarding": a failed change does not mean the old account is in force everywhere."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    partner = signed_api(westlake_app)
    documents = [{"doc_type": t, "filename": f"{t}.png", "content_base64": base64.b64encode(png_bytes(t))
                  .decode()} for t in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside")]
    created = partner.post("/api/v1/merchants", json={**record(), "documents": documents})
    assert created.status_code == 201, created.json()
    merchant = Merchant.objects.get(merchant_no=created.json()["merchant_no"])
    _active_on_wechat_and_bank_a(simulator_server.base_url, merchant.applications.get(), clerk_wang, risk_zhao)

    patched = partner.request("PATCH", f"/api/v1/merchants/{merchant.merchant_no}",
                              json={"settlement_account": NEW_ACCOUNT})
    assert patched.status_code == 200, patched.json()
    for change in merchant.settlement_changes.all():
        settlement_change_poll(change_id=change.pk)

    body = partner.get(f"/api/v1/merchants/{merchant.merchant_no}").json()
    assert body["settlement_account"]["account_number"] == "***********0123"  # the record keeps the old account
    change = body["settlement_change"]
    assert (change["state"], change["account_number"]) == ("failed", "***************2333")
    assert {c["channel_account"]: (c["state"], c["message"], c["pays_to"]) for c in change["channels"]} == {
        "wechatpay-isv": ("succeeded", "", {"bank_name": "中国工商银行", "account_number": "***************2333"}),
        "bank-a": ("failed", "账户信息与开户名不符", {"bank_name": "招商银行", "account_number": "***********0123"}),
    }
    assert NEW_NUMBER.encode() not in partner.get(f"/api/v1/merchants/{merchant.merchant_no}").content

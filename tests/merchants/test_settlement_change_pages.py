"""What staff read of a settlement account change on the merchant page and in the clerk's "Needs action" view: each
channel's latest change whatever became of it — the one that accepted reads as accepted, the one that refused as the
one needing action — and the application history tells each step in words, with the channel and its reason.

Against the simulators over HTTP: the Tea House is onboarded at WeChat Pay and Bank A, and each channel takes the
change as its settings say — WeChat's ``settlement_review``, the bank's ``settlement_seconds`` and
``settlement_outcome`` (bank.md §13.3) — read by our poll. test_settlement_change_partly_refused.py follows the same
flow with the channels calling back to a live server."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from django.utils import timezone

from channels.models import ChannelAccount
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants.models import ContractState, Merchant, SettlementChange
from merchants.services.contracts import contract_poll
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from merchants.services.settlement import (
    merchant_settlement_change,
    settlement_change_poll,
    settlement_change_submit,
)
from tests.merchants.conftest import offer

pytestmark = pytest.mark.django_db

REASON = "账户信息与开户名不符"  # the bank's words when it refuses a settlement account (its simulator's too)
NEW_ACCOUNT = {"account_type": "corporate", "bank_name": "中国工商银行", "bank_branch": "杭州分行",
               "account_number": "6222000011112222333", "account_holder": "杭州西湖茶馆有限公司"}

# What each channel does with the change, as its simulator's account settings (the channels decide; we poll).
ACCEPTED, REFUSED, CHECKING = "accepts", "refuses", "checks"
TAKES_IT = {
    "wechatpay-isv": {ACCEPTED: {"settlement_review": {"delay_seconds": 0, "outcome": "approve"}},
                      CHECKING: {"settlement_review": {"delay_seconds": 3600, "outcome": "approve"}}},
    "bank-a": {ACCEPTED: {"settlement_seconds": 0, "settlement_outcome": "SUCCESS"},
               REFUSED: {"settlement_seconds": 0, "settlement_outcome": "FAIL"},
               CHECKING: {"settlement_seconds": 3600}},
}


def _account(root: str, code: str, name: str, kind: str, config: dict) -> ChannelAccount:
    return ChannelAccount.objects.create(code=code, kind=kind, name=name, base_url=f"{root}/{kind}", config=config,
                                         enabled=True)


def settings_url(root: str, account: ChannelAccount) -> str:
    if account.kind == "wechatpay":
        return f"{root}/wechatpay/_control/accounts/{account.config['sp_mchid']}/settings"
    return f"{root}/bank/_control/accounts/{account.config['org_no']}/settings"


@pytest.fixture
def active_tea_house(simulator_server, request, clerk_wang, risk_zhao, drafted_tea_house,
                     django_capture_on_commit_callbacks) -> Merchant:
    """The Tea House, approved and active at WeChat Pay (which finishes its review at once) and Bank A (whose
    reviewer approves it), each found active by our poll."""
    root, name = simulator_server.base_url, request.node.name[:50]
    wechat = _account(root, "wechatpay-isv", "Wechatpay Isv", "wechatpay", wechat_sim.provision(root, name=name))
    requests.post(settings_url(root, wechat), json={"auto_review": {"delay_seconds": 0, "outcome": "finish"}},
                  timeout=5).raise_for_status()
    bank_a = _account(root, "bank-a", "Bank A", "bank", bank_sim.provision(root, name=name,
                                                                          settings={"auto_review": None}))
    offer(wechat, "wechat.native", "0.0038")
    offer(bank_a, "unionpay.qr", "0.0020")
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    with django_capture_on_commit_callbacks(execute=True):  # the submit tasks run (Celery is eager)
        application = application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
    contracts = list(application.contracts.select_related("channel_account"))
    assert sorted(c.channel_account.code for c in contracts) == ["bank-a", "wechatpay-isv"]
    bank_contract = next(c for c in contracts if c.channel_account.code == "bank-a")
    requests.post(f"{root}/bank/_control/applications/{bank_contract.channel_application_id}",
                  json={"action": "approve"}, timeout=5).raise_for_status()
    for contract in contracts:
        assert contract_poll(contract_id=contract.pk).state == ContractState.ACTIVE
    return Merchant.objects.get(pk=application.merchant_id)


@pytest.fixture
def change_answered(simulator_server, clerk_wang, active_tea_house):
    """Asks the Tea House's settlement change; each channel takes it as ``answers`` (by channel code) says, and our
    poll reads what it decided."""

    def ask(**answers: str) -> Merchant:
        for code, answer in answers.items():
            account = ChannelAccount.objects.get(code=code.replace("_", "-"))
            requests.post(settings_url(simulator_server.base_url, account), json=TAKES_IT[account.code][answer],
                          timeout=5).raise_for_status()
        for change in merchant_settlement_change(merchant_id=active_tea_house.pk, actor=clerk_wang,
                                                 account=NEW_ACCOUNT):
            settlement_change_submit(change_id=change.pk)
            settlement_change_poll(change_id=change.pk)
        return active_tea_house

    return ask


def channel_row(html: str, code: str) -> str:
    table = html.split('id="settlement-by-channel"', 1)[1].split("</table>", 1)[0]
    return table.split(f'data-channel="{code}"', 1)[1].split("</tr>", 1)[0]


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_the_channel_that_accepted_shows_its_change_succeeded_and_reads_as_accepted(client, clerk_wang,
                                                                                  change_answered):
    merchant = change_answered(wechatpay_isv=ACCEPTED, bank_a=REFUSED)
    client.force_login(clerk_wang)

    html = client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()

    accepted = channel_row(html, "wechatpay-isv")
    succeeded_on = SettlementChange.objects.get(contract__channel_account__code="wechatpay-isv").updated_at
    assert "Succeeded" in text(accepted)
    assert timezone.localtime(succeeded_on).strftime("%Y-%m-%d") in text(accepted)
    assert "accepted — new account not the record's yet: the record switches when every channel has" in text(accepted)
    assert "action" not in text(accepted).lower()
    assert "s-limited" not in accepted  # not flagged in the colour of a problem

    refused = channel_row(html, "bank-a")
    assert "Refused" in text(refused) and REASON in text(refused)
    assert "needs action" in text(refused)


def test_a_channel_still_checking_the_change_shows_it_pending(client, clerk_wang, change_answered):
    merchant = change_answered(wechatpay_isv=ACCEPTED, bank_a=CHECKING)
    client.force_login(clerk_wang)

    html = client.get(f"/staff/merchants/{merchant.merchant_no}/").content.decode()

    assert "Succeeded" in text(channel_row(html, "wechatpay-isv"))
    checking = text(channel_row(html, "bank-a"))
    assert "Auditing to 中国工商银行 ***************2333" in checking
    assert "needs action" not in checking


def test_the_application_history_tells_each_settlement_step_with_its_channel_and_reason(client, clerk_wang,
                                                                                       change_answered):
    merchant = change_answered(wechatpay_isv=ACCEPTED, bank_a=REFUSED)
    client.force_login(clerk_wang)

    page = client.get(f"/staff/merchants/{merchant.merchant_no}/")

    history = text(page.content.decode().split('id="application-timeline"', 1)[1].split("</ol>", 1)[0])
    assert "merchants.settlement" not in history
    assert "Settlement account change to 中国工商银行 asked of Bank A, Wechatpay Isv" in history
    assert "Wechatpay Isv accepted the new settlement account" in history
    assert f"Bank A refused the new settlement account: {REASON}" in history
    tones = {e.title: e.tone for e in page.context["timeline"]}
    assert tones[f"Bank A refused the new settlement account: {REASON}"] == "bad"


def test_the_application_history_tells_a_channel_is_checking_the_change(client, clerk_wang, change_answered):
    merchant = change_answered(wechatpay_isv=CHECKING, bank_a=CHECKING)
    client.force_login(clerk_wang)

    page = client.get(f"/staff/merchants/{merchant.merchant_no}/")

    titles = [e.title for e in page.context["timeline"]]
    assert "Bank A is checking the new settlement account" in titles
    assert "Wechatpay Isv is checking the new settlement account" in titles


def refusal_row(client) -> str:
    html = client.get("/staff/onboarding/", {"view": "action"}).content.decode()
    table = html.split('id="refused-settlement-changes"', 1)[1].split("</table>", 1)[0]
    return table.split("data-settlement-change=", 1)[1].split("</tr>", 1)[0]


def test_a_refusal_in_needs_action_reads_as_the_channels_reason_and_was_just_now(client, clerk_wang,
                                                                                 change_answered):
    change_answered(wechatpay_isv=ACCEPTED, bank_a=REFUSED)
    client.force_login(clerk_wang)

    row = refusal_row(client)

    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
    refused_change = cells[2]
    assert re.search(rf'<div class="reason">{REASON}</div>', refused_change)  # the main text, not a grey aside
    assert REASON not in "".join(re.findall(r'<div class="sub[^"]*">(.*?)</div>', refused_change))
    assert text(cells[4]) == "just now"
    assert re.search(r'<a class="btn small nowrap"[^>]*>Open →</a>', row)


def test_a_refusal_in_needs_action_tells_how_long_ago_after_the_first_minute(client, clerk_wang, change_answered):
    change_answered(wechatpay_isv=ACCEPTED, bank_a=REFUSED)
    SettlementChange.objects.filter(state="failed").update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    client.force_login(clerk_wang)

    cells = re.findall(r"<td[^>]*>(.*?)</td>", refusal_row(client), flags=re.S)

    assert text(cells[4]) == "5 minutes"


def test_the_application_history_tells_when_the_record_switches_to_the_new_account(client, clerk_wang,
                                                                                  change_answered):
    merchant = change_answered(wechatpay_isv=ACCEPTED, bank_a=ACCEPTED)
    client.force_login(clerk_wang)

    page = client.get(f"/staff/merchants/{merchant.merchant_no}/")

    titles = [e.title for e in page.context["timeline"]]
    assert titles[-1] == "Settlement account on record switched: every channel accepted it"
    assert "merchants.settlement" not in page.content.decode()

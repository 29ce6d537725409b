"""What staff read of a settlement account change on the merchant page and in the clerk's "Needs action" view: each
channel's latest change whatever became of it — the one that accepted reads as accepted, the one that refused as the
one needing action — and the application history tells each step in words, with the channel and its reason.

The channels' answers come from a stand-in adapter (the flow over HTTP against the simulators is
test_settlement_change_partly_refused.py); everything else goes through the services."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from channels.adapters.base import OnboardingResult, OnboardingState, SettlementChangeResult
from channels.models import ChannelAccount
from merchants.models import Merchant, SettlementChange
from merchants.services.contracts import contract_apply_result
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from merchants.services.settlement import merchant_settlement_change, settlement_change_submit
from tests.factories import ChannelAccountFactory
from tests.merchants.conftest import offer

pytestmark = pytest.mark.django_db

REASON = "账户信息与开户名不符"
NEW_ACCOUNT = {"account_type": "corporate", "bank_name": "中国工商银行", "bank_branch": "杭州分行",
               "account_number": "6222000011112222333", "account_holder": "杭州西湖茶馆有限公司"}


class AnsweringChannel:
    """A channel that answers every settlement change the same way."""

    def __init__(self, answer: SettlementChangeResult):
        self.answer = answer

    def settlement_modify(self, *, sub_mchid, account):
        return self.answer


@pytest.fixture
def active_tea_house(clerk_wang, risk_zhao, drafted_tea_house) -> Merchant:
    """The Tea House, approved and active at WeChat Pay and Bank A."""
    offer(ChannelAccountFactory(kind="wechatpay", code="wechatpay-isv"), "wechat.native", "0.0038")
    offer(ChannelAccountFactory(kind="bank", code="bank-a"), "unionpay.qr", "0.0020")
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    application = application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
    contracts = list(application.contracts.select_related("channel_account"))
    assert sorted(c.channel_account.code for c in contracts) == ["bank-a", "wechatpay-isv"]
    for n, contract in enumerate(contracts):
        contract_apply_result(contract_id=contract.pk, source="channel", submitting=True,
                              result=OnboardingResult(state=OnboardingState.SUBMITTED, application_id=f"APP{n}"))
        contract_apply_result(contract_id=contract.pk, source="channel",
                              result=OnboardingResult(state=OnboardingState.FINISHED, sub_mchid=f"SUB{n}"))
    return Merchant.objects.get(pk=application.merchant_id)


@pytest.fixture
def change_answered(monkeypatch, clerk_wang, active_tea_house):
    """Asks the Tea House's settlement change; each channel answers as ``answers`` (by channel code) says."""

    def ask(**answers: SettlementChangeResult) -> Merchant:
        answers = {code.replace("_", "-"): answer for code, answer in answers.items()}
        monkeypatch.setattr(ChannelAccount, "adapter", lambda account: AnsweringChannel(answers[account.code]))
        for change in merchant_settlement_change(merchant_id=active_tea_house.pk, actor=clerk_wang,
                                                 account=NEW_ACCOUNT):
            settlement_change_submit(change_id=change.pk)
        return active_tea_house

    return ask


ACCEPTED = SettlementChangeResult(state="succeeded")
REFUSED = SettlementChangeResult(state="failed", message=REASON)
CHECKING = SettlementChangeResult(state="auditing", application_no="APP-1")


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

"""A settlement account change one channel refused, in a real browser (issue 4 "Clerk workbench" and design §5
rule 12): the Tea House, active at WeChat Pay and Bank A, asks to be paid to a new account; WeChat Pay accepts and
Bank A refuses, so Bank A keeps paying to the old account. The onboarding clerk sees it counted on the home page,
finds it in the onboarding queue's "Needs action" view with the channel's reason, and follows it to the merchant
page, where the account each channel pays to is listed. Against the WeChat Pay and Bank A simulators over HTTP, the
bank calling back the live server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from merchants.models import Merchant
from merchants.services.settlement import merchant_settlement_change, settlement_change_poll
from tests.merchants.test_settlement_change_partly_refused import (
    NEW_ACCOUNT,
    NEW_NUMBER,
    OLD_NUMBER,
    _active_on_wechat_and_bank_a,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BANK_A_REASON = "账户信息与开户名不符"  # what the Bank A simulator says when set to refuse settlement changes
OLD_MASKED, NEW_MASKED = "***********0123", "***************2333"


@pytest.fixture
def tea_house_paid_to_two_accounts(live_server, simulator_server, settings, clerk_wang, risk_zhao,
                                   drafted_tea_house) -> Merchant:
    """The Tea House, active at WeChat Pay and Bank A, after asking to be paid to a new account: WeChat Pay switched,
    Bank A refused."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's notifications come back to
    _active_on_wechat_and_bank_a(simulator_server.base_url, drafted_tea_house, clerk_wang, risk_zhao)
    merchant = Merchant.objects.get(pk=drafted_tea_house.merchant_id)
    for change in merchant_settlement_change(merchant_id=merchant.pk, actor=clerk_wang, account=NEW_ACCOUNT):
        settlement_change_poll(change_id=change.pk)
    assert {c.contract.channel_account.code: c.state for c in merchant.settlement_changes.all()} == {
        "wechatpay-isv": "succeeded", "bank-a": "failed"}
    return merchant


def test_the_clerk_follows_a_refused_settlement_change_from_the_home_page_to_the_merchant(
        sign_in, live_server, clerk_wang, tea_house_paid_to_two_accounts, shots):
    merchant = tea_house_paid_to_two_accounts
    page = sign_in(clerk_wang.get_username())
    page.set_viewport_size({"width": 1440, "height": 900})

    # The home page's onboarding tile counts the refusal under "Needs action".
    tile = page.locator('section.section-card[data-section="onboarding"] li', has_text="Needs action")
    expect(tile.locator(".count")).to_have_text("1")
    expect(tile.locator(".count")).to_have_class(re.compile(r"\bbad\b"))
    page.screenshot(path=str(shots / "clerk-home-needs-action.png"), full_page=True)

    # Its link opens the onboarding queue's "Needs action" view, which lists exactly that one row.
    tile.get_by_role("link", name="Needs action").click()
    page.wait_for_url(re.compile(r"/staff/onboarding/\?view=action$"))
    expect(page.locator('[data-tab="action"]')).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator('[data-tab="action"] .n')).to_have_text("1")
    expect(page.locator("#returned tbody tr[data-merchant]")).to_have_count(0)
    expect(page.locator("#action-contracts tbody tr[data-contract]")).to_have_count(0)
    refusals = page.locator("#refused-settlement-changes tbody tr[data-settlement-change]")
    expect(refusals).to_have_count(1)
    refusal = refusals.first
    expect(refusal).to_contain_text(merchant.merchant_no)
    expect(refusal).to_contain_text("bank-a")  # the channel that refused
    expect(refusal).to_contain_text(f"to 中国工商银行 {NEW_MASKED}")  # the account asked for, masked
    expect(refusal).to_contain_text(BANK_A_REASON)  # the channel's reason
    expect(refusal).not_to_contain_text("wechatpay-isv")  # WeChat Pay accepted the change
    assert NEW_NUMBER not in page.content()
    page.screenshot(path=str(shots / "clerk-needs-action-refused-change.png"), full_page=True)

    # "Open →" goes to the merchant page's account-by-channel table: Bank A still pays to the old account.
    refusal.get_by_role("link", name="Open →").click()
    page.wait_for_url(f"{live_server.url}/staff/merchants/{merchant.merchant_no}/#settlement-by-channel")
    by_channel = page.locator("#settlement-by-channel")
    expect(by_channel).to_be_in_viewport()
    bank_a = by_channel.locator('tr[data-channel="bank-a"]')
    expect(bank_a).to_have_attribute("data-pays-to", OLD_MASKED)
    expect(bank_a).to_contain_text(f"招商银行 {OLD_MASKED}")
    expect(bank_a).to_contain_text("(on record)")
    expect(bank_a).to_contain_text("Refused")
    expect(bank_a).to_contain_text(BANK_A_REASON)
    wechat = by_channel.locator('tr[data-channel="wechatpay-isv"]')
    expect(wechat).to_have_attribute("data-pays-to", NEW_MASKED)
    expect(wechat).to_contain_text("not the record's")
    expect(page.locator("#settlement-attention")).to_contain_text("Not every channel pays to the settlement account")
    for number in (OLD_NUMBER, NEW_NUMBER):
        assert number not in page.content()  # masked everywhere
    page.screenshot(path=str(shots / "clerk-merchant-page.png"), full_page=True)
    by_channel.screenshot(path=str(shots / "clerk-merchant-settlement-by-channel.png"))

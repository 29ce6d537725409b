"""Channel risk notices in a real browser (risk.views, /staff/risk/notices/): WeChat's merchant violation notices
(channel-protocols.md A.15) come in as signed callbacks over HTTP to the live server — a punishment of Tea House's
WeChat contract, an interception of its trades, a punishment of a sub-merchant we never had. A risk officer follows
the home tile, reads the counts, filters by kind, opens the punishment and limits the contract with a note; the
contract is limited, the notice handled, the tile counts one fewer, and Tea House's next WeChat order through the
merchant API is refused, since no other contract of its can take the product (design §4 ``active ⇄ limited``, §7)."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from aggpay.api.client import AggpayClient
from aggpay.models import AuditLog
from channels import routing
from merchants.models import Contract, ContractState, Merchant
from risk.models import ChannelRiskNotice
from tests.risk.violations import TEA_SUB, contract_on, post_violation, wechat_account
from trades.models import Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STRANGER_SUB = "1900009999"  # a sub-merchant no contract of ours has


class OverHttp:
    """What violations.post_violation needs of a client, sent over real HTTP to the live server: WeChat's POST."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def post(self, path, *, data, content_type, headers):
        return requests.post(self.base_url + path, data=data, headers={"Content-Type": content_type, **headers},
                             timeout=10)


@pytest.fixture
def notices(live_server, tea_house, tea_house_app):
    """Tea House's only contract for wechat.native, on a WeChat account, and three notices WeChat sent to it."""
    account = wechat_account("wx-risk")
    contract = contract_on(account, tea_house, sub_mchid=TEA_SUB)
    wechat = OverHttp(live_server.url)
    sent = {
        "punish": post_violation(wechat, account, record_id="VR-TEA-PUNISH", sub_mchid=TEA_SUB,
                                 punish_plan="限制收款：单日 5000 元"),
        "intercept": post_violation(wechat, account, record_id="VR-TEA-INTERCEPT", sub_mchid=TEA_SUB,
                                    event="INTERCEPT"),
        "stranger": post_violation(wechat, account, record_id="VR-STRANGER", sub_mchid=STRANGER_SUB,
                                   company_name="某某商贸有限公司"),
    }
    assert {key: r.status_code for key, r in sent.items()} == dict.fromkeys(sent, 204)  # A.4: WeChat's success
    by_record = {n.record_id: n for n in ChannelRiskNotice.objects.all()}
    return {"account": account, "contract": contract, "app": tea_house_app, "punish": by_record["VR-TEA-PUNISH"],
            "intercept": by_record["VR-TEA-INTERCEPT"], "stranger": by_record["VR-STRANGER"]}


def _routed(merchant) -> int | None:
    decision = routing.choose(merchant=Merchant.objects.get(pk=merchant.pk), product="wechat.native", amount=1500)
    return decision.chosen.contract_id if decision.chosen else None


def test_a_risk_officer_limits_a_punished_contract_from_the_home_tile(notices, staff_member, sign_in, live_server,
                                                                      shots):
    officer = staff_member("risk_officer", username="zhao.risk")
    page = sign_in("zhao.risk")

    tile = page.locator('section.section-card[data-section="risk"]').locator(
        "li", has_text="Channel risk notices to handle")
    expect(tile.locator(".count")).to_have_text("3")
    expect(tile.locator(".count")).to_have_class(re.compile(r"\bbad\b"))
    tile.locator("a").click()

    rows = page.locator("#notices tbody tr[data-notice]")
    expect(rows).to_have_count(3)
    expect(page.locator("#count-new")).to_have_text("3")
    expect(page.locator("#count-unmatched")).to_have_text("1")
    expect(page.locator("#count-handled")).to_have_text("0")
    expect(page.locator('#count-kinds li[data-kind="punish"] .count')).to_have_text("2")
    expect(page.locator('#count-kinds li[data-kind="intercept"] .count')).to_have_text("1")
    expect(page.locator('#count-kinds li[data-kind="appeal"] .count')).to_have_text("0")
    expect(page.locator('#count-accounts li[data-account="wx-risk"] [data-n="new"]')).to_have_text("3")
    page.screenshot(path=str(shots / "risk-channel-notices-queue.png"), full_page=True)

    # Only the punishments: Tea House's, matched to its contract, and the stranger's, matched to none.
    page.select_option('#notice-filters select[name="kind"]', "punish")
    page.click('#notice-filters button[type="submit"]')
    expect(rows).to_have_count(2)
    tea_row = page.locator(f'#notices tr[data-notice="{notices["punish"].pk}"]')
    stranger_row = page.locator(f'#notices tr[data-notice="{notices["stranger"].pk}"]')
    expect(tea_row).to_have_attribute("data-kind", "punish")
    expect(tea_row).to_contain_text(notices["contract"].merchant.merchant_no)
    expect(tea_row).to_contain_text("限制收款：单日 5000 元")
    expect(stranger_row.locator("[data-unmatched]")).to_have_text("no contract of ours")
    expect(page.locator(f'#notices tr[data-notice="{notices["intercept"].pk}"]')).to_have_count(0)
    page.screenshot(path=str(shots / "risk-channel-notices-punishments.png"), full_page=True)

    tea_row.locator("a", has_text="Open").click()
    expect(page.locator("#state")).to_have_text("new")
    expect(page.locator("#punish-plan")).to_have_text("限制收款：单日 5000 元")
    expect(page.locator("#contract")).to_contain_text("active")
    form = page.locator("#handle-form")
    expect(form.locator('input[name="action"][value="lift"]')).to_have_count(0)  # nothing limited to lift yet
    form.get_by_label("Limit the contract (route its traffic away)").check()
    form.locator('textarea[name="note"]').fill("WeChat capped the shop's takings: route its WeChat traffic away")
    page.screenshot(path=str(shots / "risk-channel-notice-handling.png"), full_page=True)
    form.locator('button[type="submit"]').click()

    expect(page.locator(".message.success")).to_have_text(
        "Notice VR-TEA-PUNISH handled: limit the contract (route its traffic away).")
    expect(page.locator("#state")).to_have_text("handled")
    expect(page.locator("#handling")).to_contain_text("by zhao.risk")
    expect(page.locator("#handled-action")).to_have_text("Limit the contract (route its traffic away)")
    expect(page.locator("#handled-note")).to_have_text(
        "WeChat capped the shop's takings: route its WeChat traffic away")
    expect(page.locator("#contract")).to_contain_text("limited")
    expect(page.locator("#handle-form")).to_have_count(0)
    page.screenshot(path=str(shots / "risk-channel-notice-handled.png"), full_page=True)

    assert Contract.objects.get(pk=notices["contract"].pk).state == ContractState.LIMITED
    handled = ChannelRiskNotice.objects.get(pk=notices["punish"].pk)
    assert (handled.state, handled.handled_action, handled.handled_by) == ("handled", "limit", officer)
    assert handled.handled_note == "WeChat capped the shop's takings: route its WeChat traffic away"
    assert set(ChannelRiskNotice.objects.exclude(pk=handled.pk).values_list("state", flat=True)) == {"new"}
    assert AuditLog.objects.filter(action="merchants.contract.limit", target_id=str(notices["contract"].pk),
                                   actor=officer).exists()

    page.click("text=← Channel risk notices")
    expect(page.locator("#notices tbody tr[data-notice]")).to_have_count(2)
    expect(page.locator("#count-new")).to_have_text("2")
    expect(page.locator("#count-handled")).to_have_text("1")
    page.goto(live_server.url + "/staff/")
    expect(tile.locator(".count")).to_have_text("2")


def test_the_limited_contracts_product_is_refused_to_the_merchant_api_after_the_limit(notices, staff_member,
                                                                                     sign_in, live_server):
    merchant = notices["contract"].merchant
    # Before the limit routing would send the product to the WeChat contract (asked without calling a channel).
    assert _routed(merchant) == notices["contract"].pk
    staff_member("risk_officer", username="zhao.risk")
    page = sign_in("zhao.risk")
    page.goto(f"{live_server.url}/staff/risk/notices/{notices['punish'].pk}/")
    form = page.locator("#handle-form")
    form.get_by_label("Limit the contract (route its traffic away)").check()
    form.locator('textarea[name="note"]').fill("payments capped by WeChat")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#state")).to_have_text("handled")

    # Tea House has no other contract for wechat.native: routing finds no candidate and nothing reaches a channel.
    app = notices["app"]
    client = AggpayClient(live_server.url, app.app_id, secret=app.secret)
    status, _, answer = client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "RISK-LIMITED-1", "amount": 1500, "product": "wechat.native", "subject": "Longjing tea"})

    assert status == 422 and answer["error"]["code"] == "product_not_available", answer
    assert not Order.objects.filter(merchant=merchant, out_trade_no="RISK-LIMITED-1").exists()
    assert _routed(merchant) is None
    assert Contract.objects.get(pk=notices["contract"].pk).state == ContractState.LIMITED

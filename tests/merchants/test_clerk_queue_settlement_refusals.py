"""A settlement account change a channel refused is work for the clerk (issue 4 "Clerk workbench", design §8 "queues
with counts"): the refusing channel keeps paying to the old account while the others pay to the new one, so it is in
the onboarding queue's "Needs action" view and counted by the home page's tile — the count being the rows the tile's
link opens — until the change is asked again. Against the simulators over HTTP, as
test_settlement_change_partly_refused.py: WeChat Pay accepts the change, Bank A refuses it."""

from __future__ import annotations

import re

import pytest
import requests

from merchants.models import Merchant
from merchants.services.settlement import merchant_settlement_change, settlement_change_poll
from tests.merchants.test_settlement_change_partly_refused import (
    NEW_ACCOUNT,
    NEW_NUMBER,
    _active_on_wechat_and_bank_a,
)

ACTION_TABLES = ("returned", "action-contracts", "refused-settlement-changes")


@pytest.fixture
def split_tea_house(transactional_db, live_server, simulator_server, settings, clerk_wang, risk_zhao,
                    drafted_tea_house):
    """The Tea House, active at WeChat Pay and Bank A, after a settlement change Bank A refused."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's notifications come back to
    _wechat, bank_a, _contract = _active_on_wechat_and_bank_a(simulator_server.base_url, drafted_tea_house,
                                                              clerk_wang, risk_zhao)
    merchant = Merchant.objects.get(pk=drafted_tea_house.merchant_id)
    for change in merchant_settlement_change(merchant_id=merchant.pk, actor=clerk_wang, account=NEW_ACCOUNT):
        settlement_change_poll(change_id=change.pk)
    assert sorted(merchant.settlement_changes.values_list("state", flat=True)) == ["failed", "succeeded"]
    return merchant, bank_a


def needs_action_tile(client):
    return next(tile for section in client.get("/staff/").context["sections"] for tile in section["queues"]
                if tile.label == "Needs action")


def rows_listed(html: str) -> dict[str, int]:
    """The rows of each table of the "Needs action" view, as the clerk sees them (an "empty" row is not one)."""
    counts = {}
    for table in ACTION_TABLES:
        body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
        counts[table] = len(re.findall(r"<tr data-", body))
    return counts


def test_a_refused_change_is_in_needs_action_and_the_home_count_is_the_rows_its_link_opens(
        client, clerk_wang, split_tea_house):
    merchant, _bank_a = split_tea_house
    client.force_login(clerk_wang)

    tile = needs_action_tile(client)
    assert tile.count == 1 and tile.tone == "bad"
    page = client.get(tile.url)
    html = page.content.decode()
    assert rows_listed(html) == {"returned": 0, "action-contracts": 0, "refused-settlement-changes": 1}
    assert page.context["action_count"] == tile.count  # the tab says the same
    refusal = page.context["refused_settlement_changes"][0]
    assert refusal.contract.channel_account.code == "bank-a" and refusal.merchant == merchant
    row = html.split(f'data-settlement-change="{refusal.pk}"', 1)[1].split("</tr>", 1)[0]
    assert merchant.merchant_no in row and "bank-a" in row
    assert "中国工商银行 ***************2333" in row and "账户信息与开户名不符" in row
    assert f'href="/staff/merchants/{merchant.merchant_no}/#settlement-by-channel"' in row
    assert NEW_NUMBER not in html  # masked


def test_the_queues_search_and_channel_filter_apply_to_refused_changes(client, clerk_wang, split_tea_house):
    merchant, _bank_a = split_tea_house
    client.force_login(clerk_wang)

    def listed(**filters) -> int:
        page = client.get("/staff/onboarding/", {"view": "action", **filters})
        assert page.context["action_count"] == len(page.context["refused_settlement_changes"])
        return rows_listed(page.content.decode())["refused-settlement-changes"]

    assert listed(q=merchant.merchant_no) == 1 and listed(q="M00000000000000") == 0
    assert listed(channel_account="bank-a") == 1
    assert listed(channel_account="wechatpay-isv") == 0  # WeChat Pay accepted it


def test_asking_the_change_again_takes_it_off_the_queue(client, clerk_wang, simulator_server, split_tea_house):
    merchant, bank_a = split_tea_house
    client.force_login(clerk_wang)
    requests.post(f"{simulator_server.base_url}/bank/_control/accounts/{bank_a.config['org_no']}/settings",
                  json={"settlement_outcome": "SUCCESS"}, timeout=5).raise_for_status()

    changes = merchant_settlement_change(merchant_id=merchant.pk, actor=clerk_wang, account=NEW_ACCOUNT)
    # Asked again: the channels are deciding; nothing for the clerk to do meanwhile.
    assert needs_action_tile(client).count == 0
    for change in changes:
        settlement_change_poll(change_id=change.pk)

    assert merchant.settlement_accounts.get(current=True).account_number == NEW_NUMBER
    tile = needs_action_tile(client)
    assert tile.count == 0 and tile.tone == ""
    assert rows_listed(client.get(tile.url).content.decode())["refused-settlement-changes"] == 0

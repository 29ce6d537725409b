"""The clerk's and the risk officer's home tiles (design §8 "queues with counts"): every count is exactly the number
of rows the tile's link opens, and the risk queue can be narrowed to the reviews over the SLA."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from django.utils import timezone

from channels.adapters.base import OnboardingResult, OnboardingState
from channels.models import ChannelAccount
from channels.simulators import wechatpay as wechat_sim
from merchants.models import OnboardingApplication, SettlementChangeState
from merchants.services.contracts import contract_apply_result, contract_register_existing
from merchants.services.merchants import merchant_activate, merchant_freeze
from merchants.services.onboarding import (
    application_approve,
    application_return,
    application_review_start,
    application_submit,
)
from merchants.services.settlement import merchant_settlement_change, settlement_change_poll
from tests.factories import MerchantFactory
from tests.merchants.conftest import offer
from tests.merchants.test_workbench_queue import draft

pytestmark = pytest.mark.django_db

# The tables of the onboarding queue's "Needs action" view, every one of which its count covers
# (workbench.needs_action_count): returned applications, contracts waiting on someone, refused settlement changes.
NEEDS_ACTION_TABLES = ("returned", "action_contracts", "refused_settlement_changes")


def _submitted(clerk, n: int, *, hours_ago: float = 1) -> OnboardingApplication:
    application = draft(clerk, n)
    application_submit(application_id=application.pk, actor=clerk)
    OnboardingApplication.objects.filter(pk=application.pk).update(
        submitted_at=timezone.now() - dt.timedelta(hours=hours_ago))
    return application


@pytest.fixture
def busy_desk(clerk_wang, risk_zhao, onboarding_accounts):
    """Applications in every queue: two drafts, three waiting (one over the SLA), two in review (one over the SLA),
    one returned, one approved with a contract the channel rejected, and a frozen merchant."""
    draft(clerk_wang, 1)
    draft(clerk_wang, 2)
    _submitted(clerk_wang, 3)
    _submitted(clerk_wang, 4, hours_ago=2)
    _submitted(clerk_wang, 5, hours_ago=30)
    for n, hours in ((6, 3), (7, 40)):
        application_review_start(application_id=_submitted(clerk_wang, n, hours_ago=hours).pk, actor=risk_zhao)
    returned = _submitted(clerk_wang, 8)
    application_review_start(application_id=returned.pk, actor=risk_zhao)
    application_return(application_id=returned.pk, actor=risk_zhao,
                       reasons=[{"field": "licence_no", "reason": "licence number unreadable"}])
    approved = draft(clerk_wang, 9, requested_products=["wechat.native"])
    application_submit(application_id=approved.pk, actor=clerk_wang)
    application_review_start(application_id=approved.pk, actor=risk_zhao)
    application_approve(application_id=approved.pk, actor=risk_zhao)
    contract = approved.contracts.get(channel_account__code="bank-a")
    contract_apply_result(contract_id=contract.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.SUBMITTED, application_id="bank-a-1"))
    contract_apply_result(contract_id=contract.pk, source="channel",
                          result=OnboardingResult(state=OnboardingState.REJECTED, message="资料不全"))
    frozen = MerchantFactory(short_name="Suspicious Shop")
    merchant_activate(merchant_id=frozen.pk, actor=None, reason="test")
    merchant_freeze(merchant_id=frozen.pk, actor=None, reason="chargebacks")


@pytest.fixture
def busy_desk_and_a_refused_settlement_change(busy_desk, simulator_server, request, clerk_wang):
    """The busy desk, and a merchant active at WeChat Pay (on a contract it held before aggpay) whose settlement
    account change WeChat refused: one more row of the "Needs action" view, in a table of its own."""
    root = simulator_server.base_url
    wechat = ChannelAccount.objects.create(code="wechatpay-sim", kind="wechatpay", name="WeChat Pay simulator",
                                           base_url=f"{root}/wechatpay", enabled=True,
                                           config=wechat_sim.provision(root, name=request.node.name[:60]))
    requests.post(f"{root}/wechatpay/_control/accounts/{wechat.config['sp_mchid']}/settings", timeout=5, json={
        "settlement_review": {"delay_seconds": 0, "outcome": "reject", "reason": "账户信息与开户名不符"}}
    ).raise_for_status()
    offer(wechat, "wechat.native", "0.0038")
    noodles = MerchantFactory(short_name="Lakeside Noodles", legal_name="杭州湖畔面馆有限公司")
    contract_register_existing(merchant=noodles, account=wechat, sub_mchid="1900000109",
                               rates={"wechat.native": "0.0038"}, actor=None, reason="signed before aggpay")
    merchant_activate(merchant_id=noodles.pk, actor=None, reason="test")
    [change] = merchant_settlement_change(merchant_id=noodles.pk, actor=clerk_wang, account={
        "account_type": "corporate", "bank_name": "中国工商银行", "bank_branch": "杭州分行",
        "account_number": "6222000011112222333", "account_holder": noodles.legal_name})
    settlement_change_poll(change_id=change.pk)  # sent; WeChat reviews it
    assert settlement_change_poll(change_id=change.pk).state == SettlementChangeState.FAILED


def _tiles(client) -> list:
    return [q for s in client.get("/staff/").context["sections"] for q in s["queues"]]


def _rows_behind(client, url: str) -> int:
    """How many rows the page at ``url`` lists (the section its #fragment names, if any)."""
    path, _, fragment = url.partition("#")
    response = client.get(path)
    assert response.status_code == 200, url
    if fragment == "frozen":
        return len(response.context["frozen"])
    if response.context.get("view") == "action":
        return sum(len(response.context[table]) for table in NEEDS_ACTION_TABLES)
    assert not response.context["page"].has_next(), "keep the fixture under one page"
    return len(response.context["rows"])


@pytest.mark.parametrize("desk", ["busy_desk", "busy_desk_and_a_refused_settlement_change"])
@pytest.mark.parametrize("persona", ["clerk_wang", "risk_zhao"])
def test_each_home_count_is_the_number_of_rows_its_link_opens(client, desk, persona, request):
    request.getfixturevalue(desk)
    client.force_login(request.getfixturevalue(persona))
    tiles = _tiles(client)
    assert tiles and any(tile.count for tile in tiles)
    for tile in tiles:
        assert _rows_behind(client, tile.url) == tile.count, tile.label


def test_the_clerk_home_shows_waiting_and_in_review_as_separate_tiles(client, busy_desk, clerk_wang):
    client.force_login(clerk_wang)
    counts = {tile.label: tile.count for tile in _tiles(client)}
    assert counts["Waiting for risk"] == 3 and counts["In risk review"] == 2
    assert counts["Needs action"] == 2 and counts["Drafts"] == 2 and counts["Contracting"] == 1


def test_the_risk_home_counts_waiting_overdue_and_frozen(client, busy_desk, risk_zhao):
    client.force_login(risk_zhao)
    tiles = {tile.label: tile for tile in _tiles(client)}
    assert tiles["Applications waiting for review"].count == 3
    assert tiles["Over the review SLA"].count == 2 and tiles["Over the review SLA"].url == "/staff/risk/?overdue=1"
    assert tiles["In review"].count == 2 and tiles["Frozen merchants"].count == 1


def test_the_overdue_filter_lists_only_open_reviews_past_the_sla_oldest_first(client, busy_desk, risk_zhao):
    client.force_login(risk_zhao)
    response = client.get("/staff/risk/", {"overdue": "1"})
    rows = response.context["rows"]
    assert [r.merchant.short_name for r in rows] == ["茶馆7", "茶馆5"]
    assert all(r.overdue for r in rows)
    html = response.content.decode()
    assert 'id="overdue-filter"' in html and "Show all open" in html
    assert '<input type="hidden" name="overdue" value="1">' in html  # the search keeps the filter
    # The state tabs leave the filter: each opens its whole tab.
    assert 'href="?state=submitted"' in html

    everything = client.get("/staff/risk/")
    assert len(everything.context["rows"]) == 5 and 'href="?overdue=1"' in everything.content.decode()

"""The merchant page's limit and lift forms (merchants.views ``contract_limit``, ``contract_lift_limit``) are risk's
alone and change only the contract named under its own merchant (design §5 rule 11, §8): every other role, a risk
account without the limit permission, a GET, a POST without the CSRF token, another merchant's contract or an id that
is no contract's change nothing and write no audit row; a second click, or a second officer at the same moment, finds
the limit already lifted and is told so. What the card shows of a limit is escaped, and the channel's punishment plan
masked (rule 10). The page's queries do not grow with a contract's limits and suspensions."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.models import Contract, ContractState
from merchants.services.contract_risk import contract_lift_limit, contract_limit
from merchants.services.contracts import contract_apply_result
from merchants.services.settlement import contract_resume, contract_suspend, contract_terminate
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.factories import MerchantFactory, UserFactory
from tests.merchants.contract_card import card, page
from tests.merchants.test_lock_order import _Staged
from tests.risk.violations import TEA_SUB, contract_on, wechat_account

pytestmark = pytest.mark.django_db



@pytest.fixture
def limited(tea_contract, risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    return tea_contract


def url(contract, verb: str, *, merchant_no: str | None = None, contract_id=None) -> str:
    return (f"/staff/merchants/{merchant_no or contract.merchant.merchant_no}/contracts/"
            f"{contract.pk if contract_id is None else contract_id}/{verb}/")


def state_of(contract) -> str:
    return Contract.objects.get(pk=contract.pk).state


def changes_audited() -> int:
    return AuditLog.objects.filter(action__in=("merchants.contract.limit", "merchants.contract.lift_limit")).count()


def risk_reader():
    """A staff account that opens risk's pages and merchants but was never given ``risk.limit_contract``."""
    user = UserFactory(username="qian.readonly")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="aggpay", codename="access_risk"),
                              Permission.objects.get(content_type__app_label="merchants", codename="view_merchant"))
    return type(user).objects.get(pk=user.pk)


# --- who may post -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["onboarding_clerk", "support_agent", "operations", "finance", "admin",
                                 "risk without the limit permission"])
@pytest.mark.parametrize("verb,start", [("limit", ContractState.ACTIVE), ("lift-limit", ContractState.LIMITED)])
def test_nobody_but_a_risk_officer_limits_or_lifts_on_the_page(client, staff_member, tea_contract, risk_zhao, who,
                                                                verb, start):
    if start == ContractState.LIMITED:
        contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    before = changes_audited()
    client.force_login(risk_reader() if who.startswith("risk") else staff_member(who))

    response = client.post(url(tea_contract, verb), {"reason": "I think so"})

    assert response.status_code == 403
    assert state_of(tea_contract) == start and changes_audited() == before


@pytest.mark.parametrize("verb", ["limit", "lift-limit"])
def test_an_anonymous_post_goes_to_the_login_page_and_changes_nothing(client, limited, verb):
    response = client.post(url(limited, verb), {"reason": "anyone"})

    assert response.status_code == 302 and response["Location"].startswith("/staff/login/")
    assert state_of(limited) == ContractState.LIMITED and changes_audited() == 1


@pytest.mark.parametrize("verb", ["limit", "lift-limit"])
def test_a_get_is_refused_and_changes_nothing(client, limited, risk_zhao, verb):
    client.force_login(risk_zhao)

    assert client.get(url(limited, verb), {"reason": "by link"}).status_code == 405
    assert state_of(limited) == ContractState.LIMITED and changes_audited() == 1


def test_the_post_needs_the_csrf_token(limited, risk_zhao):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(risk_zhao)

    assert browser.post(url(limited, "lift-limit"), {"reason": "no token"}).status_code == 403
    assert state_of(limited) == ContractState.LIMITED and changes_audited() == 1


# --- which contract -------------------------------------------------------------------------------------------------
def test_another_merchants_contract_posted_under_this_merchants_page_is_not_found(client, wx, limited, risk_zhao):
    other = contract_on(wechat_account("wx-other"), MerchantFactory(), sub_mchid="1900000555")
    client.force_login(risk_zhao)

    assert client.post(url(other, "limit", merchant_no=limited.merchant.merchant_no),
                       {"reason": "wrong page"}).status_code == 404
    assert client.post(url(limited, "lift-limit", merchant_no=other.merchant.merchant_no),
                       {"reason": "wrong page"}).status_code == 404
    assert (state_of(other), state_of(limited)) == (ContractState.ACTIVE, ContractState.LIMITED)
    assert changes_audited() == 1


@pytest.mark.parametrize("contract_id", ["abc", "-1", "99999999999999999999999999", "1.5"])
def test_an_id_that_is_no_contracts_is_not_found(client, limited, risk_zhao, contract_id):
    client.force_login(risk_zhao)

    assert client.post(url(limited, "lift-limit", contract_id=contract_id), {"reason": "x"}).status_code == 404
    assert state_of(limited) == ContractState.LIMITED and changes_audited() == 1


# --- twice, and two at once ---------------------------------------------------------------------------------------
def test_a_second_click_on_lift_is_told_the_limit_is_gone_and_writes_nothing(client, limited, risk_zhao):
    client.force_login(risk_zhao)
    client.post(url(limited, "lift-limit"), {"reason": "cleared by phone"})

    again = client.post(url(limited, "lift-limit"), {"reason": "cleared by phone"})

    assert again.status_code == 409
    assert "Not lifted: " in again.content.decode() and "is active; cannot lift the limit of it" in \
        again.content.decode()
    assert state_of(limited) == ContractState.ACTIVE
    assert AuditLog.objects.filter(action="merchants.contract.lift_limit").count() == 1
    assert limited.events.filter(from_state=ContractState.LIMITED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_officers_lifting_at_once_lift_it_once(staff_member):
    """Zhao's lift holds the contract's lock when Sun's arrives: Sun's waits, then finds it active and is refused."""
    zhao, sun = staff_member("risk_officer", username="zhao.risk"), staff_member("risk_officer", username="sun.risk")
    contract = contract_on(wechat_account(), MerchantFactory(), sub_mchid=TEA_SUB)
    contract_limit(contract_id=contract.pk, actor=zhao, reason="WeChat closed its payments")
    staged = _Staged()

    def zhao_lifts():
        with transaction.atomic():
            contract_lift_limit(contract_id=contract.pk, actor=zhao, reason="cleared by phone")
            staged.pause()

    staged.run(zhao_lifts, lambda: contract_lift_limit(contract_id=contract.pk, actor=sun, reason="cleared too"))

    assert staged.waited, "Sun's lift never waited for Zhao's: the race was not staged"
    assert [type(exc) for exc in staged.errors] == [InvalidState]
    assert state_of(contract) == ContractState.ACTIVE
    assert list(AuditLog.objects.filter(action="merchants.contract.lift_limit").values_list("actor__username",
                                                                                          flat=True)) == ["zhao.risk"]


# --- the limit among suspensions ------------------------------------------------------------------------------------
def test_a_limited_contract_suspended_and_terminated_offers_no_limit_form_and_refuses_a_lift(
        client, limited, risk_zhao, clerk_wang):
    contract_suspend(contract_id=limited.pk, actor=clerk_wang, reason="merchant closed")
    contract_terminate(contract_id=limited.pk, actor=clerk_wang, reason="merchant closed for good")
    client.force_login(risk_zhao)

    shown = card(client.get(page(limited.merchant)).content.decode(), limited)
    refused = client.post(url(limited, "lift-limit"), {"reason": "cleared"})

    assert 'data-role="limit"' not in shown and "lift-limit" not in shown and "limit-form" not in shown
    assert 'data-role="resumes-limited"' not in shown
    assert refused.status_code == 409 and state_of(limited) == ContractState.TERMINATED
    assert changes_audited() == 1


def test_a_limit_lifted_while_suspended_leaves_it_suspended_and_the_resume_brings_it_back_active(
        limited, risk_zhao, clerk_wang):
    """Lifting a suspended contract's limit (the channel lifted it meanwhile) does not end the clerk's suspension:
    the contract stays suspended and resumes active; a second lift finds no limit to lift and says so."""
    contract_suspend(contract_id=limited.pk, actor=clerk_wang, reason="pause")

    contract_lift_limit(contract_id=limited.pk, actor=risk_zhao, reason="appeal approved")

    assert state_of(limited) == ContractState.SUSPENDED
    with pytest.raises(InvalidState) as again:
        contract_lift_limit(contract_id=limited.pk, actor=risk_zhao, reason="appeal approved")
    assert "is suspended and resumes active: it has no limit to lift" in again.value.message
    assert AuditLog.objects.filter(action="merchants.contract.lift_limit").count() == 1
    assert contract_resume(contract_id=limited.pk, actor=clerk_wang, reason="back").state == ContractState.ACTIVE


def test_suspending_twice_is_refused_and_each_resume_goes_back_to_the_latest_suspensions_state(
        limited, risk_zhao, clerk_wang):
    contract_suspend(contract_id=limited.pk, actor=clerk_wang, reason="pause")
    with pytest.raises(InvalidState):
        contract_suspend(contract_id=limited.pk, actor=clerk_wang, reason="pause again")
    assert contract_resume(contract_id=limited.pk, actor=clerk_wang, reason="back").state == ContractState.LIMITED
    contract_lift_limit(contract_id=limited.pk, actor=risk_zhao, reason="cleared")
    contract_suspend(contract_id=limited.pk, actor=clerk_wang, reason="pause")
    assert contract_resume(contract_id=limited.pk, actor=clerk_wang, reason="back").state == ContractState.ACTIVE
    contract_limit(contract_id=limited.pk, actor=risk_zhao, reason="second punishment")
    contract_suspend(contract_id=limited.pk, actor=clerk_wang, reason="pause")

    assert contract_resume(contract_id=limited.pk, actor=clerk_wang, reason="back").state == ContractState.LIMITED


def test_a_channel_answer_noted_while_limited_leaves_the_limit_whose_it_was(client, limited, risk_zhao):
    """A late answer is noted on the limited contract's timeline (limited → limited): the card still names Zhao's
    limit and a notice's lift still finds the limit it was set for (``limit_event`` reads moves into limited only)."""
    contract_apply_result(contract_id=limited.pk, source="channel", submitting=True,
                          result=OnboardingResult(state=OnboardingState.FINISHED, sub_mchid=TEA_SUB, message="late"))
    assert limited.events.last().to_state == ContractState.LIMITED
    client.force_login(risk_zhao)

    shown = card(client.get(page(limited.merchant)).content.decode(), limited)

    details = re.search(r'data-role="limit-details">(.*?)</div>', shown, re.S).group(1)
    assert "by zhao.risk" in details and "WeChat closed its payments" in details


# --- what the card shows ----------------------------------------------------------------------------------------------
def test_the_reason_and_the_punishment_plan_are_escaped_and_the_plan_masked(client, wx, tea_contract, risk_zhao,
                                                                           clerk_wang):
    notice = channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id="EV-X", data={
        "record_id": "VR-X", "sub_mchid": TEA_SUB,
        "punish_plan": '<img src=x onerror="alert(1)">关闭支付权限，法人 110101199003071234 电话 13812345678'}).notice
    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit",
                               note="<script>alert('note')</script> payments closed")

    for who in (risk_zhao, clerk_wang):
        client.force_login(who)
        shown = card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract)
        assert "<script>alert" not in shown and "&lt;script&gt;alert" in shown
        assert "<img src=x" not in shown and "&lt;img src=x" in shown
        assert "110101199003071234" not in shown and "13812345678" not in shown
        assert "关闭支付权限" in shown


# --- queries ------------------------------------------------------------------------------------------------------------
def _contracts_with_history(merchant, *, cycles: int, risk, clerk) -> None:
    """Six contracts, each limited, suspended, resumed limited and lifted ``cycles`` times, then limited on a channel
    notice; every other one suspended again (its card says the resume brings the limit back)."""
    for i in range(6):
        account = wechat_account(f"wx-{merchant.pk}-{i}")
        contract = contract_on(account, merchant, sub_mchid=f"19000{i:05d}")
        for _ in range(cycles):
            contract_limit(contract_id=contract.pk, actor=risk, reason="scare")
            contract_suspend(contract_id=contract.pk, actor=clerk, reason="pause")
            contract_resume(contract_id=contract.pk, actor=clerk, reason="back")
            contract_lift_limit(contract_id=contract.pk, actor=risk, reason="cleared")
        notice = channel_risk_notice_record(account=account, event_type="VIOLATION.PUNISH", event_id=f"EV-{merchant.pk}-{i}", data={
            "record_id": f"VR-{i}", "sub_mchid": f"19000{i:05d}", "punish_plan": "关闭支付权限"}).notice
        channel_risk_notice_handle(notice_id=notice.pk, actor=risk, action="limit", note="payments closed")
        if i % 2:
            contract_suspend(contract_id=contract.pk, actor=clerk, reason="pause")


def _page_queries(client, merchant) -> int:
    client.get(page(merchant))  # sessions and caches warmed
    with CaptureQueriesContext(connection) as queries:
        assert client.get(page(merchant)).status_code == 200
    return len(queries.captured_queries)


def test_the_merchant_pages_queries_do_not_grow_with_limits_and_suspensions(
        client, risk_zhao, clerk_wang, django_assert_max_num_queries):
    few, many = MerchantFactory(), MerchantFactory()
    _contracts_with_history(few, cycles=1, risk=risk_zhao, clerk=clerk_wang)
    _contracts_with_history(many, cycles=8, risk=risk_zhao, clerk=clerk_wang)
    client.force_login(risk_zhao)

    assert _page_queries(client, many) == _page_queries(client, few)
    # A card's own queries (rates and costs, their history, timeline, the limit and its notice — in force, or held
    # by a suspension to come back on the resume): a handful per contract, whatever its history.
    with django_assert_max_num_queries(66):
        client.get(page(many))

"""A channel account takes traffic only after its interface evaluation went live (design §1, issue 3 "Interface
evaluation"): enabling — by the service, the account page, the evaluation page or the admin — is refused until then,
saying what is left to do; disabling never is."""

from __future__ import annotations

import pytest
from django.urls import reverse

from aggpay.errors import InvalidState
from aggpay.models import AuditLog
from channels.models import ChannelAccount, ChannelConfigChange, EvaluationState
from channels.services.accounts import channel_account_create, channel_account_disable, channel_account_enable
from channels.services.evaluations import interface_evaluation_go_live, interface_evaluation_start
from tests.channels.test_channel_pages import ops, wechat_account  # noqa: F401 - fixtures
from tests.factories import ChannelAccountFactory, channel_config

pytestmark = pytest.mark.django_db

WHAT_IS_LEFT = {
    EvaluationState.EVALUATING: "the interface evaluation of wx-isv is still evaluating; finish its checklist",
    EvaluationState.APPROVED: "the interface evaluation of wx-isv is approved; start integrating",
    EvaluationState.INTEGRATING: "the interface evaluation of wx-isv is integrating; take it live first",
    EvaluationState.REJECTED: "the interface evaluation of wx-isv was rejected; start a new one",
}


def _enabled_changes(account) -> int:
    return (ChannelConfigChange.objects.filter(account=account, action="account.enabled").count()
            + AuditLog.objects.filter(action="channels.account.enabled").count())


def test_it_refuses_to_enable_an_account_that_has_no_evaluation(wechat_account):  # noqa: F811
    with pytest.raises(InvalidState) as refused:
        channel_account_enable(account_id=wechat_account.pk, actor="test", reason="go")

    assert refused.value.param == "account_id"
    assert "channel account wx-isv has no interface evaluation; start one" in refused.value.message
    wechat_account.refresh_from_db()
    assert wechat_account.enabled is False
    assert _enabled_changes(wechat_account) == 0


@pytest.mark.parametrize("state", list(WHAT_IS_LEFT))
def test_it_refuses_to_enable_while_the_evaluation_is_not_live_saying_what_is_left(
        wechat_account, evaluate, state):  # noqa: F811
    evaluate(wechat_account, until=state)

    with pytest.raises(InvalidState) as refused:
        channel_account_enable(account_id=wechat_account.pk, actor="test", reason="go")

    assert WHAT_IS_LEFT[state] in refused.value.message
    wechat_account.refresh_from_db()
    assert wechat_account.enabled is False
    assert _enabled_changes(wechat_account) == 0


def test_it_enables_the_account_once_its_evaluation_is_live(wechat_account, evaluate):  # noqa: F811
    evaluate(wechat_account)

    channel_account_enable(account_id=wechat_account.pk, actor="test", reason="evaluation live")

    wechat_account.refresh_from_db()
    assert wechat_account.enabled is True
    assert wechat_account.changes.get(action="account.enabled").reason == "evaluation live"
    assert AuditLog.objects.filter(action="channels.account.enabled", reason="evaluation live").exists()


def test_a_new_evaluation_after_a_rejection_decides_once_it_is_live(wechat_account, evaluate):  # noqa: F811
    evaluate(wechat_account, until=EvaluationState.REJECTED)
    evaluate(wechat_account)

    channel_account_enable(account_id=wechat_account.pk, actor="test", reason="second evaluation live")

    wechat_account.refresh_from_db()
    assert wechat_account.enabled is True


def test_going_live_does_not_enable_the_account_by_itself(wechat_account, evaluate):  # noqa: F811
    evaluate(wechat_account)

    wechat_account.refresh_from_db()
    assert wechat_account.enabled is False


def test_it_refuses_to_create_an_account_enabled_writing_nothing():
    with pytest.raises(InvalidState) as refused:
        channel_account_create(actor="test", kind="bank", code="bank-new", name="Bank New",
                               base_url="http://127.0.0.1:9/bank", config=channel_config("bank"), enabled=True)

    assert refused.value.param == "enabled"
    assert "create bank-new disabled, take its interface evaluation live" in refused.value.message
    assert not ChannelAccount.objects.filter(code="bank-new").exists()
    assert not ChannelConfigChange.objects.exists() and not AuditLog.objects.exists()


def test_disabling_is_never_blocked_even_without_an_evaluation():
    # Enabled before evaluations were required (the factory writes the row as such an account would be).
    account = ChannelAccountFactory(code="bank-old", enabled=True)

    channel_account_disable(account_id=account.pk, actor="test", reason="channel outage")

    account.refresh_from_db()
    assert account.enabled is False
    with pytest.raises(InvalidState):
        channel_account_enable(account_id=account.pk, actor="test", reason="outage over")


def test_the_account_page_says_why_it_cannot_be_enabled_and_links_to_the_evaluation(
        ops, wechat_account, evaluate):  # noqa: F811
    page = ops.get(reverse("channels:account_detail", args=["wx-isv"])).content.decode()

    assert 'id="enable-refusal"' in page and "has no interface evaluation; start one" in page
    assert reverse("channels:account_enable", args=["wx-isv"]) not in page
    assert reverse("channels:evaluation_current", args=["wx-isv"]) in page

    evaluation = evaluate(wechat_account, until=EvaluationState.INTEGRATING)
    page = ops.get(reverse("channels:account_detail", args=["wx-isv"])).content.decode()
    assert "the interface evaluation of wx-isv is integrating; take it live first" in page

    interface_evaluation_go_live(evaluation_id=evaluation.pk, actor="test")
    page = ops.get(reverse("channels:account_detail", args=["wx-isv"])).content.decode()
    assert 'id="enable-refusal"' not in page
    assert reverse("channels:account_enable", args=["wx-isv"]) in page


def test_posting_the_enable_form_anyway_is_refused_with_the_reason(ops, wechat_account):  # noqa: F811
    response = ops.post(reverse("channels:account_enable", args=["wx-isv"]), {"reason": "stale page"}, follow=True)

    assert "has no interface evaluation; start one" in response.content.decode()
    assert ChannelAccount.objects.get(code="wx-isv").enabled is False


def test_the_live_evaluations_page_offers_to_enable_the_account(ops, wechat_account, evaluate):  # noqa: F811
    evaluation = evaluate(wechat_account)
    url = reverse("channels:evaluation_detail", args=["wx-isv", evaluation.pk])

    page = ops.get(url).content.decode()
    assert 'id="enable-now"' in page and reverse("channels:account_enable", args=["wx-isv"]) in page

    ops.post(reverse("channels:account_enable", args=["wx-isv"]), {"reason": "evaluation live"})
    assert ChannelAccount.objects.get(code="wx-isv").enabled is True
    assert 'id="enable-now"' not in ops.get(url).content.decode()


def test_an_account_enabled_before_the_rule_stays_enabled_and_its_page_warns(ops):  # noqa: F811
    account = ChannelAccountFactory(code="bank-old", enabled=True)
    interface_evaluation_start(account_id=account.pk, actor="test")

    page = ops.get(reverse("channels:account_detail", args=["bank-old"])).content.decode()

    assert 'id="enabled-without-live-evaluation"' in page and "(evaluating)" in page
    assert reverse("channels:account_disable", args=["bank-old"]) in page
    assert ChannelAccount.objects.get(code="bank-old").enabled is True


def test_the_admin_enable_action_is_refused_with_the_reason(admin_client, wechat_account):  # noqa: F811
    url = reverse("admin:channels_channelaccount_changelist")

    response = admin_client.post(url, {"action": "enable_accounts", "_selected_action": [wechat_account.pk],
                                       "apply": "1", "reason": "ops lead says so"}, follow=True)

    assert "has no interface evaluation; start one" in response.content.decode()
    assert ChannelAccount.objects.get(pk=wechat_account.pk).enabled is False
    assert _enabled_changes(wechat_account) == 0

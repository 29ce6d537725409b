"""A channel's merchant violation notice (channel-protocols.md A.15) becomes one channel risk notice for risk's queue
(risk.services.channel_notices): matched to our contract by account and sub-merchant when one has it, kept unmatched
otherwise; the channel's record id is the dedupe key, so a copy changes nothing and is still acknowledged with
WeChat's success answer (design §5 rule 4). Notices are signed WeChat callbacks posted to the account's URL."""

from __future__ import annotations

import datetime as dt

import pytest

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from risk.models import ChannelRiskNotice
from risk.services.channel_notices import channel_risk_notice_record
from tests.race_condition import in_threads
from tests.risk.violations import TEA_SUB, contract_on, post_violation, wechat_account

pytestmark = pytest.mark.django_db

def _callbacks(account):
    return list(ChannelCallback.objects.filter(account=account).order_by("received_at", "id"))


def test_it_records_a_signed_punishment_as_one_new_notice_matched_to_the_contract(client, wx, tea_contract):
    response = post_violation(client, wx, record_id="VR-0001", sub_mchid=TEA_SUB, event_id="EV-P1",
                              punish_plan="限制收款：单日 5000 元")

    assert (response.status_code, response.content) == (204, b"")  # A.4: WeChat's success answer
    (callback,) = _callbacks(wx)
    assert (callback.kind, callback.outcome) == ("violation", CallbackOutcome.APPLIED)
    (notice,) = ChannelRiskNotice.objects.all()
    assert (notice.kind, notice.record_id, notice.state) == ("punish", "VR-0001", "new")
    assert (notice.contract, notice.merchant) == (tea_contract, tea_contract.merchant)
    assert (notice.sub_mchid, notice.company_name, notice.punish_plan) == (TEA_SUB, "杭州茶馆有限公司",
                                                                         "限制收款：单日 5000 元")
    assert (notice.risk_type, notice.risk_description, notice.punish_description) == (
        "SUSPECTED_FRAUD", "涉嫌欺诈", "商户存在违规交易")
    assert notice.punish_time == dt.datetime(2026, 11, 27, 1, 30, tzinfo=dt.UTC)
    assert notice.source_callback() == callback
    assert "VR-0001" in callback.message and tea_contract.merchant.merchant_no in callback.message
    assert AuditLog.objects.filter(action="risk.channel_notice.received", target_id=str(notice.pk),
                                   actor_label=f"channel:{wx.code}").exists()


def test_a_copy_of_the_same_record_is_a_duplicate_that_changes_nothing(client, wx, tea_contract):
    post_violation(client, wx, record_id="VR-0002", sub_mchid=TEA_SUB, event_id="EV-D1")
    first = ChannelRiskNotice.objects.get()

    # The same notice again (a retry), and the same record under another event id with other words.
    again = post_violation(client, wx, record_id="VR-0002", sub_mchid=TEA_SUB, event_id="EV-D1")
    reworded = post_violation(client, wx, record_id="VR-0002", sub_mchid=TEA_SUB, event_id="EV-D2",
                              punish_plan="另一个说法")

    assert again.status_code == reworded.status_code == 204
    assert [c.outcome for c in _callbacks(wx)] == [CallbackOutcome.APPLIED, CallbackOutcome.DUPLICATE,
                                                    CallbackOutcome.DUPLICATE]
    (notice,) = ChannelRiskNotice.objects.all()
    assert (notice.pk, notice.punish_plan, notice.event_id) == (first.pk, "关闭支付权限", "EV-D1")
    assert AuditLog.objects.filter(action="risk.channel_notice.received").count() == 1


def test_a_notice_whose_sub_merchant_no_contract_has_is_kept_unmatched(client, wx, tea_contract):
    response = post_violation(client, wx, record_id="VR-0003", sub_mchid="1900009999", event="INTERCEPT")

    assert response.status_code == 204
    notice = ChannelRiskNotice.objects.get()
    assert (notice.kind, notice.sub_mchid, notice.contract, notice.merchant) == ("intercept", "1900009999",
                                                                                None, None)
    (callback,) = _callbacks(wx)
    assert callback.outcome == CallbackOutcome.APPLIED and "unmatched" in callback.message


def test_a_sub_merchant_of_another_account_is_not_matched(client, wx, tea_house):
    other = wechat_account("wx-other")
    contract_on(other, tea_house, sub_mchid=TEA_SUB)

    post_violation(client, wx, record_id="VR-0004", sub_mchid=TEA_SUB)

    assert ChannelRiskNotice.objects.get().contract is None


def test_an_appeal_update_of_a_punished_record_is_a_notice_of_its_own(client, wx, tea_contract):
    post_violation(client, wx, record_id="VR-0005", sub_mchid=TEA_SUB, event="PUNISH")
    post_violation(client, wx, record_id="VR-0005", sub_mchid=TEA_SUB, event="APPEAL")

    assert sorted(ChannelRiskNotice.objects.values_list("kind", flat=True)) == ["appeal", "punish"]
    assert {c.outcome for c in _callbacks(wx)} == {CallbackOutcome.APPLIED}


def test_each_appeal_update_of_one_record_is_kept_and_a_retry_of_one_is_not(client, wx, tea_contract):
    # An appeal moves through states, each sent about the punished record: the record id alone would keep only the
    # first; WeChat's retry of one update carries that update's callback id again.
    post_violation(client, wx, record_id="VR-0006", sub_mchid=TEA_SUB, event="APPEAL", event_id="EV-A1",
                   punish_plan="申诉审核中")
    post_violation(client, wx, record_id="VR-0006", sub_mchid=TEA_SUB, event="APPEAL", event_id="EV-A2",
                   punish_plan="申诉通过，已恢复收款")
    retry = post_violation(client, wx, record_id="VR-0006", sub_mchid=TEA_SUB, event="APPEAL", event_id="EV-A2",
                           punish_plan="申诉通过，已恢复收款")

    assert retry.status_code == 204
    assert list(ChannelRiskNotice.objects.order_by("id").values_list("event_id", "punish_plan")) == [
        ("EV-A1", "申诉审核中"), ("EV-A2", "申诉通过，已恢复收款")]
    assert [c.outcome for c in _callbacks(wx)] == [CallbackOutcome.APPLIED, CallbackOutcome.APPLIED,
                                                    CallbackOutcome.DUPLICATE]


def test_a_notice_without_a_record_id_is_refused_and_kept_for_risk(client, wx, tea_contract):
    response = post_violation(client, wx, record_id="", sub_mchid=TEA_SUB)

    assert response.status_code == 400  # WeChat sends it again; it is on risk's queue of refused callbacks
    (callback,) = _callbacks(wx)
    assert callback.outcome == CallbackOutcome.REJECTED and "record_id" in callback.message
    assert not ChannelRiskNotice.objects.exists()


def test_an_unreadable_punish_time_is_kept_empty_and_said(client, wx, tea_contract):
    post_violation(client, wx, record_id="VR-0006", sub_mchid=TEA_SUB, punish_time="昨天")

    assert ChannelRiskNotice.objects.get().punish_time is None
    assert "punish_time" in _callbacks(wx)[0].message


def test_a_punish_time_without_an_offset_is_beijing_time(wx, tea_contract):
    recorded = channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id="EV-T", data={
        "record_id": "VR-0007", "sub_mchid": TEA_SUB, "punish_time": "2026-11-27 09:30:00"})

    assert recorded.created and recorded.notice.punish_time == dt.datetime(2026, 11, 27, 1, 30, tzinfo=dt.UTC)


@pytest.mark.django_db(transaction=True)
def test_copies_arriving_together_make_one_notice(wx, tea_contract):
    def record(i):
        return channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id=f"EV-R{i}",
                                          data={"record_id": "VR-0008", "sub_mchid": TEA_SUB}).created

    assert sorted(in_threads(4, record)) == [False, False, False, True]
    assert ChannelRiskNotice.objects.count() == 1


def test_the_audit_row_masks_personal_data_the_punish_plan_quotes(wx, tea_contract):
    # The audit log is a page too (design §5 rule 10): the channel's free text is masked there as on the queue.
    channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id="EV-PII", data={
        "record_id": "VR-0009", "sub_mchid": TEA_SUB, "punish_plan": "关闭收款，联系法人 13812345678"})

    row = AuditLog.objects.get(action="risk.channel_notice.received")
    assert row.data["punish_plan"] == "关闭收款，联系法人 138****5678"

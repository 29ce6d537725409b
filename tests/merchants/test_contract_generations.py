"""A contract's application at the channel lives through generations under one business code (A.13 ``business_code``,
bank.md §9.3 ``apply_no``): submitted, rejected, corrected and resubmitted, perhaps withdrawn by the channel
(design §4 contract machine).

An answer about an earlier generation can still reach us after a resubmission — the bank re-sends its notices for
about 10 h with the event's own ``notify_time`` and accepts replays of a genuine one (bank.md §11.1–11.3), and a poll
can read the old verdict before the channel has picked up the resubmission. Such an answer goes on the contract's
timeline but does not move it. An application the channel withdrew (WeChat ``APPLYMENT_STATE_CANCELED``, the bank's
``CANCELED``, §9.5) leaves the followed states for the clerk's queue instead of being polled forever. The bank takes it
back under its ``apply_no``; WeChat keeps a cancelled applyment under its ``business_code``, so the resubmission goes
under the code's next generation (``…_G2``).

Against the simulators over HTTP; races staged through the real call order.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import requests

from aggpay.models import AuditLog
from channels.callbacks import callback_url
from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants import tasks, workbench
from merchants.models import Contract, ContractEvent, ContractState
from merchants.services.contracts import (
    contract_poll,
    contract_refresh_by_staff,
    contract_resubmit,
    contract_submit,
    contracts_due_for_poll,
)
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from tests.merchants.conftest import offer
from tests.merchants.contract_flow import everything_so_far_happened, watch_the_channel

BLURRED = [{"field": "license.license_pic", "reason": "营业执照照片不清晰，请重新上传"}]
EXPIRED = [{"field": "legal_person.valid_to", "reason": "身份证已过期"}]
ACCOUNTS = {  # kind → (provision at the simulator, the product the account onboards)
    "wechatpay": (lambda root, name: wechat_sim.provision(root, name=name), "wechat.native"),
    "bank": (lambda root, name: bank_sim.provision(root, name=name, settings={"auto_review": None}),
             "wechat.native"),
}


@pytest.fixture
def contract_at(simulator_server, request, drafted_tea_house, clerk_wang, risk_zhao,
                django_capture_on_commit_callbacks):
    """``contract_at("bank")``: Tea House approved for an account of that kind at the simulator (reviews wait for
    the control API) and its contract submitted there."""
    def make(kind: str) -> Contract:
        root = simulator_server.base_url
        provision, product = ACCOUNTS[kind]
        account = ChannelAccount.objects.create(code=f"{kind}-isv", kind=kind, name=f"{kind} ISV",
                                                base_url=f"{root}/{kind}", enabled=True,
                                                config=provision(root, request.node.name[:60]))
        offer(account, product, "0.0038")
        application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
        application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
        with django_capture_on_commit_callbacks(execute=True):  # the submit task runs (Celery is eager)
            application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao)
        contract = drafted_tea_house.contracts.get()
        assert contract.state in (ContractState.SUBMITTED, ContractState.AUDITING) and contract.channel_application_id
        return contract
    return make


def the_channel(simulator_server, contract, action: str, reasons: list | None = None) -> None:
    """The channel's reviewer acts on the application (its simulator's control API)."""
    kind = contract.channel_account.kind
    requests.post(f"{simulator_server.base_url}/{kind}/_control/applications/{contract.channel_application_id}",
                  json={"action": action, "reasons": reasons or []}, timeout=5).raise_for_status()


def the_bank_sends_its_notices(simulator_server) -> None:
    requests.post(f"{simulator_server.base_url}/bank/_control/flush", timeout=10).raise_for_status()


def the_banks_notices_about(simulator_server, contract, apply_state: str) -> list[str]:
    """The signed bodies of the bank's MERCHANT_APPLY notices about the contract's apply in that state."""
    outbox = requests.get(f"{simulator_server.base_url}/bank/_control/notifications", timeout=5).json()
    bodies = [item["body"] for item in outbox["notifications"]]
    return [body for body in bodies if (notice := json.loads(body)).get("notify_type") == "MERCHANT_APPLY"
            and notice.get("apply_id") == contract.channel_application_id and notice["apply_state"] == apply_state]


def a_moment_later() -> None:
    """The clerk takes a while to correct the record; the bank stamps notify_time to the second (bank.md §2)."""
    time.sleep(1.1)


@pytest.fixture
def on_its_way(monkeypatch):
    """``on_its_way(meanwhile)``: the account's real adapter; ``meanwhile`` runs when the resubmission leaves for the
    channel, before the request reaches it."""
    return lambda meanwhile: watch_the_channel(monkeypatch, meanwhile=meanwhile)


def stale_answers(contract) -> list[ContractEvent]:
    return list(contract.events.filter(data__stale=True))


# --- answers about an earlier submission --------------------------------------------------------------------------
@pytest.fixture
def bank_notices_to_us(transactional_db, live_server, settings):
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where the bank's apply notices come back to


def test_the_banks_old_rejection_notice_replayed_after_the_resubmission_is_recorded_but_does_not_reject_it(
        bank_notices_to_us, contract_at, simulator_server, clerk_wang):
    contract = contract_at("bank")
    the_channel(simulator_server, contract, "reject", BLURRED)
    the_bank_sends_its_notices(simulator_server)
    contract.refresh_from_db()
    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == BLURRED
    [old_notice] = the_banks_notices_about(simulator_server, contract, "REJECTED")
    a_moment_later()

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
    assert contract.state == ContractState.AUDITING
    replay = requests.post(callback_url(contract.channel_account), data=old_notice.encode(), timeout=10,
                           headers={"Content-Type": "application/json; charset=utf-8"})

    assert (replay.status_code, replay.text) == (200, "SUCCESS")  # acknowledged: the bank stops re-sending it
    contract.refresh_from_db()
    assert contract.state == ContractState.AUDITING and contract.next_poll_at is not None
    [recorded] = stale_answers(contract)
    assert recorded.data["channel_state"] == "rejected" and recorded.data["rejections"] == BLURRED
    assert recorded.to_state == ContractState.AUDITING and "predates" in recorded.message
    stored = ChannelCallback.objects.filter(account=contract.channel_account, kind="onboarding").latest("id")
    assert stored.outcome == CallbackOutcome.APPLIED and "not applied" in stored.message

    # The bank's verdict on the resubmission itself — the same reasons again — is newer, and applies.
    the_channel(simulator_server, contract, "reject", BLURRED)
    the_bank_sends_its_notices(simulator_server)
    contract.refresh_from_db()
    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == BLURRED
    assert contract.next_poll_at is None


@pytest.mark.parametrize(("kind", "verdict"), [("wechatpay", "reject"), ("bank", "reject"), ("bank", "cancel")])
def test_a_poll_that_still_reads_the_old_verdict_while_the_resubmission_is_on_its_way_does_not_undo_it(
        contract_at, simulator_server, client, clerk_wang, on_its_way, kind, verdict):
    contract = contract_at(kind)
    the_channel(simulator_server, contract, verdict, BLURRED)
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.REJECTED
    refreshed = []
    on_its_way(lambda: refreshed.append(contract_refresh_by_staff(contract_id=contract.pk, actor=clerk_wang)))

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    assert refreshed[0].state == ContractState.SUBMITTED  # the channel still showed the old verdict
    assert contract.state in (ContractState.SUBMITTED, ContractState.AUDITING)  # the channel's answer applied
    assert not contract.events.last().data.get("ignored")
    [recorded] = stale_answers(contract)
    assert recorded.data["channel_state"] == ("canceled" if verdict == "cancel" else "rejected")
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert "answer not applied: the channel still gives the verdict the contract was resubmitted from" in page
    the_channel(simulator_server, contract, "ask_sign")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.TO_BE_SIGNED and contract.sign_url


def test_a_rejection_of_the_resubmission_for_other_reasons_applies_at_once(contract_at, simulator_server, clerk_wang):
    contract = contract_at("wechatpay")
    the_channel(simulator_server, contract, "reject", BLURRED)
    contract_poll(contract_id=contract.pk)
    resubmitted = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
    assert resubmitted.business_code == contract.business_code  # A.13: a rejected applyment is overwritten under it

    the_channel(simulator_server, contract, "reject", EXPIRED)
    contract = contract_poll(contract_id=contract.pk)

    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == EXPIRED
    assert contract.next_poll_at is None and not stale_answers(contract)


def test_the_same_rejection_read_soon_after_the_resubmission_applies_once_the_resubmission_had_time_to_arrive(
        contract_at, simulator_server, clerk_wang):
    """Read by a poll, a rejection naming the same reasons as the one the contract was resubmitted from cannot be
    told from the old one until the resubmission has had time to reach the channel: then it is the channel's verdict
    on the resubmission, and applies."""
    contract = contract_at("wechatpay")
    the_channel(simulator_server, contract, "reject", BLURRED)
    contract_poll(contract_id=contract.pk)
    contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
    the_channel(simulator_server, contract, "reject", BLURRED)  # the record was not corrected where it mattered

    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.SUBMITTED and len(stale_answers(contract)) == 1
    resubmitted_at = contract.events.get(from_state=ContractState.REJECTED, to_state=ContractState.SUBMITTED).created_at
    assert contract.next_poll_at >= resubmitted_at + dt.timedelta(minutes=10)  # asked again once it can be trusted

    everything_so_far_happened(contract, minutes_ago=11)
    assert tasks.poll_due_contracts() == 1
    contract.refresh_from_db()
    assert contract.state == ContractState.REJECTED and contract.rejection_reasons == BLURRED
    assert contract.next_poll_at is None


# --- applications the channel withdrew ------------------------------------------------------------------------
def test_an_application_wechat_withdrew_leaves_polling_for_the_clerks_queue(contract_at, simulator_server, client,
                                                                          clerk_wang):
    contract = contract_at("wechatpay")
    the_channel(simulator_server, contract, "cancel")

    contract = contract_poll(contract_id=contract.pk)

    assert contract.state == ContractState.REJECTED and contract.next_poll_at is None
    [reason] = contract.rejection_reasons
    assert reason["reason"].startswith("withdrawn at the channel") and reason["withdrawn"] is True
    far_ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert contract.pk not in contracts_due_for_poll(now=far_ahead)
    assert contract in workbench.needs_action_contracts()
    audit = AuditLog.objects.get(action="merchants.contract.rejected", target_id=str(contract.pk))
    assert audit.data["channel_state"] == "canceled" and audit.data["from"] == ContractState.SUBMITTED
    moved = contract.events.last()
    assert (moved.from_state, moved.to_state, moved.data["channel_state"]) == ("submitted", "rejected", "canceled")

    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert "withdrew the application" in page and "withdrawn at the channel" in page
    assert f"Resubmit to {contract.channel_account.name}" in page


def test_an_application_the_bank_withdrew_is_reported_by_its_notice_and_can_be_resubmitted(
        bank_notices_to_us, contract_at, simulator_server, clerk_wang):
    contract = contract_at("bank")
    the_channel(simulator_server, contract, "cancel")

    the_bank_sends_its_notices(simulator_server)

    contract.refresh_from_db()
    assert contract.state == ContractState.REJECTED and contract.next_poll_at is None
    assert contract.rejection_reasons[0]["withdrawn"] is True
    assert AuditLog.objects.filter(action="merchants.contract.rejected", data__channel_state="canceled").exists()
    a_moment_later()
    withdrawn_code = contract.business_code
    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)  # bank.md §9.3: CANCELED may be resubmitted
    assert contract.state == ContractState.AUDITING and contract.next_poll_at is not None
    assert contract.business_code == withdrawn_code  # under its apply_no, which the bank takes back


# --- resubmitting an application the channel withdrew --------------------------------------------------------------
def wechat_drops_the_next_submission(simulator_server) -> None:
    """WeChat's front answers 503 to the next applyment submission without storing it."""
    requests.post(f"{simulator_server.base_url}/wechatpay/_control/faults", timeout=5, json={
        "match": {"method": "POST", "path": r"^/v3/applyment4sub/applyment/$"}, "fault": "http_503"}
    ).raise_for_status()


def wechat_holds(contract, business_code: str) -> str:
    """The state of the application WeChat holds under ``business_code`` (A.13 query by business_code)."""
    return contract.channel_account.adapter().onboarding_query(application_id="", business_code=business_code).state


def withdrawn_and_read(simulator_server, contract) -> Contract:
    the_channel(simulator_server, contract, "cancel")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.REJECTED and contract.rejection_reasons[0]["withdrawn"] is True
    return contract


def test_an_application_wechat_withdrew_is_resubmitted_under_a_new_business_code_and_can_then_be_approved(
        contract_at, simulator_server, client, clerk_wang):
    """A.13: ``business_code`` names one applyment; a rejected one may be overwritten under it, a cancelled one stays
    cancelled (WeChat answers a submission under its code with it). The resubmission needs a code of its own."""
    contract = withdrawn_and_read(simulator_server, contract_at("wechatpay"))
    withdrawn_code, withdrawn_applyment = contract.business_code, contract.channel_application_id

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    assert contract.state == ContractState.SUBMITTED
    assert contract.business_code == f"{withdrawn_code}_G2"
    assert contract.channel_application_id not in ("", withdrawn_applyment)  # a new applyment at WeChat
    assert wechat_holds(contract, withdrawn_code) == "canceled"  # the withdrawn one is left as it is
    audit = AuditLog.objects.get(action="merchants.contract.resubmit_requested", target_id=str(contract.pk))
    assert audit.data == {"business_code": contract.business_code, "withdrawn_business_code": withdrawn_code,
                          "withdrawn_application_id": withdrawn_applyment, "withdrawn_sub_mchid": ""}
    resubmitted = contract.events.get(from_state=ContractState.REJECTED, to_state=ContractState.SUBMITTED)
    assert resubmitted.data["withdrawn_business_code"] == withdrawn_code
    assert f"under a new business code {contract.business_code}" in resubmitted.message
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert f'<dt>Business code</dt><dd class="mono">{contract.business_code}</dd>' in page
    assert f"keeps the application it withdrew under {withdrawn_code}" in page  # the timeline names both

    # The same resubmission arriving again (a second click reaching the lock after the first) mints nothing.
    again = contract_submit(contract_id=contract.pk, actor=clerk_wang, resubmission=True)
    assert (again.business_code, again.channel_application_id) == (contract.business_code,
                                                                    contract.channel_application_id)
    assert AuditLog.objects.filter(action="merchants.contract.resubmit_requested").count() == 1

    the_channel(simulator_server, contract, "approve")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.TO_BE_SIGNED and contract.sub_mchid
    the_channel(simulator_server, contract, "approve")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.ACTIVE and contract.business_code == f"{withdrawn_code}_G2"
    assert contract.merchant.contracts.get().state == ContractState.ACTIVE


def test_a_resubmission_under_a_new_code_that_wechat_never_received_is_sent_again_under_that_code(
        contract_at, simulator_server, clerk_wang):
    contract = withdrawn_and_read(simulator_server, contract_at("wechatpay"))
    withdrawn_code = contract.business_code
    wechat_drops_the_next_submission(simulator_server)

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
    assert contract.state == ContractState.SUBMITTED and contract.business_code == f"{withdrawn_code}_G2"
    assert contract.channel_application_id == ""  # the withdrawn applyment is not followed any more

    everything_so_far_happened(contract, minutes_ago=61)
    assert tasks.poll_due_contracts() == 1  # WeChat has nothing under the new code: it is sent again, once

    contract.refresh_from_db()
    assert contract.state == ContractState.SUBMITTED and contract.business_code == f"{withdrawn_code}_G2"
    assert contract.channel_application_id and wechat_holds(contract, contract.business_code) == "auditing"
    assert AuditLog.objects.get(action="merchants.contract.submission_resent").data["business_code"] == \
        contract.business_code


def test_a_resubmission_wechat_withdrew_as_well_is_rejected_at_once_and_the_next_takes_the_third_code(
        contract_at, simulator_server, clerk_wang):
    contract = withdrawn_and_read(simulator_server, contract_at("wechatpay"))
    first_code = contract.business_code
    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    contract = withdrawn_and_read(simulator_server, contract)  # no old answer shares the new code: it applies now
    assert not stale_answers(contract) and contract.next_poll_at is None

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)
    assert contract.business_code == f"{first_code}_G3"
    assert contract.state == ContractState.SUBMITTED and wechat_holds(contract, f"{first_code}_G2") == "canceled"


def test_an_application_wechat_withdrew_while_waiting_for_the_signature_is_resubmitted_without_its_ids(
        contract_at, simulator_server, client, clerk_wang):
    """The sub-merchant id and sign link WeChat gave the withdrawn applyment are its own, not the new one's."""
    contract = contract_at("wechatpay")
    the_channel(simulator_server, contract, "ask_sign")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.TO_BE_SIGNED and contract.sub_mchid and contract.sign_url
    withdrawn_sub_mchid = contract.sub_mchid
    contract = withdrawn_and_read(simulator_server, contract)

    contract = contract_resubmit(contract_id=contract.pk, actor=clerk_wang)

    assert contract.state == ContractState.SUBMITTED and (contract.sub_mchid, contract.sign_url) == ("", "")
    audit = AuditLog.objects.get(action="merchants.contract.resubmit_requested", target_id=str(contract.pk))
    assert audit.data["withdrawn_sub_mchid"] == withdrawn_sub_mchid
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert '<dd class="mono" data-role="sub-mchid">—</dd>' in page
    the_channel(simulator_server, contract, "ask_sign")
    contract = contract_poll(contract_id=contract.pk)
    assert contract.state == ContractState.TO_BE_SIGNED and contract.sub_mchid not in ("", withdrawn_sub_mchid)
    assert contract.channel_application_id in contract.sign_url

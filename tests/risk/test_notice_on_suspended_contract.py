"""A channel risk notice about a sub-merchant whose contract a clerk has suspended (risk.notice_queue
``available_actions``, risk.services.channel_notices; merchants.services.contract_risk): the notice page offers to
limit it and says it stays suspended and comes back limited when resumed; handled so, the notice's limit is the one
the resume brings back, and the appeal about the same record offers — and does — the lift, still while suspended."""

from __future__ import annotations

import re

import pytest

from merchants.models import Contract, ContractState
from merchants.services.settlement import contract_resume, contract_suspend, suspended_from
from risk.models import ChannelRiskNotice
from risk.services.channel_notices import channel_risk_notice_record
from tests.risk.violations import TEA_SUB

pytestmark = pytest.mark.django_db

QUEUE = "/staff/risk/notices/"


def _record(wx, record_id: str, *, event: str = "PUNISH", event_id: str | None = None) -> ChannelRiskNotice:
    return channel_risk_notice_record(account=wx, event_type=f"VIOLATION.{event}", event_id=event_id or f"EV-{record_id}",
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice


@pytest.fixture
def suspended(tea_contract, clerk_wang):
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")
    return tea_contract


def _fresh(contract) -> Contract:
    return Contract.objects.get(pk=contract.pk)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_the_notice_page_offers_to_limit_a_suspended_contract_and_says_what_will_happen(client, wx, suspended,
                                                                                      risk_zhao):
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{_record(wx, 'VR-1').pk}/").content.decode()

    assert 'value="limit"' in html and 'value="lift"' not in html
    assert "Limit the contract — it stays suspended; resumed, it comes back limited (no new orders)" in html
    assert 'id="suspended"' in html and "leaves it suspended" in _text(html)


def test_handling_limit_on_a_suspended_contract_keeps_it_suspended_and_the_resume_brings_the_limit(
        client, wx, suspended, risk_zhao, clerk_wang):
    client.force_login(risk_zhao)
    notice = _record(wx, "VR-1")

    response = client.post(f"{QUEUE}{notice.pk}/handle/", {"action": "limit", "note": "WeChat closed its payments"})

    assert response.status_code == 302
    notice.refresh_from_db()
    assert (notice.state, notice.handled_action) == ("handled", "limit")
    assert _fresh(suspended).state == ContractState.SUSPENDED
    assert suspended_from(_fresh(suspended)) == ContractState.LIMITED
    assert contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="back").state == ContractState.LIMITED


def test_the_appeal_about_the_record_offers_and_does_the_lift_while_still_suspended(client, wx, suspended,
                                                                                     risk_zhao, clerk_wang):
    client.force_login(risk_zhao)
    client.post(f"{QUEUE}{_record(wx, 'VR-1').pk}/handle/", {"action": "limit", "note": "WeChat closed its payments"})
    appeal = _record(wx, "VR-1", event="APPEAL", event_id="EV-APPEAL")
    other = _record(wx, "VR-2", event="INTERCEPT")

    own_page = client.get(f"{QUEUE}{appeal.pk}/").content.decode()
    other_page = client.get(f"{QUEUE}{other.pk}/").content.decode()

    assert "Lift the contract&#x27;s limit — it stays suspended; resumed, it comes back active" in own_page
    assert re.search(r'id="limit">limited by zhao.risk on [\d-]+ [\d:]+ for record <span class="mono">VR-1</span>'
                     r"; the suspension holds it: resuming brings it back limited", own_page)
    # Another record's notice neither lifts it nor limits it again (the resume already brings a limit back).
    assert 'value="lift"' not in other_page and 'value="limit"' not in other_page
    assert "not this notice's to lift" in other_page

    client.post(f"{QUEUE}{appeal.pk}/handle/", {"action": "lift", "note": "appeal approved"})

    assert _fresh(suspended).state == ContractState.SUSPENDED
    assert contract_resume(contract_id=suspended.pk, actor=clerk_wang, reason="back").state == ContractState.ACTIVE

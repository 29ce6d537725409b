"""The reason of a limit or a lift is refused when longer than we keep (merchants.services.contract_risk
``REASON_MAX_LENGTH``): the merchant page's textarea says so to a browser only, and a post that ignores it — or an
admin action, a script — is refused by the service, naming the reason, with nothing written (design §5). The notice
path's longest note still fits."""

from __future__ import annotations

import re

import pytest

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from merchants.models import Contract, ContractState
from merchants.services.contract_risk import REASON_MAX_LENGTH, contract_lift_limit, contract_limit
from risk.services.channel_notices import (
    NOTE_MAX_LENGTH,
    channel_risk_notice_handle,
    channel_risk_notice_record,
)
from tests.risk.violations import TEA_SUB, contract_on, wechat_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def tea_contract(tea_house):
    return contract_on(wechat_account(), tea_house, sub_mchid=TEA_SUB)


def state_of(contract) -> str:
    return Contract.objects.get(pk=contract.pk).state


def written(contract) -> tuple[int, int]:
    return (Contract.objects.get(pk=contract.pk).events.count(),
            AuditLog.objects.filter(action__startswith="merchants.contract.").count())


@pytest.mark.parametrize("service,start", [(contract_limit, ContractState.ACTIVE),
                                           (contract_lift_limit, ContractState.LIMITED)])
def test_an_over_long_reason_is_refused_naming_the_reason_and_nothing_is_written(tea_contract, risk_zhao, service,
                                                                                 start):
    if start == ContractState.LIMITED:
        contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    before = written(tea_contract)

    with pytest.raises(InvalidRequest) as refused:
        service(contract_id=tea_contract.pk, actor=risk_zhao, reason="x" * (REASON_MAX_LENGTH + 1))

    assert refused.value.param == "reason"
    assert f"the reason is longer than {REASON_MAX_LENGTH} characters ({REASON_MAX_LENGTH + 1})" in \
        refused.value.message
    assert state_of(tea_contract) == start and written(tea_contract) == before


def test_a_reason_of_the_longest_length_kept_is_taken_whole(tea_contract, risk_zhao):
    reason = "y" * REASON_MAX_LENGTH

    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason=f"  {reason}  ")  # trimmed, then measured

    assert state_of(tea_contract) == ContractState.LIMITED
    assert Contract.objects.get(pk=tea_contract.pk).events.last().message == reason


def test_the_notice_paths_longest_note_on_the_longest_record_id_still_limits(tea_contract, risk_zhao):
    record_id = "R" * 128  # the longest record id a notice keeps (ChannelRiskNotice.record_id)
    notice = channel_risk_notice_record(account=tea_contract.channel_account, event_type="VIOLATION.PUNISH",
                                        event_id="EV-LONG", data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice

    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit", note="n" * NOTE_MAX_LENGTH)

    assert state_of(tea_contract) == ContractState.LIMITED


def test_the_merchant_page_refuses_an_over_long_reason_at_its_form_and_its_textarea_says_the_same_limit(
        client, tea_contract, risk_zhao):
    client.force_login(risk_zhao)
    url = f"/staff/merchants/{tea_contract.merchant.merchant_no}/contracts/{tea_contract.pk}/limit/"

    response = client.post(url, {"reason": "z" * (REASON_MAX_LENGTH + 1)})

    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(rf'class="field-errors" role="alert">the reason is longer than {REASON_MAX_LENGTH} characters',
                     html)
    assert state_of(tea_contract) == ContractState.ACTIVE
    assert not AuditLog.objects.filter(action="merchants.contract.limit").exists()
    assert f'id="limit-reason-{tea_contract.pk}" rows="2" maxlength="{REASON_MAX_LENGTH}"' in html

"""A channel risk notice whose contract was limited and has had that limit lifted since (risk.notice_queue
``lifted_limit``): the page says who limited it and who lifted it, when and why, and the handle form offers to limit
it *again* — it no longer offers "Limit the contract" as if the contract had never been limited. A contract never
limited, or limited again since, reads as before."""

from __future__ import annotations

import re

import pytest

from merchants.services.contract_risk import contract_lift_limit, contract_limit
from merchants.services.settlement import contract_suspend
from risk.models import ChannelRiskNotice
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.risk.violations import TEA_SUB

pytestmark = pytest.mark.django_db

QUEUE = "/staff/risk/notices/"
LIMIT_LABEL = "Limit the contract (route its traffic away)"
LIMIT_AGAIN_LABEL = "Limit the contract again (route its traffic away) — its last limit was lifted"
LIMIT_AGAIN_SUSPENDED_LABEL = ("Limit the contract again — its last limit was lifted; it stays suspended, and resumed "
                               "comes back limited (no new orders)")


def _record(wx, record_id: str, *, event: str = "PUNISH", event_id: str | None = None) -> ChannelRiskNotice:
    return channel_risk_notice_record(account=wx, event_type=f"VIOLATION.{event}", event_id=event_id or f"EV-{record_id}",
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _offered(html: str) -> list[str]:
    """The handle form's actions as labelled."""
    return [_text(label) for label in re.findall(r'<label for="id_action_\d+">(.*?)</label>', html, re.S)]


@pytest.fixture
def lifted(wx, tea_contract, risk_zhao):
    """The punishment VR-1 limited the Tea House's contract; its appeal was approved and the limit lifted. A later
    update of the same appeal is new."""
    channel_risk_notice_handle(notice_id=_record(wx, "VR-1").pk, actor=risk_zhao, note="WeChat closed its payments",
                               action="limit")
    channel_risk_notice_handle(notice_id=_record(wx, "VR-1", event="APPEAL", event_id="EV-A1").pk, actor=risk_zhao,
                               note="appeal approved", action="lift")
    return _record(wx, "VR-1", event="APPEAL", event_id="EV-A2")


def test_after_the_lift_the_notice_offers_to_limit_the_contract_again(client, lifted, risk_zhao):
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{lifted.pk}/").content.decode()

    assert LIMIT_AGAIN_LABEL in _offered(html)
    assert LIMIT_LABEL not in _offered(html)
    said = _text(re.search(r'<div class="sub" id="lifted">(.*?)</div>', html, re.S).group(1))
    assert re.fullmatch(r"limited by zhao.risk on \S+ \S+ for record VR-1 ?; limit lifted by zhao.risk on \S+ \S+ — "
                        r"“channel risk notice VR-1: appeal approved”: routing may choose it again", said), said


def test_the_handled_notice_that_limited_it_says_the_limit_was_lifted(client, wx, lifted, risk_zhao):
    client.force_login(risk_zhao)
    punishment = ChannelRiskNotice.objects.get(record_id="VR-1", kind="punish")

    html = client.get(f"{QUEUE}{punishment.pk}/").content.decode()

    assert 'id="lifted"' in html and "limit lifted by zhao.risk" in _text(html)
    assert "active" in _text(re.search(r'<dd id="contract">(.*?)</dd>', html, re.S).group(1))


def test_limiting_it_again_from_the_notice_limits_the_contract(client, lifted, tea_contract, risk_zhao):
    client.force_login(risk_zhao)

    response = client.post(f"{QUEUE}{lifted.pk}/handle/", {"action": "limit", "note": "WeChat punished it again"})

    assert response.status_code == 302
    tea_contract.refresh_from_db()
    assert tea_contract.state == "limited"
    html = client.get(f"{QUEUE}{lifted.pk}/").content.decode()
    assert 'id="limit"' in html and 'id="lifted"' not in html


def test_a_contract_never_limited_is_offered_the_plain_limit(client, wx, tea_contract, risk_zhao):
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{_record(wx, 'VR-9').pk}/").content.decode()

    assert LIMIT_LABEL in _offered(html) and LIMIT_AGAIN_LABEL not in _offered(html)
    assert 'id="lifted"' not in html


def test_a_contract_limited_again_since_the_lift_shows_its_limit_not_the_lift(client, wx, lifted, tea_contract,
                                                                             risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="limited on the merchant page")
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{lifted.pk}/").content.decode()

    assert 'id="lifted"' not in html and 'id="limit"' in html
    assert not any(label.startswith("Limit the contract") for label in _offered(html))


def test_a_suspended_contract_whose_limit_was_lifted_is_offered_the_limit_again_while_suspended(
        client, wx, tea_contract, risk_zhao, clerk_wang):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="limited on the merchant page")
    contract_suspend(contract_id=tea_contract.pk, actor=clerk_wang, reason="merchant asked for a pause")
    contract_lift_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="the channel lifted it")
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{_record(wx, 'VR-7').pk}/").content.decode()

    assert LIMIT_AGAIN_SUSPENDED_LABEL in _offered(html)
    said = _text(re.search(r'<div class="sub" id="lifted">(.*?)</div>', html, re.S).group(1))
    assert said.endswith("the suspension holds it: resuming brings it back active")
    assert "not on a channel notice" in said

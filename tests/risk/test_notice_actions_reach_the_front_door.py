"""What risk decides on a channel's notice reaches the merchant API's next call in every process: each decision is
a model save the front door's generation token watches (aggpay.api.credentials), so neither the products
``GET /api/v1/merchant`` remembers nor routing's remembered rows (channels.routing) outlive it — a limit, a limit
recorded on a suspended contract and brought back by its resume, a lift, and a freeze."""

from __future__ import annotations

import pytest

from aggpay.api import credentials
from channels import routing
from merchants.models import Merchant
from merchants.services.settlement import contract_resume, contract_suspend
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.risk.violations import TEA_SUB, contract_on, wechat_account

pytestmark = pytest.mark.django_db

WECHAT = [{"product": "wechat.native", "rate": "0.003800"}]


def _notice(wx, record_id: str, *, kind: str = "PUNISH"):
    return channel_risk_notice_record(account=wx, event_type=f"VIOLATION.{kind}", event_id=f"EV-{record_id}-{kind}",
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice


def _routed(merchant) -> int | None:
    """Routing as a signed order does it: under the token the request read."""
    decision = routing.choose(merchant=Merchant.objects.get(pk=merchant.pk), product="wechat.native", amount=1500,
                              token=credentials.generation_current())
    return decision.chosen.contract_id if decision.chosen else None


def test_each_decision_on_a_notice_is_seen_by_the_next_call(signed_api, tea_house_app, staff_member):
    risk, clerk = staff_member("risk_officer"), staff_member("onboarding_clerk")
    contract = contract_on(wechat_account(), tea_house_app.merchant, sub_mchid=TEA_SUB)
    wx, api = contract.channel_account, signed_api(tea_house_app)
    assert api.get("/api/v1/merchant").json()["products"] == WECHAT and _routed(contract.merchant) == contract.pk

    channel_risk_notice_handle(notice_id=_notice(wx, "VR-1").pk, actor=risk, action="limit", note="payments shut")
    assert api.get("/api/v1/merchant").json()["products"] == [] and _routed(contract.merchant) is None

    contract_suspend(contract_id=contract.pk, actor=clerk, reason="licence expired")
    channel_risk_notice_handle(notice_id=_notice(wx, "VR-1", kind="APPEAL").pk, actor=risk, action="lift",
                               note="appeal approved while suspended")
    channel_risk_notice_handle(notice_id=_notice(wx, "VR-2").pk, actor=risk, action="limit", note="punished again")
    contract_resume(contract_id=contract.pk, actor=clerk, reason="new licence on file")  # comes back limited
    assert api.get("/api/v1/merchant").json()["products"] == [] and _routed(contract.merchant) is None

    channel_risk_notice_handle(notice_id=_notice(wx, "VR-2", kind="APPEAL").pk, actor=risk, action="lift",
                               note="appeal approved")
    assert api.get("/api/v1/merchant").json()["products"] == WECHAT and _routed(contract.merchant) == contract.pk

    channel_risk_notice_handle(notice_id=_notice(wx, "VR-3").pk, actor=risk, action="freeze", note="fraud")
    assert api.get("/api/v1/merchant").json()["state"] == "frozen"
    response = api.post("/api/v1/orders", json={"product": "wechat.native", "out_trade_no": "T-after-freeze",
                                                 "amount": 100, "subject": "tea"})
    assert response.status_code == 403


def test_a_partner_hears_each_state_its_merchants_contract_goes_to_and_the_freeze(staff_member):
    """merchant-api.md "Partner onboarding": each state change of a contract (limited, suspended, resumed into its
    limit) is a ``merchant.contract_updated``; a decision recorded on a suspended contract changes no state and is
    no event; the freeze from a notice is ``merchant.frozen``."""
    from tests.factories import MerchantFactory
    from trades.models import Event

    risk, clerk = staff_member("risk_officer"), staff_member("onboarding_clerk")
    agent = MerchantFactory(is_partner=True)
    shop = MerchantFactory(state="active", partner=agent)
    contract = contract_on(wechat_account(), shop, sub_mchid=TEA_SUB)
    wx = contract.channel_account

    def told() -> list[str]:
        return list(Event.objects.filter(merchant=agent, object_id=shop.merchant_no).order_by("sequence")
                    .values_list("type", flat=True))

    channel_risk_notice_handle(notice_id=_notice(wx, "VR-1").pk, actor=risk, action="limit", note="payments shut")
    contract_suspend(contract_id=contract.pk, actor=clerk, reason="licence expired")
    channel_risk_notice_handle(notice_id=_notice(wx, "VR-1", kind="APPEAL").pk, actor=risk, action="lift",
                               note="appeal approved while suspended")
    assert told() == ["merchant.contract_updated"] * 2
    contract_resume(contract_id=contract.pk, actor=clerk, reason="new licence on file")  # back active: lifted
    channel_risk_notice_handle(notice_id=_notice(wx, "VR-2").pk, actor=risk, action="freeze", note="fraud")

    assert told() == ["merchant.contract_updated"] * 3 + ["merchant.frozen"]

"""WeChat's merchant violation notices (channel-protocols.md A.15) are dispatched to risk (channels.callbacks →
trades.services.callbacks ``violation_callback`` → risk.services.channel_notices): the WeChat simulator sends a signed,
encrypted ``VIOLATION.PUNISH`` about the shop's sub-merchant to its account's callback URL on the live server; it is
applied as one channel risk notice instead of being ignored, its copies are duplicates, and WeChat is answered
success each time. A risk officer limiting the contract from it sends the shop's next WeChat order to its bank."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.callbacks import callback_url
from channels.models import CallbackOutcome, ChannelCallback, ChannelProduct
from merchants.models import Contract, ContractRate, ContractState
from risk.models import ChannelRiskNotice
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

WECHAT_SUB = "1900000109"  # the shop's WeChat sub-merchant (tests/trades/conftest.py)


def _violation(shop, *, record_id: str, sub_mchid: str = WECHAT_SUB, event: str = "PUNISH") -> str:
    """Have the WeChat simulator send one violation notice to the shop's WeChat account; returns its outbox id."""
    account = shop.accounts["wechatpay"]
    sent = shop.sim("wechatpay", "/_control/violations", sp_mchid=account.config["sp_mchid"], sub_mchid=sub_mchid,
                    event=event, record_id=record_id, notify_url=callback_url(account),
                    punish_plan="关闭支付权限", company_name="杭州茶馆有限公司")
    shop.sim("wechatpay", "/_control/flush")
    return sent["callback_id"]


def _acknowledged(simulator_server, callback_id: str) -> list[int]:
    """The statuses WeChat got for one notice (its deliveries' log at the simulator)."""
    sim = simulator_server.app.apps["wechatpay"]
    return [entry["status"] for entry in sim.store.get(sim.notifier.ns, callback_id)["log"]]


def _violation_callbacks(shop, count: int) -> list[ChannelCallback]:
    account = shop.accounts["wechatpay"]
    return shop.wait_for(lambda: (lambda rows: rows if len(rows) >= count else None)(
        list(ChannelCallback.objects.filter(account=account, kind="violation").order_by("received_at", "id"))),
        message=f"{count} violation callbacks")


def test_a_violation_notice_from_wechat_is_applied_as_one_notice_and_its_copies_are_duplicates(shop,
                                                                                              simulator_server):
    # WeChat sends the first notice twice (a copy of the same delivery), then the same record again.
    shop.sim("wechatpay", "/_control/faults", fault="duplicate_callback", phase="callback",
             match={"contains": "VR-SIM-0001"})
    first = _violation(shop, record_id="VR-SIM-0001")
    again = _violation(shop, record_id="VR-SIM-0001")

    callbacks = _violation_callbacks(shop, 3)
    assert [c.outcome for c in callbacks] == [CallbackOutcome.APPLIED, CallbackOutcome.DUPLICATE,
                                              CallbackOutcome.DUPLICATE]
    assert _acknowledged(simulator_server, first) == [204] and _acknowledged(simulator_server, again) == [204]
    (notice,) = ChannelRiskNotice.objects.all()
    contract = Contract.objects.get(channel_account=shop.accounts["wechatpay"], merchant=shop.merchant)
    assert (notice.kind, notice.record_id, notice.contract, notice.merchant) == ("punish", "VR-SIM-0001", contract,
                                                                                 shop.merchant)
    assert (notice.company_name, notice.punish_plan, notice.punish_time is not None) == ("杭州茶馆有限公司",
                                                                                       "关闭支付权限", True)
    assert notice.source_callback() == callbacks[0]


def test_a_notice_about_a_sub_merchant_we_do_not_have_is_kept_unmatched(shop, simulator_server):
    sent = _violation(shop, record_id="VR-SIM-0002", sub_mchid="1900009999", event="INTERCEPT")

    (callback,) = _violation_callbacks(shop, 1)
    assert callback.outcome == CallbackOutcome.APPLIED and _acknowledged(simulator_server, sent) == [204]
    notice = ChannelRiskNotice.objects.get()
    assert (notice.kind, notice.contract, notice.merchant) == ("intercept", None, None)


def test_limiting_the_contract_from_the_notice_sends_the_next_order_to_another_channel(shop, client, staff_member):
    wechat, bank = shop.accounts["wechatpay"], shop.accounts["bank"]
    # The bank resells WeChat Native too (design §1, indirect mode), at the same cost: the older WeChat contract wins
    # the tie while it is active.
    ChannelProduct.objects.create(account=bank, product="wechat.native", cost_rate=Decimal("0.0020"),
                                  max_amount=5_000_000)
    ContractRate.objects.create(contract=Contract.objects.get(channel_account=bank), product="wechat.native",
                                rate=Decimal("0.0038"))
    before = _order(shop, "VIOL-BEFORE")
    assert before.channel_account == wechat

    _violation(shop, record_id="VR-SIM-0003")
    _violation_callbacks(shop, 1)
    notice = ChannelRiskNotice.objects.get()
    client.force_login(staff_member("risk_officer", username="zhao.risk"))
    response = client.post(f"/staff/risk/notices/{notice.pk}/handle/",
                           {"action": "limit", "note": "WeChat closed the shop's payments: route away"})
    assert response.status_code == 302

    assert Contract.objects.get(channel_account=wechat).state == ContractState.LIMITED
    after = _order(shop, "VIOL-AFTER")
    assert after.channel_account == bank
    assert any(c["account"] == wechat.code and c["reason"] == "contract limited"
               for c in after.routing["candidates"]), after.routing


def _order(shop, out_trade_no: str) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    return Order.objects.select_related("channel_account").get(pk=order["id"])

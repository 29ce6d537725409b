"""The WeChat Pay simulator signs each callback attempt when it sends it, as WeChat Pay does (channel-protocols.md
A.4): aggpay refuses a ``Wechatpay-Timestamp`` five minutes off (A.4, the SDKs' window), so a callback held back or
retried for longer than that must still arrive freshly stamped — and one really stamped long ago is still refused."""

from __future__ import annotations

import time as real_time
import types

import pytest

from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import wechatpay as wechat_sim
from tests.trades import conftest as trades_fixtures
from trades.models import Order

shop = trades_fixtures.shop  # the Tea House persona, contracted on every channel, called back at the live server
pytestmark = pytest.mark.usefixtures("quiet_channels")


def _native_order(shop, out_trade_no: str) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    return order


def _paid_with_the_simulators_clock_behind(shop, monkeypatch, order: dict, seconds: int) -> None:
    """The payer pays while the simulator's clock reads ``seconds`` earlier; the success callback is held back, so
    it is queued then and sent only when flushed (with the clock right again)."""
    shop.sim("wechatpay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=3600,
             match={"contains": order["id"]})
    with monkeypatch.context() as patch:
        patch.setattr(wechat_sim, "time", types.SimpleNamespace(time=lambda: real_time.time() - seconds))
        shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    assert Order.objects.get(pk=order["id"]).state == "pending", "the callback was held back"


def test_a_callback_queued_ten_minutes_ago_is_signed_when_it_is_sent_and_applied(shop, monkeypatch):
    order = _native_order(shop, "CBT00001")
    _paid_with_the_simulators_clock_behind(shop, monkeypatch, order, seconds=600)

    shop.sim("wechatpay", "/_control/flush")

    assert Order.objects.get(pk=order["id"]).state == "succeeded"
    callback = ChannelCallback.objects.filter(kind="payment").latest("id")
    assert callback.outcome == CallbackOutcome.APPLIED


def test_a_callback_stamped_ten_minutes_ago_is_refused(shop, monkeypatch):
    order = _native_order(shop, "CBT00002")
    _paid_with_the_simulators_clock_behind(shop, monkeypatch, order, seconds=0)

    with monkeypatch.context() as patch:  # the simulator signs the attempt now, but its clock is 10 minutes slow
        patch.setattr(wechat_sim, "time", types.SimpleNamespace(time=lambda: real_time.time() - 600))
        shop.sim("wechatpay", "/_control/flush")

    assert Order.objects.get(pk=order["id"]).state == "pending"
    assert ChannelCallback.objects.latest("id").outcome == CallbackOutcome.REJECTED

"""A success is applied only when it names the trade, its amount and its sub-merchant (design §5 rule 4): a field
missing is refused like a field that differs, and recorded as a security event. Every channel's legitimate
successes — from a callback, from a query, from a payment-code create — carry them, so they still apply."""

from __future__ import annotations

import pytest

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import wechatpay as wechat_sim
from trades.models import Order
from trades.services.orders import order_sync

pytestmark = pytest.mark.usefixtures("quiet_channels")

AUTH_CODES = {"wechat": "134567890123456780", "alipay": "281234567890123450", "unionpay": "6212345678901234560"}


def _create(shop, out_trade_no, product="wechat.native", **extra):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": product, "subject": "tea", **extra})
    assert status == 201, order
    return order


def _signed_success_without(shop, simulator_server, order_id, *, drop=(), **changes):
    """Have the WeChat simulator settle ``order_id`` and sign a TRANSACTION.SUCCESS callback about it, with the
    fields in ``drop`` left out of the transaction and ``changes`` applied."""
    sim = simulator_server.app.apps["wechatpay"]
    sp_mchid = shop.accounts["wechatpay"].config["sp_mchid"]
    trade = sim.settle(sim.store.get(wechat_sim.NS_TRADES, f"{sp_mchid}:{order_id}"), success=True)
    resource = {k: v for k, v in sim.transaction(trade).items() if k not in drop}
    resource.update(changes)
    sim.notify(sim.account(sp_mchid), trade["notify_url"], event_type="TRANSACTION.SUCCESS", summary="支付成功",
               original_type="transaction", resource=resource)
    shop.sim("wechatpay", "/_control/flush")


@pytest.mark.parametrize(("out_trade_no", "drop", "changes", "named"), [
    ("XC000001", ("amount",), {}, "amount"),  # no amount
    ("XC000002", ("sub_mchid",), {}, "sub-merchant"),  # no sub-merchant
    ("XC000003", (), {"sub_mchid": "1900009999"}, "sub-merchant"),  # another sub-merchant
])
def test_a_signed_success_that_does_not_match_the_order_is_refused_and_recorded(shop, simulator_server,
                                                                                out_trade_no, drop, changes, named):
    order = _create(shop, out_trade_no)
    _signed_success_without(shop, simulator_server, order["id"], drop=drop, **changes)
    rejected = shop.wait_for(lambda: ChannelCallback.objects.filter(account=shop.accounts["wechatpay"],
                                                                    outcome=CallbackOutcome.REJECTED).first(),
                             message="the callback to be refused")
    assert named in rejected.message, rejected.message
    assert AuditLog.objects.filter(action="security.callback.mismatch", target_id=str(rejected.pk)).exists()
    assert Order.objects.get(pk=order["id"]).state == "pending"


def _hold_and_pay(shop, kind, order):
    """The payer pays; the channel's callback is held back, so only our query can learn it."""
    if kind == "bank":
        shop.sim("bank", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=600,
                 match={"contains": order["id"]})
        shop.sim("bank", "/_payer/pay", org_no=shop.accounts["bank"].config["org_no"], out_trade_no=order["id"])
    elif kind == "alipay":
        shop.sim("alipay", "/_control/faults", fault="out_of_order_callback", phase="callback",
                 match={"contains": order["id"]})
        shop.sim("alipay", "/_payer/pay", qr_code=order["pay_params"]["code_url"])
    else:
        shop.sim("wechatpay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=600,
                 match={"contains": order["id"]})
        shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])


@pytest.mark.parametrize(("product", "kind"), [("wechat.native", "wechatpay"), ("alipay.qr", "alipay"),
                                               ("unionpay.qr", "bank")])
def test_a_payment_learnt_by_query_passes_the_cross_check_on_every_channel(shop, product, kind):
    order = _create(shop, f"XQ{kind[:4]}01", product=product)
    _hold_and_pay(shop, kind, order)
    settled = order_sync(order_id=order["id"], force=True)
    assert settled.state == "succeeded", (settled.state, settled.sync_state)
    assert not ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED).exists()


@pytest.mark.parametrize("wallet", ["wechat", "alipay", "unionpay"])
def test_a_payment_code_paid_at_once_passes_the_cross_check_on_every_channel(shop, wallet):
    order = _create(shop, f"XB{wallet[:4]}01", product="barcode", auth_code=AUTH_CODES[wallet])
    assert order["state"] == "succeeded", order

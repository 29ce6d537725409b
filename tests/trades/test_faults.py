"""Faults injected at the simulators (issue 5 "How it is checked"; design §5 rules 2–4): a channel that times out
or answers 5xx never fails an order or a refund — the outcome is ``unknown`` until a query settles it; a success
after a local close becomes a late payment that is refunded automatically; a callback whose amount differs from
the order is refused and recorded as a security event.

Timeouts are real: the simulator sleeps past our read timeout (``AGGPAY_CHANNEL_READ_TIMEOUT``, shortened here).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests
from django.utils import timezone

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import wechatpay as wechat_sim
from trades.models import ChannelCall, LatePayment, Order, Refund
from trades.services.orders import _trade_ref, order_sync
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

READ_TIMEOUT = 1.0
SLOW = READ_TIMEOUT + 1.0  # the simulator answers after we gave up


@pytest.fixture
def short_timeout(settings):
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = READ_TIMEOUT


def _create(shop, out_trade_no, product="wechat.native", amount=1500, **extra):
    return shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea", **extra})


def _fault(shop, kind, fault, **rule):
    shop.sim(kind, "/_control/faults", fault=fault, **rule)


def _wechat(simulator_server):
    return simulator_server.app.apps["wechatpay"]


def _sim_trade(shop, simulator_server, order_id):
    sp = shop.accounts["wechatpay"].config["sp_mchid"]
    return _wechat(simulator_server).store.get(wechat_sim.NS_TRADES, f"{sp}:{order_id}")


def _due_now(order_id):
    """Stand-in for the minute the ladder waits (design §5 rule 2): make the order due for the sweeper."""
    Order.objects.filter(pk=order_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=1),
                                             last_queried_at=None)


def test_a_timeout_at_create_leaves_the_order_unknown_and_the_sweeper_settles_it(shop, short_timeout):
    _fault(shop, "wechatpay", "latency", seconds=SLOW, match={"path": "transactions/native"})
    status, _, order = _create(shop, "FT000001")
    assert status == 201, order
    assert order["state"] == "pending"
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "pending" and stored.sync_state == "unknown" and stored.next_query_at is not None
    assert ChannelCall.objects.filter(order=stored, verb="create", outcome="unknown").exists()

    time.sleep(SLOW)  # the simulator did create the trade after we gave up; the payer pays it
    shop.sim("wechatpay", "/_payer/pay", out_trade_no=stored.pk,
             sp_mchid=shop.accounts["wechatpay"].config["sp_mchid"])
    _due_now(stored.pk)
    sync_due_orders()
    stored.refresh_from_db()
    assert stored.state == "succeeded" and stored.sync_state == "ok" and stored.channel_trade_no


def test_a_dropped_create_is_never_failed_and_a_later_query_makes_the_outcome_known(shop, short_timeout):
    _fault(shop, "wechatpay", "timeout", seconds=SLOW, match={"path": "transactions/native"})
    status, _, order = _create(shop, "FT000002")
    assert status == 201 and order["state"] == "pending", order
    assert Order.objects.get(pk=order["id"]).sync_state == "unknown"
    time.sleep(SLOW)
    settled = order_sync(order_id=order["id"], force=True)
    # The channel never saw it (ORDER_NOT_EXIST): known, still pending until it expires — never "failed".
    assert settled.state == "pending" and settled.sync_state == "ok"


def test_a_5xx_at_create_is_unknown_not_failed(shop):
    _fault(shop, "wechatpay", "http_500", times=5, match={"path": "transactions/native"})
    status, _, order = _create(shop, "FT000003")
    assert status == 201 and order["state"] == "pending", order
    stored = Order.objects.get(pk=order["id"])
    assert stored.sync_state == "unknown" and stored.state != "failed"
    requests.delete(f"{shop.root}/wechatpay/_control/faults", timeout=10)  # the channel is back
    _due_now(stored.pk)
    sync_due_orders()
    stored.refresh_from_db()
    assert stored.state == "pending" and stored.sync_state == "ok"


def test_a_timeout_at_query_keeps_the_order_pending_until_a_later_query_succeeds(shop, short_timeout):
    status, _, order = _create(shop, "FT000004")
    assert status == 201, order
    # The payer pays, but the channel's callback is held back: only a query can tell us.
    _fault(shop, "wechatpay", "out_of_order_callback", phase="callback", seconds=600,
           match={"contains": order["id"]})
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    _fault(shop, "wechatpay", "latency", seconds=SLOW, match={"path": f"out-trade-no/{order['id']}$",
                                                               "method": "GET"})
    answered = order_sync(order_id=order["id"], force=True)
    assert answered.state == "pending" and answered.sync_state == "unknown"
    time.sleep(SLOW)
    _due_now(order["id"])
    sync_due_orders()
    settled = Order.objects.get(pk=order["id"])
    assert settled.state == "succeeded" and settled.sync_state == "ok"


def test_a_timeout_at_refund_leaves_it_pending_unknown_and_a_query_settles_it(shop, short_timeout):
    status, _, order = _create(shop, "FT000005")
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), message="paid")
    _fault(shop, "wechatpay", "out_of_order_callback", phase="callback", seconds=600,
           match={"contains": order["id"]})  # this order's refund notice only (it names the order)
    _fault(shop, "wechatpay", "latency", seconds=SLOW, match={"path": "refund/domestic/refunds$",
                                                               "method": "POST"})
    status, _, refund = shop.client.request("POST", "/api/v1/orders/FT000005/refunds",
                                            json={"out_refund_no": "FR000005", "amount": 500})
    assert status == 201 and refund["state"] == "pending", refund
    stored = Refund.objects.get(pk=refund["id"])
    assert stored.sync_state == "unknown" and stored.next_query_at is not None
    assert Order.objects.get(pk=order["id"]).refund_reserved == 500  # still reserved: the outcome is unknown

    time.sleep(SLOW + 2.0)  # the simulator's refund settles 2 s after it was accepted
    Refund.objects.filter(pk=stored.pk).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))
    sync_due_orders()
    stored.refresh_from_db()
    assert stored.state == "succeeded", (stored.state, stored.sync_state)
    paid = Order.objects.get(pk=order["id"])
    assert paid.refunded_amount == 500 and paid.refund_state == "partial"


def _notify_success(shop, simulator_server, order_id, **changes):
    """Have the WeChat simulator sign and send a TRANSACTION.SUCCESS callback about ``order_id`` — settled at the
    simulator first — with ``changes`` applied to the transaction (e.g. a different amount)."""
    sim = _wechat(simulator_server)
    trade = sim.settle(_sim_trade(shop, simulator_server, order_id), success=True)
    resource = sim.transaction(trade)
    for key, value in changes.items():
        resource[key] = value
    account = sim.account(trade["sp_mchid"])
    sim.notify(account, trade["notify_url"], event_type="TRANSACTION.SUCCESS", summary="支付成功",
               original_type="transaction", resource=resource)
    shop.sim("wechatpay", "/_control/flush")
    return trade


def test_a_success_after_a_local_close_becomes_a_late_payment_refunded_automatically(shop, simulator_server,
                                                                                      settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    status, _, order = _create(shop, "FT000006")
    status, _, closed = shop.client.request("POST", "/api/v1/orders/FT000006/close")
    assert status == 200 and closed["state"] == "closed"
    # The wallet charged the payer anyway (a race at the channel) and says so.
    trade = _notify_success(shop, simulator_server, order["id"])
    # Refunding until the channel says the money is back (its refunds answer PROCESSING first).
    late = shop.wait_for(lambda: LatePayment.objects.filter(order_id=order["id"], state="refunding")
                         .exclude(resolution="").first(), message="the late payment to be refunded")
    assert late.channel_trade_no == trade["transaction_id"] and late.amount == 1500
    assert Order.objects.get(pk=order["id"]).state == "closed"  # never re-opened
    stored = Order.objects.get(pk=order["id"])
    at_channel = shop.accounts["wechatpay"].adapter().query_refund(trade=_trade_ref(stored),
                                                                   out_refund_no=f"late_{stored.pk}")
    assert at_channel.amount == 1500
    # The channel's refund notice for it is recognised as ours: noted on the late payment, not a security event.
    shop.sim("wechatpay", f"/_control/refunds/late_{stored.pk}", status="SUCCESS",
             sp_mchid=shop.accounts["wechatpay"].config["sp_mchid"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved",
                                                     resolution__contains="refund succeeded").exists(),
                  message="the refund notice to resolve the late payment")
    assert not ChannelCallback.objects.filter(account=shop.accounts["wechatpay"],
                                              outcome=CallbackOutcome.REJECTED).exists()
    assert AuditLog.objects.filter(action="trades.late_payment.refund", target_id=str(stored.pk)).exists()


def test_a_callback_with_the_wrong_amount_is_refused_and_recorded(shop, simulator_server):
    status, _, order = _create(shop, "FT000007")
    _notify_success(shop, simulator_server, order["id"], amount={"total": 1, "currency": "CNY",
                                                                  "payer_total": 1, "payer_currency": "CNY"})
    rejected = shop.wait_for(lambda: ChannelCallback.objects.filter(account=shop.accounts["wechatpay"],
                                                                    outcome=CallbackOutcome.REJECTED).first(),
                             message="the callback to be refused")
    assert "amount" in rejected.message
    assert AuditLog.objects.filter(action="security.callback.mismatch", target_id=str(rejected.pk)).exists()
    assert Order.objects.get(pk=order["id"]).state == "pending"

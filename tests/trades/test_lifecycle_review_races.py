"""Races after an order is created, staged on purpose against PostgreSQL (threads released together, each on its own
connection, as tests/trades/test_races.py does), with the Alipay simulator holding the payment's notify back
(``out_of_order_callback``) so the test decides when it arrives:

- copies of one success notice arriving together after a local close make exactly one late payment and one
  automatic refund (design §5 rule 3), or, with the automatic refund off, one late payment left for support;
- the expiry sweeper closing an order while the payer's success notice arrives: whichever comes first, the order ends
  succeeded, the merchant hears ``order.succeeded`` once and never ``order.closed`` (rules 3–4);
- two sweeper runs (a beat tick overlapping the last) expiring the same unpaid order close it once.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import pytest
import requests
from django.utils import timezone

from channels.models import CallbackOutcome, ChannelCallback
from tests.race_condition import in_threads, retrying_resets
from trades.models import ChannelCall, Event, LatePayment, Order
from trades.services.orders import order_expire

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _paid_with_notify_held(shop, simulator_server, out_trade_no: str) -> tuple[dict, str, str]:
    """An Alipay QR order the payer has paid at Alipay, whose success notify Alipay holds back: (order, url, body)."""
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "alipay.qr", "subject": "tea"})
    assert status == 201, order
    shop.sim("alipay", "/_control/faults", fault="out_of_order_callback", phase="callback",
             match={"contains": order["id"]})
    shop.sim("alipay", "/_payer/pay", qr_code=order["pay_params"]["code_url"])
    (held,) = simulator_server.app.apps["alipay"].held_notifies(order["id"])
    assert dict(parse_qsl(held["body"]))["trade_status"] == "TRADE_SUCCESS"
    assert Order.objects.get(pk=order["id"]).state == "pending"
    return order, held["url"], held["body"]


def _post(url: str, body: str):
    return retrying_resets(lambda: requests.post(url, data=body.encode("ascii"), timeout=30, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}))


def _closed_here(order_id: str) -> None:
    """Our close crossed the payment at the channel: closed here (the close's own steps are tested elsewhere)."""
    Order.objects.filter(pk=order_id).update(state="closed")


@pytest.mark.parametrize("auto_refund", [True, False])
def test_copies_of_a_success_after_a_local_close_make_one_late_payment_and_one_refund(shop, simulator_server,
                                                                                      settings, auto_refund):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = auto_refund
    order, url, body = _paid_with_notify_held(shop, simulator_server, f"RVLATE{int(auto_refund)}")
    _closed_here(order["id"])

    answers = in_threads(8, lambda _: _post(url, body))
    assert all(r.status_code == 200 and r.text.strip() == "success" for r in answers), [r.text for r in answers]
    late = LatePayment.objects.get(order_id=order["id"])
    assert late.amount == 1500
    outcomes = list(ChannelCallback.objects.filter(account=shop.accounts["alipay"], kind="payment")
                    .values_list("outcome", flat=True))
    assert (outcomes.count(CallbackOutcome.APPLIED), outcomes.count(CallbackOutcome.DUPLICATE)) == (1, 7)
    refunds_asked = ChannelCall.objects.filter(order_id=order["id"], verb="late_refund").count()
    if auto_refund:
        assert refunds_asked == 1 and LatePayment.objects.get(pk=late.pk).state in ("refunding", "resolved")
    else:
        assert refunds_asked == 0 and LatePayment.objects.get(pk=late.pk).state == "open"  # support's queue
    assert Order.objects.get(pk=order["id"]).state == "closed"
    assert not Event.objects.filter(object_id=order["id"], type="order.succeeded").exists()


def test_the_expiry_sweeper_and_the_success_notice_racing_end_in_one_success(shop, simulator_server):
    order, url, body = _paid_with_notify_held(shop, simulator_server, "RVEXP01")
    Order.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    def work(i):
        return _post(url, body) if i == 0 else order_expire(order_id=order["id"])

    notice, _ = in_threads(2, work)
    assert notice.status_code == 200 and notice.text.strip() == "success"
    settled = Order.objects.get(pk=order["id"])
    assert settled.state == "succeeded" and settled.paid_at is not None
    assert Event.objects.filter(object_id=order["id"], type="order.succeeded").count() == 1
    assert not Event.objects.filter(object_id=order["id"], type="order.closed").exists()
    assert not LatePayment.objects.filter(order_id=order["id"]).exists()


def test_two_overlapping_sweeps_close_an_expired_order_once(shop):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "RVEXP02", "amount": 1500, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    Order.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    in_threads(2, lambda _: order_expire(order_id=order["id"]))
    closed = Order.objects.get(pk=order["id"])
    assert (closed.state, closed.sync_state) == ("closed", "ok")
    assert Event.objects.filter(object_id=order["id"], type="order.closed").count() == 1

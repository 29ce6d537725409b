"""Orders and refunds through a real Celery worker on Redis (issue 5 "How it is checked"), not eager tasks:

- a payment-code order the payer is still confirming (USERPAYING) is followed by the worker's ``barcode_step``
  (the 5-second ladder of design §5 rule 2) until paid;
- an order whose create timed out is settled by the sweeper (``sync_due_orders``, what beat runs) in the worker;
- the merchant's ``order.succeeded`` and ``refund.succeeded`` notifications are posted by the worker.

The worker is the one of test_deliveries_worker (a separate process on the test database, a private Redis key
prefix), here also told our public URL so the refunds it may send name the right callback URL.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import redis
from django.utils import timezone

from aggpay.api import signing
from tests.trades.test_deliveries_worker import BROKER_URL, Worker, _new_prefix, publishing_to
from trades.models import Order, Refund
from trades.tasks_orders import sync_due_orders

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.usefixtures("quiet_channels")]


@pytest.fixture
def worker(shop, live_server, monkeypatch):
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {BROKER_URL} ({exc})")
    monkeypatch.setenv("AGGPAY_PUBLIC_BASE_URL", live_server.url)
    prefix = _new_prefix()
    process = Worker(prefix)
    with publishing_to(BROKER_URL, prefix):
        yield process
    process.stop()


def _notes(receiver, event_type):
    found = []
    for request in receiver.requests:
        body = json.loads(request["body"])
        if body["type"] == event_type:
            found.append((request, body))
    return found


def test_a_real_worker_follows_a_payment_code_settles_by_sweeper_and_notifies_the_refund(shop, worker,
                                                                                       callback_receiver,
                                                                                       settings):
    # 1. USERPAYING (WeChat code ending 5): the create answers pending; the worker's barcode_step queries it.
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "WK000001", "amount": 1200, "product": "barcode", "auth_code": "134567890123456785",
        "subject": "tea"})
    assert status == 201 and order["state"] == "pending", order
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), timeout=40,
                  message="the worker's barcode_step to settle the order\n" + worker.log())
    request, note = shop.wait_for(lambda: _notes(callback_receiver, "order.succeeded"), timeout=30,
                                  message="order.succeeded from the worker\n" + worker.log())[0]
    assert signing.verify_response(request["headers"], request["body"], secret=shop.app.secret)
    assert note["data"]["object"]["id"] == order["id"]

    # 2. A create that timed out, paid at the channel meanwhile: the sweeper task, run by the worker, settles it.
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 1.0
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=2.0,
             match={"path": "transactions/native"})
    status, _, slow = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "WK000002", "amount": 900, "product": "wechat.native", "subject": "tea"})
    assert status == 201 and Order.objects.get(pk=slow["id"]).sync_state == "unknown"
    time.sleep(2.0)
    shop.sim("wechatpay", "/_payer/pay", out_trade_no=slow["id"],
             sp_mchid=shop.accounts["wechatpay"].config["sp_mchid"])
    Order.objects.filter(pk=slow["id"]).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))
    sync_due_orders.delay()
    shop.wait_for(lambda: Order.objects.filter(pk=slow["id"], state="succeeded").exists(), timeout=30,
                  message="the sweeper in the worker to settle the order\n" + worker.log())

    # 3. A refund: the channel settles it by callback; the worker tells the merchant.
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 10.0
    status, _, refund = shop.client.request("POST", "/api/v1/orders/WK000001/refunds",
                                            json={"out_refund_no": "WKR00001", "amount": 200})
    assert status == 201, refund
    shop.sim("wechatpay", f"/_control/refunds/{refund['id']}", status="SUCCESS",
             sp_mchid=shop.accounts["wechatpay"].config["sp_mchid"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Refund.objects.filter(pk=refund["id"], state="succeeded").exists(), timeout=20,
                  message="the refund to settle")
    request, note = shop.wait_for(lambda: _notes(callback_receiver, "refund.succeeded"), timeout=30,
                                  message="refund.succeeded from the worker\n" + worker.log())[0]
    assert signing.verify_response(request["headers"], request["body"], secret=shop.app.secret)
    assert note["data"]["object"]["id"] == refund["id"] and note["data"]["object"]["amount"] == 200

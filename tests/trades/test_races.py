"""Races against PostgreSQL (issue 5 "How it is checked"): many threads hit the live server at once, each request
on its own connection, the way concurrent merchants and channels do.

- 50 concurrent refunds of one paid order never reserve more than it paid (design §5 rule 6; the
  ``order_refunds_within_amount`` CHECK is the last line of defence, the order row lock the first).
- 20 concurrent identical creates give one order; the others replay it (rule 5), none answers 5xx.
- 10 copies of one signed channel callback give one transition and one ``order.succeeded`` event (rule 4).
- one out_refund_no on two orders of a merchant at once gives one refund and one ``409 idempotency_conflict``
  (rule 5), never the other order's refund as a replay.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import pytest
import requests
from django.db import connection, transaction
from django.db.models import Sum

from aggpay.api.client import AggpayClient
from channels.models import CallbackOutcome, ChannelCallback
from tests.race_condition import in_threads, retrying_resets
from trades.models import Event, Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _client(shop, live_server):
    return AggpayClient(live_server.url, shop.app.app_id, secret=shop.app.secret)


def _paid_wechat_order(shop, out_trade_no: str, amount: int) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def test_fifty_concurrent_refunds_never_exceed_the_paid_amount(shop, live_server):
    order = _paid_wechat_order(shop, "RACE0001", 1000)

    def refund(i):
        return retrying_resets(lambda: _client(shop, live_server).request(
            "POST", "/api/v1/orders/RACE0001/refunds", json={"out_refund_no": f"RR{i:04d}", "amount": 30}))

    answers = in_threads(50, refund)
    statuses = sorted(status for status, _, _ in answers)
    assert all(status < 500 for status in statuses), answers
    accepted = [body for status, _, body in answers if status == 201]
    refused = [body for status, _, body in answers if status == 422]
    assert len(accepted) == 33 and len(refused) == 17  # 33 × 30 = 990 ≤ 1000 < 34 × 30
    assert {body["error"]["code"] for body in refused} == {"refund_amount_exceeded"}
    order.refresh_from_db()
    live = Refund.objects.filter(order=order).exclude(state__in=("failed", "closed"))
    assert live.aggregate(total=Sum("amount"))["total"] == order.refund_reserved == 990
    assert order.refund_reserved <= order.amount


def test_twenty_concurrent_identical_creates_give_one_order(shop, live_server):
    body = {"out_trade_no": "RACE0002", "amount": 888, "product": "alipay.qr", "subject": "tea"}

    def create(_):
        return retrying_resets(lambda: _client(shop, live_server).request("POST", "/api/v1/orders", json=body))

    answers = in_threads(20, create)
    assert all(status in (200, 201) for status, _, _ in answers), [(s, b) for s, _, b in answers]
    assert sum(1 for status, _, _ in answers if status == 201) == 1
    replayed = [headers for status, headers, _ in answers if status == 200]
    assert len(replayed) == 19 and all(h.get("Idempotent-Replayed") == "true" for h in replayed)
    assert len({body["id"] for _, _, body in answers}) == 1
    assert Order.objects.filter(merchant=shop.merchant, out_trade_no="RACE0002").count() == 1


def _held_alipay_notify(shop, simulator_server, order_id: str) -> tuple[str, str]:
    """The signed notify the Alipay simulator holds back for ``order_id`` (an ``out_of_order_callback`` fault
    keeps it from being sent, so the order is still pending when the copies arrive)."""
    held = simulator_server.app.apps["alipay"].held_notifies(order_id)
    assert held, "the simulator did not hold the notify"
    return held[0]["url"], held[0]["body"]


def test_ten_copies_of_one_callback_give_one_transition_and_one_event(shop, simulator_server):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "RACE0003", "amount": 777, "product": "alipay.qr", "subject": "tea"})
    assert status == 201, order
    shop.sim("alipay", "/_control/faults", fault="out_of_order_callback", phase="callback",
             match={"contains": order["id"]})
    shop.sim("alipay", "/_payer/pay", qr_code=order["pay_params"]["code_url"])
    url, body = _held_alipay_notify(shop, simulator_server, order["id"])
    assert dict(parse_qsl(body))["trade_status"] == "TRADE_SUCCESS"
    assert Order.objects.get(pk=order["id"]).state == "pending"

    def post(_):
        return retrying_resets(lambda: requests.post(url, data=body.encode("ascii"), timeout=30, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}))

    answers = in_threads(10, post)
    assert all(r.status_code == 200 and r.text.strip() == "success" for r in answers), [r.text for r in answers]
    assert Order.objects.get(pk=order["id"]).state == "succeeded"
    assert Event.objects.filter(object_id=order["id"], type="order.succeeded").count() == 1
    outcomes = list(ChannelCallback.objects.filter(account=shop.accounts["alipay"], kind="payment")
                    .values_list("outcome", flat=True))
    assert outcomes.count(CallbackOutcome.APPLIED) == 1
    assert outcomes.count(CallbackOutcome.DUPLICATE) == 9


def _refund_transactions_waiting() -> int:
    """How many other sessions wait on a lock in a refund's INSERT or at its COMMIT (where Django's deferred
    foreign-key checks run)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # pg_stat_activity is otherwise frozen per transaction
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
                       "current_database() AND pid <> pg_backend_pid() AND (query = 'COMMIT' OR query LIKE %s)",
                       ['INSERT INTO "trades_refund"%'])
        return cursor.fetchone()[0]


def test_one_out_refund_no_on_two_orders_at_once_is_one_refund_and_one_conflict(shop, live_server):
    """Staged: each request locks only its own order, so both find no refund RSAME01 and insert one. The test holds
    the merchant's row (FOR UPDATE), which a refund's foreign-key check must share-lock at COMMIT (Django's
    constraints are deferred): the first waits there, its INSERT done; the second waits in its INSERT on the first's
    uncommitted row in the unique (merchant, out_refund_no) index — both past their look-up. When the test lets go,
    the first commits and the second's INSERT fails: it must answer 409 idempotency_conflict, not replay the first
    order's refund."""
    from merchants.models import Merchant

    orders = [_paid_wechat_order(shop, f"RACE000{i}", 1000) for i in (4, 5)]
    gate = threading.Barrier(3, timeout=30)

    def refund(order):
        gate.wait()
        try:
            return retrying_resets(lambda: _client(shop, live_server).request(
                "POST", f"/api/v1/orders/{order.out_trade_no}/refunds", json={"out_refund_no": "RSAME01",
                                                                               "amount": 100}))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool, transaction.atomic():
        Merchant.objects.select_for_update().get(pk=shop.merchant.pk)
        answers = [pool.submit(refund, order) for order in orders]
        gate.wait()
        deadline = time.monotonic() + 20
        while _refund_transactions_waiting() < 2:
            assert time.monotonic() < deadline, "the two refunds never both got past their look-up"
            time.sleep(0.05)
    answers = [future.result(timeout=30) for future in answers]

    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [201, 409], [(status, body) for status, _, body in answers]
    (won, made), = [(order, body) for order, (status, _, body) in zip(orders, answers, strict=True) if status == 201]
    (lost, refused), = [(order, body) for order, (status, _, body) in zip(orders, answers, strict=True)
                        if status == 409]
    assert refused["error"]["code"] == "idempotency_conflict" and refused["error"]["param"] == "out_refund_no"
    assert Refund.objects.get(merchant=shop.merchant, out_refund_no="RSAME01").order_id == won.pk
    assert made["out_trade_no"] == won.out_trade_no
    assert Order.objects.get(pk=lost.pk).refund_reserved == 0  # its reservation rolled back with its INSERT
    assert Order.objects.get(pk=won.pk).refund_reserved == 100

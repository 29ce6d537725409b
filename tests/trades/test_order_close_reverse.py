"""Close and reverse over signed HTTP against the simulators (merchant-api.md "Orders" and "Errors"):

- a close that crosses the payment's callback answers 409 with the paid order, never 200;
- a channel that does not answer a close or a reverse is not an error: 200 with the order as it was, and the
  sweeper carries the close or the reverse on (design §5 rules 2–3);
- a reverse records its intent first (rule 7): a refund asked while it is in flight is refused, so an order is
  never both reversed and refunded (rule 6) — staged with threads against PostgreSQL;
- a reverse needs what a refund needs (MerchantMayRefund).
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from django.utils import timezone

from merchants.models import Merchant
from tests.trades.order_steps import event_count as _events
from tests.trades.order_steps import rung_due as _due
from tests.trades.wechat_flow import success_notice
from trades.models import Order, Refund
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID_AT_ONCE = "134567890123456780"  # a WeChat payment code the simulator charges at once (ends in 0)
SLOW = 1.5


def _create(shop, out_trade_no, product="wechat.native", amount=1500, **extra):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea", **extra})
    assert status == 201, order
    return order


def _paid_barcode(shop, out_trade_no, amount=1500):
    order = _create(shop, out_trade_no, product="barcode", amount=amount, auth_code=PAID_AT_ONCE)
    assert order["state"] == "succeeded", order
    return order


def _fault(shop, fault, **rule):
    shop.sim("wechatpay", "/_control/faults", fault=fault, **rule)


def _post(shop, path, body=None):
    return shop.client.request("POST", path, json=body) if body is not None else shop.client.request("POST", path)


def _in_background(shop, path):
    """POST ``path`` from another thread (its own HTTP connection to the live server); the answer lands in the dict."""
    answer = {}

    def run():
        answer["status"], _, answer["body"] = _post(shop, path)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer


# --- close ------------------------------------------------------------------------------------------------------
def test_a_payment_applied_while_the_channel_is_asked_to_close_answers_409_with_the_paid_order(shop,
                                                                                              simulator_server):
    order = _create(shop, "CR000001")
    _fault(shop, "latency", seconds=SLOW, match={"path": f"out-trade-no/{order['id']}/close$"})
    closing, answer = _in_background(shop, "/api/v1/orders/CR000001/close")
    shop.wait_for(lambda: Order.objects.get(pk=order["id"]).last_queried_at, message="the close's query")
    success_notice(shop, simulator_server, order["id"])
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), message="paid")
    closing.join(timeout=30)

    assert answer["status"] == 409 and answer["body"]["error"]["code"] == "invalid_state", answer
    assert answer["body"]["order"]["state"] == "succeeded"
    assert Order.objects.get(pk=order["id"]).state == "succeeded" and _events(order["id"], "order.closed") == 0


def test_a_close_the_channel_does_not_answer_is_200_pending_and_the_sweeper_closes_it(shop):
    order = _create(shop, "CR000002")
    _fault(shop, "http_500", times=2, match={"path": f"out-trade-no/{order['id']}/close$"})
    status, _, answer = _post(shop, "/api/v1/orders/CR000002/close")
    assert status == 200 and answer["state"] == "pending", answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.expires_at <= timezone.now()  # handed to the expiry sweeper

    sync_due_orders()  # the channel still does not answer: still pending
    assert Order.objects.get(pk=order["id"]).state == "pending"
    sync_due_orders()  # it answers now: queried first, then closed (design §5 rule 3)
    assert Order.objects.get(pk=order["id"]).state == "closed"
    assert _events(order["id"], "order.closed") == 1


def test_a_close_whose_query_goes_unanswered_is_200_pending_too(shop):
    order = _create(shop, "CR000003")
    _fault(shop, "http_503", match={"path": f"out-trade-no/{order['id']}$", "method": "GET"})
    status, _, answer = _post(shop, "/api/v1/orders/CR000003/close")
    assert status == 200 and answer["state"] == "pending", answer
    # Whether it was paid is not known: the ladder asks next (design §5 rule 2), not every run of the sweeper.
    sync_due_orders()
    assert Order.objects.get(pk=order["id"]).state == "pending"
    _due(order["id"])  # the ladder's next rung: the channel answers, and the close is carried out in that run
    sync_due_orders()
    assert Order.objects.get(pk=order["id"]).state == "closed"
    assert _events(order["id"], "order.closed") == 1


# --- reverse ----------------------------------------------------------------------------------------------------
def test_a_reverse_the_channel_does_not_answer_is_200_and_retried_until_the_order_is_reversed(shop):
    order = _paid_barcode(shop, "CR000004")
    _fault(shop, "http_500", match={"path": f"out-trade-no/{order['id']}/reverse$"})
    status, _, answer = _post(shop, "/api/v1/orders/CR000004/reverse")
    assert status == 200 and answer["state"] == "succeeded" and answer["refundable_amount"] == 0, answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.reverse_requested_at and stored.refund_reserved == 1500 and stored.sync_state == "unknown"

    status, _, refused = _post(shop, "/api/v1/orders/CR000004/refunds", {"out_refund_no": "CRR00041", "amount": 100})
    assert status == 409 and refused["error"]["code"] == "invalid_state", refused
    assert "reverse of this order is under way" in refused["error"]["message"]
    status, _, refused = _post(shop, "/api/v1/orders/CR000004/close")
    assert status == 409 and refused["error"]["code"] == "invalid_state"

    _due(order["id"])
    sync_due_orders()  # the barcode ladder's next rung asks the channel again
    reversed_ = Order.objects.get(pk=order["id"])
    assert reversed_.state == "reversed" and reversed_.reverse_requested_at is None
    assert reversed_.refund_reserved == reversed_.refunded_amount == 1500 and reversed_.sync_state == "ok"
    assert _events(order["id"], "order.reversed") == 1
    assert not Refund.objects.filter(order_id=order["id"]).exists()


def test_a_reverse_still_unanswered_after_the_last_rung_waits_for_a_person_and_keeps_refunds_out(shop):
    order = _paid_barcode(shop, "CR000005")
    _fault(shop, "http_500", times=3, match={"path": f"out-trade-no/{order['id']}/reverse$"})
    status, _, answer = _post(shop, "/api/v1/orders/CR000005/reverse")
    assert status == 200 and answer["state"] == "succeeded", answer
    Order.objects.filter(pk=order["id"]).update(reverse_requested_at=timezone.now() - dt.timedelta(minutes=2))
    _due(order["id"])
    sync_due_orders()
    stuck = Order.objects.get(pk=order["id"])
    assert stuck.state == "succeeded" and stuck.sync_state == "manual" and stuck.next_query_at is None
    assert stuck.refund_reserved == 1500  # the money may have gone back: no refund beside it


def test_a_reverse_the_channel_refuses_is_502_and_leaves_the_order_refundable(shop):
    order = _paid_barcode(shop, "CR000006")
    _fault(shop, "business_error", code="INVALID_REQUEST", message="不可撤销", status=400,
           match={"path": f"out-trade-no/{order['id']}/reverse$"})
    status, _, answer = _post(shop, "/api/v1/orders/CR000006/reverse")
    assert status == 502 and answer["error"]["code"] == "channel_error", answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "succeeded" and stored.reverse_requested_at is None and stored.refund_reserved == 0
    status, _, refund = _post(shop, "/api/v1/orders/CR000006/refunds", {"out_refund_no": "CRR00061", "amount": 100})
    assert status == 201, refund


def test_a_refund_asked_while_the_reverse_is_at_the_channel_is_refused(shop):
    order = _paid_barcode(shop, "CR000007")
    _fault(shop, "latency", seconds=SLOW, match={"path": f"out-trade-no/{order['id']}/reverse$"})
    reversing, answer = _in_background(shop, "/api/v1/orders/CR000007/reverse")
    shop.wait_for(lambda: Order.objects.get(pk=order["id"]).reverse_requested_at, message="the reverse's intent")
    status, _, refund = _post(shop, "/api/v1/orders/CR000007/refunds", {"out_refund_no": "CRR00071", "amount": 300})
    reversing.join(timeout=30)

    assert status == 409 and refund["error"]["code"] == "invalid_state", refund
    assert answer["status"] == 200 and answer["body"]["state"] == "reversed", answer
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed" and stored.refund_reserved == stored.refunded_amount == 1500  # all given back
    assert not Refund.objects.filter(order_id=order["id"]).exists()


def test_an_order_with_a_refund_can_no_longer_be_reversed(shop):
    _paid_barcode(shop, "CR000008")
    status, _, refund = _post(shop, "/api/v1/orders/CR000008/refunds", {"out_refund_no": "CRR00081", "amount": 100})
    assert status == 201, refund
    status, _, answer = _post(shop, "/api/v1/orders/CR000008/reverse")
    assert status == 409 and answer["error"]["code"] == "invalid_state", answer
    assert answer["order"]["state"] == "succeeded"


# --- who may reverse --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "allowed"), [("active", True), ("frozen", True), ("onboarding", False),
                                                ("closed", False)])
def test_a_reverse_needs_what_a_refund_needs(tea_house, tea_house_app, signed_api, state, allowed):
    Merchant.objects.filter(pk=tea_house.pk).update(state=state)
    reverse = signed_api(tea_house_app).post("/api/v1/orders/NOSUCH01/reverse")
    refund = signed_api(tea_house_app).post("/api/v1/orders/NOSUCH01/refunds",
                                            json={"out_refund_no": "R1", "amount": 1})
    # Allowed: past the permission, the order does not exist (404); refused: 403 before looking.
    assert reverse.status_code == refund.status_code == (404 if allowed else 403), json.loads(reverse.content)

"""A paid payment-code order reversed (撤销) says it gave the whole payment back (merchant-api.md "Orders": reverse
"refunds it if paid"; design §4 ``succeeded → reversed`` "through the channel's reverse (which refunds)"):
``refunded_amount`` is its amount in the API's answer, in GET and in the ``order.reversed`` notification, and that
agrees with the money the statement and finance's fee report count for it — the reversal line takes off the
amount and the whole fee, the report reverses the whole fee snapshot, so the merchant nets 0 and we keep no profit.
Over signed HTTP against the simulators; the notification is the POST the merchant's receiver got."""

from __future__ import annotations

import datetime as dt
import importlib
import json

import pytest
from django.apps import apps
from django.utils import timezone

from tests.trades.ledger import at, paid_order, reversed_at
from tests.trades.order_steps import confirming_alipay_code
from tests.trades.test_orders_review_reversed_paid import _deliver, _held_notice, _paid_then_reversed
from trades.models import Event, Order
from trades.services.finance import fee_report
from trades.services.statements import statement_get

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID_AT_ONCE = "134567890123456780"  # a WeChat payment code the simulator charges at once (ends in 0)


def _paid_code(shop, out_trade_no, amount=1500):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "barcode", "subject": "tea",
        "auth_code": PAID_AT_ONCE})
    assert status == 201 and order["state"] == "succeeded", order
    return order


def _reverse(shop, out_trade_no):
    status, _, answer = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/reverse", json={})
    assert status == 200 and answer["state"] == "reversed", answer
    return answer


def _notified(shop, callback_receiver, order_id, event_type):
    """The body of the ``event_type`` notification the merchant's receiver got for the order."""
    def posted():
        bodies = [json.loads(r["body"]) for r in callback_receiver.requests]
        return [b for b in bodies if b["type"] == event_type and b["data"]["object"]["id"] == order_id]
    (body,) = shop.wait_for(posted, message=f"the {event_type} notification")
    return body


def _statement_lines(shop, out_trade_no):
    statement = statement_get(merchant=shop.merchant, day=timezone.localdate(),
                              now=timezone.now() + dt.timedelta(days=1))
    return [line for line in statement.lines if line.out_trade_no == out_trade_no]


def test_it_answers_the_reverse_of_a_paid_code_with_the_whole_amount_refunded(shop):
    order = _paid_code(shop, "RPR00001", amount=1500)

    answer = _reverse(shop, "RPR00001")

    assert (answer["refunded_amount"], answer["refundable_amount"]) == (1500, 0)
    status, _, shown = shop.client.request("GET", "/api/v1/orders/RPR00001")
    assert status == 200 and (shown["state"], shown["refunded_amount"]) == ("reversed", 1500)
    stored = Order.objects.get(pk=order["id"])
    assert (stored.refunded_amount, stored.refund_reserved, stored.refund_state) == (1500, 1500, "full")
    assert stored.reverse_requested_at is None


def test_the_merchant_is_notified_of_the_reversal_with_the_amount_given_back(shop, callback_receiver):
    order = _paid_code(shop, "RPR00002", amount=2300)
    _reverse(shop, "RPR00002")

    body = _notified(shop, callback_receiver, order["id"], "order.reversed")

    assert body["data"]["object"]["refunded_amount"] == 2300 and body["data"]["object"]["refundable_amount"] == 0
    # The payment was notified before it, with nothing given back yet; no refund.* event: no refund object exists.
    paid = _notified(shop, callback_receiver, order["id"], "order.succeeded")
    assert paid["sequence"] < body["sequence"] and paid["data"]["object"]["refunded_amount"] == 0
    types = list(Event.objects.filter(object_id=order["id"]).order_by("sequence").values_list("type", flat=True))
    assert types == ["order.succeeded", "order.reversed"]


@pytest.mark.usefixtures("clear_of_midnight")  # reversals are dated by PostgreSQL's clock
def test_the_statement_and_the_fee_report_count_what_the_order_says_went_back(shop):
    order = _paid_code(shop, "RPR00003", amount=10000)
    answer = _reverse(shop, "RPR00003")
    stored = Order.objects.get(pk=order["id"])

    lines = {line.type: line for line in _statement_lines(shop, "RPR00003")}
    assert set(lines) == {"payment", "reversal"}
    assert lines["reversal"].amount == -answer["refunded_amount"]
    assert lines["payment"].amount + lines["reversal"].amount == stored.amount - stored.refunded_amount == 0
    assert lines["reversal"].fee == -stored.merchant_fee and stored.merchant_fee > 0

    today = timezone.localdate()
    report = fee_report(start=today, end=today, account_id=stored.channel_account_id)
    totals = report.totals
    assert (totals.payment_amount, totals.refund_amount) == (stored.amount, stored.refunded_amount)
    assert totals.merchant_fee_reversed == stored.merchant_fee and totals.channel_cost_reversed == stored.channel_cost
    assert totals.net_amount == 0 and totals.net_profit == 0


def test_a_code_reversed_before_anyone_paid_says_nothing_went_back(shop):
    order, _ = confirming_alipay_code(shop, "RPR00004")

    answer = _reverse(shop, "RPR00004")

    assert answer["paid_at"] is None and answer["refunded_amount"] == 0
    stored = Order.objects.get(pk=order["id"])
    assert (stored.refunded_amount, stored.refund_reserved, stored.refund_state) == (0, 0, "none")
    assert _statement_lines(shop, "RPR00004") == []


@pytest.mark.usefixtures("clear_of_midnight")  # reversals are dated by PostgreSQL's clock
def test_a_payment_heard_of_after_its_reversal_is_shown_as_given_back(shop, simulator_server):
    order = _paid_then_reversed(shop, "RPR00005", amount=1800)  # reversed while we thought it unpaid
    assert Order.objects.get(pk=order["id"]).refunded_amount == 0

    _deliver(_held_notice(simulator_server, order["id"]))  # the payment's notice: the reverse had refunded it

    stored = Order.objects.get(pk=order["id"])
    assert stored.paid_at is not None
    assert (stored.refunded_amount, stored.refund_reserved, stored.refund_state) == (1800, 1800, "full")
    status, _, shown = shop.client.request("GET", "/api/v1/orders/RPR00005")
    assert status == 200 and (shown["state"], shown["refunded_amount"]) == ("reversed", 1800)
    assert sum(line.amount for line in _statement_lines(shop, "RPR00005")) == 1800 - stored.refunded_amount


@pytest.mark.django_db
def test_the_migration_fills_in_paid_orders_reversed_before_the_fix_and_nothing_else(tea_house):
    old = paid_order(tea_house, "RPRM0001", amount=1200, paid_at=at(10), product="wechat.barcode",
                     requested="barcode")
    reversed_at(old, at(10, 5))
    unpaid = paid_order(tea_house, "RPRM0002", amount=700, paid_at=at(11), product="wechat.barcode",
                        state="reversed")
    Order.objects.filter(pk=unpaid.pk).update(paid_at=None)
    paid_order(tea_house, "RPRM0003", amount=900, paid_at=at(12))
    migration = importlib.import_module("trades.migrations.0015_reversed_orders_refunded")

    assert migration.fill_reversed_refunds(apps) == 1
    assert migration.fill_reversed_refunds(apps) == 0  # again: nothing left to fill

    figures = {o.out_trade_no: (o.refunded_amount, o.refund_reserved, o.refund_state)
               for o in Order.objects.filter(merchant=tea_house)}
    assert figures == {"RPRM0001": (1200, 1200, "full"), "RPRM0002": (0, 0, "none"), "RPRM0003": (0, 0, "none")}

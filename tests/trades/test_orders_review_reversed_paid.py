"""A payment code reversed (撤销) while we thought it unpaid, whose payer had confirmed just before: the channel's
reverse refunded the payment, and only then does the payment's success notice arrive. Alipay's cancel answers
``action=refund`` without the payment's facts; the adapter asks the trade for them (channel-protocols.md B.5), and
when that query goes unanswered the order is ``reversed`` with no ``paid_at`` (trades.services.orders
``_paid_before_reverse`` has nothing to record). The notice, cross-checked like any success (design §5 rule 4),
then records the payment on the reversed order, so the day's statement shows the payment and its reversal, as
Alipay's bill does; the merchant, already told ``order.reversed``, hears no ``order.succeeded`` after it. Over signed
HTTP against the Alipay simulator; the payment's notice is held back until after the reverse, then delivered."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import pytest
import requests
from django.utils import timezone

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from tests.trades.order_steps import confirming_alipay_code
from trades.models import Event, Order
from trades.services.statements import statement_get

pytestmark = pytest.mark.usefixtures("quiet_channels")



def _paid_then_reversed(shop, out_trade_no, amount=1500):
    """The payer confirms (the notice held back); the merchant's reverse refunds the payment at Alipay, and the
    query for the payment's facts after the cancel goes unanswered: reversed here, no ``paid_at``."""
    order, app_id = confirming_alipay_code(shop, out_trade_no, amount)
    shop.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)
    shop.sim("alipay", "/_control/faults", fault="http_503", match={"contains": "alipay.trade.query"})
    status, _, reversed_ = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/reverse", json={})
    assert status == 200 and reversed_["state"] == "reversed" and reversed_["paid_at"] is None, reversed_
    return order


def _held_notice(simulator_server, order_id):
    (held,) = simulator_server.app.apps["alipay"].held_notifies(order_id)
    assert dict(parse_qsl(held["body"]))["trade_status"] == "TRADE_SUCCESS"
    return held


def _deliver(held):
    """The notice reaches us, as Alipay sends it (signed form POST); Alipay reads ``success`` as acknowledged."""
    answer = requests.post(held["url"], data=held["body"].encode("ascii"), timeout=30,
                           headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    return answer.status_code, answer.text


def _statement_lines(shop, out_trade_no):
    statement = statement_get(merchant=shop.merchant, day=timezone.localdate(),
                              now=timezone.now() + dt.timedelta(days=1))
    return [line for line in statement.lines if line.out_trade_no == out_trade_no]


def _types(order_id):
    return list(Event.objects.filter(object_id=order_id).order_by("id").values_list("type", flat=True))


def test_a_success_notice_for_a_reversed_code_records_the_payment_on_the_reversed_order(shop, simulator_server):
    order = _paid_then_reversed(shop, "ORR00001")

    assert _deliver(_held_notice(simulator_server, order["id"])) == (200, "success")

    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed" and stored.paid_at is not None
    assert stored.channel_trade_no and stored.wallet_trade_no
    assert stored.refunded_amount == stored.refund_reserved == 1500 and stored.reverse_requested_at is None
    status, _, shown = shop.client.request("GET", "/api/v1/orders/ORR00001")
    assert status == 200 and shown["state"] == "reversed" and shown["paid_at"] is not None
    applied = ChannelCallback.objects.filter(account=shop.accounts["alipay"], kind="payment",
                                             message__contains=order["id"]).get()
    assert applied.outcome == CallbackOutcome.APPLIED


@pytest.mark.usefixtures("clear_of_midnight")  # reversals are dated by PostgreSQL's clock
def test_the_statement_then_shows_the_payment_and_its_reversal(shop, simulator_server):
    order = _paid_then_reversed(shop, "ORR00002", amount=2000)
    assert _statement_lines(shop, "ORR00002") == []  # before the notice: neither line, unlike Alipay's bill

    _deliver(_held_notice(simulator_server, order["id"]))

    lines = _statement_lines(shop, "ORR00002")
    assert sorted((line.type, line.amount) for line in lines) == [("payment", 2000), ("reversal", -2000)]
    assert sum(line.fee for line in lines) == 0 and max(line.fee for line in lines) > 0


def test_the_merchant_hears_no_success_after_the_reversal(shop, simulator_server):
    order = _paid_then_reversed(shop, "ORR00003")

    _deliver(_held_notice(simulator_server, order["id"]))

    assert Order.objects.get(pk=order["id"]).paid_at is not None
    # order.reversed stays the last word (merchant-api.md: events are ordered by sequence per object).
    assert _types(order["id"]) == ["order.reversed"]


@pytest.mark.usefixtures("clear_of_midnight")  # reversals are dated by PostgreSQL's clock
def test_a_copy_of_the_notice_changes_nothing(shop, simulator_server):
    order = _paid_then_reversed(shop, "ORR00004")
    held = _held_notice(simulator_server, order["id"])
    _deliver(held)
    first = Order.objects.get(pk=order["id"])

    assert _deliver(held) == (200, "success")  # acknowledged, so Alipay stops sending it

    # Logged as what it is: a copy (the staff timeline shows "duplicate", not a second "applied").
    assert list(ChannelCallback.objects.order_by("pk").values_list("outcome", flat=True))[-2:] == [
        "applied", "duplicate"]
    again = Order.objects.get(pk=order["id"])
    assert (again.state, again.paid_at, again.channel_trade_no, again.updated_at) == (
        first.state, first.paid_at, first.channel_trade_no, first.updated_at)
    assert _types(order["id"]) == ["order.reversed"]
    assert sorted(line.type for line in _statement_lines(shop, "ORR00004")) == ["payment", "reversal"]


def test_a_notice_that_does_not_match_the_order_is_refused_as_a_security_event_and_records_nothing(
        shop, simulator_server):
    order = _paid_then_reversed(shop, "ORR00005")
    # Alipay's signed notice names another amount than the order's (design §5 rule 4).
    sim = simulator_server.app.apps["alipay"]
    (item,) = sim.store.get(sim.HELD, order["id"])
    item["params"]["total_amount"] = "0.01"
    sim.store.put(sim.HELD, order["id"], [item])

    assert _deliver(_held_notice(simulator_server, order["id"])) == (200, "fail")  # refused (B.4: not "success")

    refused = ChannelCallback.objects.get(account=shop.accounts["alipay"], kind="payment",
                                          message__contains=order["id"])
    assert refused.outcome == CallbackOutcome.REJECTED and "amount" in refused.message
    assert AuditLog.objects.filter(action="security.callback.mismatch", target_id=str(refused.pk)).exists()
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed" and stored.paid_at is None
    assert _statement_lines(shop, "ORR00005") == []

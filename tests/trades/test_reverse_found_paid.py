"""A payment code the payer confirms between the ladder's last query and the merchant's reverse (撤销): Alipay's
cancel answers ``action=refund`` — it was paid, and the cancel gave the money back (channel-protocols.md B.5). The
order records the payment it had not heard of, then its reversal: the merchant hears ``order.succeeded`` and
``order.reversed``, and the day's statement shows the payment and the reversal, as Alipay's bill does. Over signed
HTTP against the simulators; the payment's notice is held back so only the cancel can tell."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aggpay.models import AuditLog
from tests.trades.order_steps import confirming_alipay_code
from trades.models import Event, Order
from trades.services.statements import statement_get

pytestmark = pytest.mark.usefixtures("quiet_channels")



def _reverse(shop, out_trade_no):
    status, _, body = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/reverse", json={})
    assert status == 200, body
    return body


def _statement(shop):
    today = timezone.localdate()
    return statement_get(merchant=shop.merchant, day=today, now=timezone.now() + dt.timedelta(days=1))


def test_it_records_the_payment_a_reverse_found_before_the_reversal(shop):
    order, app_id = confirming_alipay_code(shop, "RFP00001")
    shop.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)  # the payer confirms now

    reversed_ = _reverse(shop, "RFP00001")

    assert reversed_["state"] == "reversed" and reversed_["paid_at"] is not None
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed" and stored.paid_at is not None and stored.wallet_trade_no
    assert stored.refunded_amount == stored.refund_reserved == 1500 and stored.reverse_requested_at is None
    types = list(Event.objects.filter(object_id=order["id"]).order_by("id").values_list("type", flat=True))
    assert types == ["order.succeeded", "order.reversed"]


@pytest.mark.usefixtures("clear_of_midnight")  # reversals are dated by PostgreSQL's clock
def test_the_statement_shows_the_payment_and_its_reversal(shop):
    order, app_id = confirming_alipay_code(shop, "RFP00002", amount=2000)
    shop.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)
    _reverse(shop, "RFP00002")

    statement = _statement(shop)

    lines = [(line.type, line.amount) for line in statement.lines if line.out_trade_no == "RFP00002"]
    assert sorted(lines) == [("payment", 2000), ("reversal", -2000)]
    fees = [line.fee for line in statement.lines if line.out_trade_no == "RFP00002"]
    assert sum(fees) == 0 and max(fees) > 0  # the fee charged on the payment is given back by the reversal


def test_a_code_reversed_before_anyone_paid_still_moves_no_money(shop):
    order, _ = confirming_alipay_code(shop, "RFP00003")

    reversed_ = _reverse(shop, "RFP00003")

    assert reversed_["state"] == "reversed" and reversed_["paid_at"] is None
    assert [line for line in _statement(shop).lines if line.out_trade_no == "RFP00003"] == []
    types = list(Event.objects.filter(object_id=order["id"]).values_list("type", flat=True))
    assert types == ["order.reversed"]


def test_a_found_payment_that_does_not_match_the_order_is_not_recorded_and_is_a_security_event(
        shop, simulator_server):
    order, app_id = confirming_alipay_code(shop, "RFP00004")
    shop.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)
    # The channel's record of the trade then states another amount: its signed account of the payment the cancel
    # refunded is one that does not match the order (design §5 rule 4).
    sim = simulator_server.app.apps["alipay"]
    key = next(key for key, trade in sim.store.items(sim.TRADES) if trade["out_trade_no"] == order["id"])
    sim.store.update(sim.TRADES, key, total_amount=1)

    reversed_ = _reverse(shop, "RFP00004")

    assert reversed_["state"] == "reversed" and reversed_["paid_at"] is None
    refused = AuditLog.objects.get(action="security.reverse.mismatch", target_id=order["id"])
    assert "amount" in refused.data["reason"] and refused.actor_label.startswith("channel:")


def test_risk_sees_the_refused_payment_in_its_queue_of_refused_answers(shop, simulator_server, client, risk_zhao):
    order, app_id = confirming_alipay_code(shop, "RFP00005")
    shop.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)
    sim = simulator_server.app.apps["alipay"]
    key = next(key for key, trade in sim.store.items(sim.TRADES) if trade["out_trade_no"] == order["id"])
    sim.store.update(sim.TRADES, key, total_amount=1)
    _reverse(shop, "RFP00005")
    refused = AuditLog.objects.get(action="security.reverse.mismatch", target_id=order["id"])
    client.force_login(risk_zhao)

    page = client.get("/staff/channels/security/answers/", {"verb": "reverse"}).content.decode()

    row = page[page.index(f'<tr data-answer="{refused.pk}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-field="amount"' in row and "reverse" in row
    detail = client.get(f"/staff/channels/security/answers/{refused.pk}/").content.decode()
    assert "retry_flag" in detail  # the cancel's answer, as recorded with the call

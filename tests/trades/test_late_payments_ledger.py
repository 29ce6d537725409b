"""A late payment (design §5 rule 3: paid after we closed the order) is money that moved at the channel, so it is on
the merchant's statement (merchant-api.md "Statements") and finance's fee report like any payment: a payment line
on the day the payer paid, as the channel says, and a refund line on the day the money went back — none for one
the merchant kept (trades.services.statements, .finance). The channel's bill shows both; the finance review found
neither on ours.

End to end through the WeChat simulator: the order is closed here, the payer pays anyway (the channel's success
names its own payment time, just before a Shanghai midnight), aggpay refunds it, and the channel finishes the refund
just after that midnight. Tea House's rate is 0.38 % and the channel's cost 0.20 % (tests/trades/conftest.py): on
1 500 fen the fee is 5.7 → 6 fen and the cost 3 fen.
"""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.utils import timezone

from aggpay.audit import AuditNote
from channels.simulators import wechatpay as wechat_sim
from tests.trades.ledger import SHANGHAI, paid_order
from tests.trades.test_late_payments_settle import _due, _late, slow_refunds  # noqa: F401 (a fixture)
from trades.models import LatePayment
from trades.services.finance import fee_report
from trades.services.late import late_payment_resolve_by_hand
from trades.services.statements import statement_get
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

AMOUNT, FEE, COST = 1_500, 6, 3


def _days() -> tuple[dt.date, dt.date]:
    """Two closed Shanghai days: the payment's, and the next one, the refund's."""
    today = timezone.localdate(timezone.now(), SHANGHAI)
    return today - dt.timedelta(days=2), today - dt.timedelta(days=1)


def _paid_late(shop, simulator_server, settings, out_trade_no: str, *, auto: bool, paid_at: dt.datetime):
    """_late, with the channel's success naming ``paid_at`` as its payment time (the simulator settles the trade
    with that time, so its success notice and its answers say it)."""
    sim = simulator_server.app.apps["wechatpay"]
    settle = sim.settle

    def settle_then(trade, **kwargs):
        settled = settle(trade, **kwargs)
        key = sim.trade_key(settled["sp_mchid"], settled["out_trade_no"])
        return sim.store.update(wechat_sim.NS_TRADES, key, success_time=paid_at.isoformat(timespec="seconds"))

    sim.settle = settle_then
    try:
        return _late(shop, simulator_server, settings, out_trade_no, auto=auto, amount=AMOUNT)
    finally:
        sim.settle = settle


def _bill(shop, day: dt.date) -> dict:
    status, _, body = shop.client.request("GET", f"/api/v1/bills/{day.isoformat()}")
    assert status == 200, body
    return body


def test_an_automatically_refunded_late_payment_is_a_payment_and_a_refund_on_the_days_the_money_moved(
        shop, simulator_server, settings, slow_refunds, django_assert_num_queries):  # noqa: F811
    paid_day, refund_day = _days()
    paid_at = dt.datetime.combine(paid_day, dt.time(23, 59, 40), tzinfo=SHANGHAI)
    refunded_at = dt.datetime.combine(refund_day, dt.time(0, 0, 20), tzinfo=SHANGHAI)
    late = _paid_late(shop, simulator_server, settings, "LPL-AUTO-1", auto=True, paid_at=paid_at)
    assert late.paid_at == paid_at  # the channel's time, not when its notice reached us (today)
    # The channel finishes the refund just after midnight; the sweeper's query learns of it.
    sim = simulator_server.app.apps["wechatpay"]
    sim.store.update(wechat_sim.NS_REFUNDS, f"{slow_refunds}:late_{late.order_id}", settle_at=refunded_at.timestamp())
    _due(late)
    sync_due_orders()
    late.refresh_from_db()
    assert (late.state, late.refunded_at, late.channel_refund_no != "") == ("resolved", refunded_at, True)

    paid_bill, refund_bill = _bill(shop, paid_day), _bill(shop, refund_day)
    assert paid_bill["lines"] == [
        {"type": "payment", "id": late.order_id, "out_trade_no": "LPL-AUTO-1", "out_refund_no": None,
         "product": "wechat.native", "channel_trade_no": late.channel_trade_no, "channel_refund_no": None,
         "time": f"{paid_day.isoformat()}T23:59:40+08:00", "amount": AMOUNT, "fee": FEE, "net": AMOUNT - FEE}]
    assert refund_bill["lines"] == [
        {"type": "refund", "id": late.order_id, "out_trade_no": "LPL-AUTO-1", "out_refund_no": None,
         "product": "wechat.native", "channel_trade_no": late.channel_trade_no,
         "channel_refund_no": late.channel_refund_no, "time": f"{refund_day.isoformat()}T00:00:20+08:00",
         "amount": -AMOUNT, "fee": -FEE, "net": -(AMOUNT - FEE)}]
    assert paid_bill["summary"] == {"payment_count": 1, "payment_amount": AMOUNT, "payment_fee": FEE,
                                    "refund_count": 0, "refund_amount": 0, "refund_fee": 0, "amount": AMOUNT,
                                    "fee": FEE, "net": AMOUNT - FEE}
    assert refund_bill["summary"] == {"payment_count": 0, "payment_amount": 0, "payment_fee": 0, "refund_count": 1,
                                      "refund_amount": -AMOUNT, "refund_fee": -FEE, "amount": -AMOUNT, "fee": -FEE,
                                      "net": -(AMOUNT - FEE)}

    # The fee report agrees with the statements, day by day, in the same number of queries as without late payments.
    with django_assert_num_queries(3):
        report = fee_report(start=paid_day, end=refund_day, account_id=shop.accounts["wechatpay"].pk)
    days = dict(report.daily)
    assert (days[paid_day].payment_count, days[paid_day].payment_amount, days[paid_day].merchant_fee,
            days[paid_day].channel_cost, days[paid_day].refund_count) == (1, AMOUNT, FEE, COST, 0)
    assert (days[refund_day].refund_count, days[refund_day].refund_amount, days[refund_day].merchant_fee_reversed,
            days[refund_day].channel_cost_reversed, days[refund_day].payment_count) == (1, AMOUNT, FEE, COST, 0)
    for day, bill in ((paid_day, paid_bill), (refund_day, refund_bill)):
        assert days[day].net_amount == bill["summary"]["amount"]
        assert days[day].merchant_fee - days[day].merchant_fee_reversed == bill["summary"]["fee"]
    assert (report.totals.net_amount, report.totals.net_profit) == (0, 0)  # all of it went back


def test_a_late_payment_the_merchant_kept_shows_only_its_payment(shop, simulator_server, settings, agent):
    paid_day, next_day = _days()
    paid_at = dt.datetime.combine(paid_day, dt.time(9, 30), tzinfo=SHANGHAI)
    late = _paid_late(shop, simulator_server, settings, "LPL-KEPT-1", auto=False, paid_at=paid_at)
    late = late_payment_resolve_by_hand(late_payment_id=late.pk, outcome="kept_by_merchant", note="goods delivered",
                                        audit=AuditNote(actor=agent, action="trades.late_payment.settled_by_hand",
                                                        reason="goods delivered"))
    assert (late.state, late.refunded_at) == ("resolved", None)

    bill = _bill(shop, paid_day)
    assert [(line["type"], line["id"], line["amount"], line["fee"]) for line in bill["lines"]] == [
        ("payment", late.order_id, AMOUNT, FEE)]
    assert _bill(shop, next_day)["lines"] == []
    today = timezone.localdate(timezone.now(), SHANGHAI)
    later = statement_get(merchant=shop.merchant, day=today, now=timezone.now() + dt.timedelta(days=1))
    assert later.lines == []  # settling it moved no money
    report = fee_report(start=paid_day, end=today)
    assert (report.totals.payment_amount, report.totals.merchant_fee, report.totals.refund_count) == (AMOUNT, FEE, 0)
    assert report.totals.net_amount == bill["summary"]["amount"]


def test_a_late_payment_refunded_outside_aggpay_shows_its_refund_on_the_day_a_person_said_so(
        shop, simulator_server, settings, agent):
    paid_day, _ = _days()
    late = _paid_late(shop, simulator_server, settings, "LPL-OUT-1", auto=False,
                      paid_at=dt.datetime.combine(paid_day, dt.time(12), tzinfo=SHANGHAI))
    before = timezone.now()
    late = late_payment_resolve_by_hand(late_payment_id=late.pk, outcome="refunded_outside", note="bank back office",
                                        audit=AuditNote(actor=agent, action="trades.late_payment.settled_by_hand",
                                                        reason="bank back office"))
    assert late.refunded_at is not None and late.refunded_at >= before
    today = timezone.localdate(late.refunded_at, SHANGHAI)
    statement = statement_get(merchant=shop.merchant, day=today, now=late.refunded_at + dt.timedelta(days=1))
    assert [(line.type, line.id, line.amount, line.fee) for line in statement.lines] == [
        ("refund", late.order_id, -AMOUNT, -FEE)]


@pytest.mark.django_db
def test_ordinary_orders_keep_their_lines_beside_a_late_payment_and_the_statement_stays_one_query(
        tea_house, django_assert_num_queries):
    day = dt.date(2026, 3, 10)
    at = dt.datetime.combine(day, dt.time(10), tzinfo=SHANGHAI)
    paid = paid_order(tea_house, "LPL-ORD-1", amount=10_000, paid_at=at)
    closed = paid_order(tea_house, "LPL-ORD-2", amount=2_000, paid_at=at, state="closed")
    closed.paid_at = None
    closed.save(update_fields=["paid_at"])
    LatePayment.objects.create(order=closed, channel_trade_no="42000LATE", amount=2_000,
                               paid_at=at + dt.timedelta(hours=1), refunded_at=at + dt.timedelta(hours=2),
                               state="resolved")

    with django_assert_num_queries(1):
        statement = statement_get(merchant=tea_house, day=day, now=at + dt.timedelta(days=1))
    assert [(line.type, line.id, line.amount, line.fee, line.channel_trade_no) for line in statement.lines] == [
        ("payment", paid.pk, 10_000, 38, "42000LPL-ORD-1"),
        ("payment", closed.pk, 2_000, 8, "42000LATE"),  # 2 000 × 0.38 % = 7.6 → 8
        ("refund", closed.pk, -2_000, -8, "42000LATE")]
    assert (statement.summary.amount, statement.summary.fee) == (10_000, 38)
    with django_assert_num_queries(3):
        report = fee_report(start=day, end=day)
    assert (report.totals.payment_count, report.totals.payment_amount, report.totals.refund_count,
            report.totals.net_amount, report.totals.merchant_fee - report.totals.merchant_fee_reversed) == (
        2, 12_000, 1, 10_000, 38)


# --- the migration's fill ------------------------------------------------------------------------------------------
refunded_at_of = importlib.import_module("trades.migrations.0016_late_payment_paid_refunded_at").refunded_at_of
DETECTED = dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("resolution", "expected"), [
    ("2026-03-10 02:01 refund processing at the channel\n2026-03-10 15:59 refund succeeded at the channel (R1)",
     dt.datetime(2026, 3, 10, 15, 59, tzinfo=dt.UTC)),
    ("2026-03-10 02:01 refund failed at the channel — needs a person\n"
     "2026-03-11 08:00 settled by hand: refunded outside aggpay — bank back office",
     dt.datetime(2026, 3, 11, 8, 0, tzinfo=dt.UTC)),
    ("2026-03-11 08:00 settled by hand: kept by the merchant — goods delivered", None),
    ("", DETECTED),  # resolved by an older version, whose only way was the channel's refund: detected_at
])
def test_the_migration_dates_a_resolved_late_payments_refund_from_its_notes(resolution, expected):
    assert refunded_at_of(resolution, fallback=DETECTED) == expected

"""The audit log page (/staff/admin/audit/) for one trade (issue 5 "Staff pages", design §5 rule 9). A trial: typing
an order id or out_trade_no in the target filter did not find the staff refunds on that order (their rows are about
the refund; the order is only in their data); the summary said "50 fen" beside details saying "0.50 yuan"; and
``date_from=xx`` listed every row with no word that the date was not taken. Trades paid on the WeChat Pay simulator
over signed HTTP; the page read by an admin."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aggpay.models import AuditLog
from tests.trades.test_staff_workbench import _paid
from trades.models import Delivery
from trades.services.events import deliveries_resend
from trades.services.staff import order_refund_by_staff

AUDIT = "/staff/admin/audit/"
pytestmark = pytest.mark.usefixtures("quiet_channels")


@pytest.fixture
def admin_client(client, staff_member):
    client.force_login(staff_member("admin", username="alice.admin"))
    return client


@pytest.fixture
def trades(shop, staff_member):
    """Two paid orders, each refunded 0.50 yuan by support; the first one's notification resent."""
    support = staff_member("support_agent", username="chen.support")
    mine, other = _paid(shop, "AUDIT-T-1", amount=800), _paid(shop, "AUDIT-T-2", amount=900)
    refund = order_refund_by_staff(order_id=mine.pk, actor=support, amount=50, reason="one cup short")
    other_refund = order_refund_by_staff(order_id=other.pk, actor=support, amount=50, reason="spilt")
    delivery = shop.wait_for(lambda: Delivery.objects.filter(event__object_id=mine.pk, state="delivered").first(),
                             message="the order.succeeded notification delivered")
    deliveries_resend(delivery_id=delivery.pk, actor=support, reason="the shop lost it")
    return {"order": mine, "refund": refund, "other_refund": other_refund, "delivery": delivery}


def _rows(response) -> set[tuple[str, str, str]]:
    return {(row.action, row.target_type, row.target_id) for row in response.context["page"]}


@pytest.mark.parametrize("number", ["order id", "out_trade_no"])
def test_an_order_id_or_out_trade_no_finds_the_staff_refunds_and_resends_on_that_order(admin_client, trades, number):
    order = trades["order"]

    response = admin_client.get(AUDIT, {"target": order.pk if number == "order id" else order.out_trade_no})

    rows = _rows(response)
    assert ("trades.refund.staff_created", "trades.refund", trades["refund"].pk) in rows
    assert ("trades.delivery.resent", "trades.delivery", str(trades["delivery"].pk)) in rows
    assert all(target_id != trades["other_refund"].pk for _action, _type, target_id in rows)
    assert {target_type for _action, target_type, _id in rows} <= {"trades.order", "trades.refund",
                                                                   "trades.delivery", "trades.latepayment"}


def test_the_trades_rows_are_found_through_the_target_index_not_a_scan_of_text_or_data(admin_client, trades):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(AUDIT, {"target": trades["order"].out_trade_no})

    assert response.status_code == 200 and _rows(response)
    audit_reads = [q["sql"] for q in queries.captured_queries if 'FROM "aggpay_auditlog"' in q["sql"]]
    assert audit_reads and all("LIKE" not in sql and '"aggpay_auditlog"."data"' not in sql.split("WHERE", 1)[-1]
                               for sql in audit_reads)


def test_a_number_naming_no_order_still_finds_other_targets_by_id_or_name(admin_client, trades):
    merchant = trades["order"].merchant

    response = admin_client.get(AUDIT, {"target": merchant.short_name})

    assert ("merchants.merchant.activate", "merchants.merchant", str(merchant.pk)) in _rows(response)


def test_the_summary_gives_amounts_in_yuan_like_the_details_beside_it(admin_client, trades):
    refund = trades["refund"]
    assert "50 fen" in AuditLog.objects.get(target_id=refund.pk, action="trades.refund.staff_created").target_repr

    html = admin_client.get(AUDIT, {"target": refund.order_id}).content.decode()

    assert f"{refund.pk} {refund.out_refund_no} 0.50 yuan (" in html
    assert "50 fen" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "label"), [("date_from", "From"), ("date_to", "To")])
def test_a_date_that_is_not_one_is_reported_naming_the_field(client, staff_member, field, label):
    client.force_login(staff_member("admin", username="alice.admin"))

    response = client.get(AUDIT, {field: "xx"})

    html = response.content.decode()
    assert response.status_code == 200 and field in response.context["form"].errors
    assert f"{label} is not a date: enter it as YYYY-MM-DD." in html
    assert 'id="filter-errors"' in html and "Not filtered by:" in html

"""A payment that arrives after its order was closed (a late payment, design §5 rule 3) shows on the order the merchant
API answers: ``late_payment`` says how much was paid, when, under which channel number, and what became of the money
— ``refunding``, ``refunded``, ``kept`` or ``with_support``. Bug: the order said ``closed`` with ``paid_at: null``
and no refunds while the statement had a payment line for it, so a till's totals were short with nothing to say why.

Staged over signed HTTP on the bank simulator: an order closed here and at the bank, which then records the payer's
payment after all and sends its notice (tests/trades/bank_flow.py).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from tests.trades.bank_flow import bank_refunds, late_refund_failed_first, paid_after_close, settle_now
from tests.trades.test_query_counts import QUERY_BUDGET, _counted, _signed
from trades.models import LatePayment
from trades.services.representation import LATE_PAYMENT_STATES
from trades.services.staff import late_payment_settle_by_staff

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _order(shop, out_trade_no: str) -> dict:
    status, _, order = shop.client.request("GET", f"/api/v1/orders/{out_trade_no}")
    assert status == 200, order
    return order


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_it_shows_a_late_payment_whose_automatic_refund_failed_as_held_with_support(shop, simulator_server,
                                                                                     settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    late = late_refund_failed_first(shop, simulator_server, "LPO-FAILED")  # the demo's DEMO-0030

    order = _order(shop, "LPO-FAILED")

    assert (order["state"], order["paid_at"], order["refunded_amount"]) == ("closed", None, 0)
    assert order["late_payment"] == {"amount": 1500, "paid_at": order["late_payment"]["paid_at"],
                                     "channel_trade_no": late.channel_trade_no, "state": "with_support",
                                     "refunded_at": None}
    assert late.channel_trade_no and _at(order["late_payment"]["paid_at"]) == late.paid_at
    status, _, listed = shop.client.request("GET", "/api/v1/orders?state=closed")
    assert status == 200 and [o["late_payment"] for o in listed["data"]] == [order["late_payment"]]


def test_it_says_refunding_while_the_channel_returns_the_money_then_refunded(shop, simulator_server, settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)  # processing until settle_now
    late = paid_after_close(shop, simulator_server, "LPO-REFUND")
    late = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="refunding").first(),
                         message="the automatic refund asked of the bank")

    refunding = _order(shop, "LPO-REFUND")["late_payment"]
    assert (refunding["state"], refunding["refunded_at"]) == ("refunding", None)

    settle_now(shop, simulator_server, f"late_{late.order_id}")
    resolved = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").first(),
                             message="the bank's refund notice")
    refunded = _order(shop, "LPO-REFUND")["late_payment"]
    assert refunded["state"] == "refunded" and refunded["amount"] == 1500
    assert _at(refunded["refunded_at"]) == resolved.refunded_at


def test_it_says_with_support_then_kept_when_support_settles_it_as_kept_by_the_merchant(
        shop, simulator_server, settings, staff_member):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False  # left for support (design §5 rule 3)
    late = paid_after_close(shop, simulator_server, "LPO-KEPT")
    assert _order(shop, "LPO-KEPT")["late_payment"]["state"] == "with_support"

    late_payment_settle_by_staff(late_payment_id=late.pk, actor=staff_member("support_agent", username="lin.support"),
                                 outcome="kept_by_merchant", note="the merchant handed over the tea")

    kept = _order(shop, "LPO-KEPT")["late_payment"]
    assert (kept["state"], kept["refunded_at"], kept["amount"]) == ("kept", None, 1500)


def test_an_order_without_a_late_payment_has_none(shop):
    status, _, pending = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "LPO-NONE-1", "amount": 990, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201 and pending["late_payment"] is None
    status, _, closed = shop.client.request("POST", "/api/v1/orders/LPO-NONE-1/close")
    assert status == 200 and (closed["state"], closed["late_payment"]) == ("closed", None)
    status, _, paid = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "LPO-NONE-2", "amount": 990, "product": "unionpay.barcode", "subject": "tea",
        "auth_code": "6212345678901234562"})
    assert status == 201 and (paid["state"], paid["late_payment"]) == ("succeeded", None)
    assert _order(shop, "LPO-NONE-1")["late_payment"] is None


def test_a_query_of_an_order_paid_late_stays_within_its_budget_and_the_list_does_not_grow_per_order(
        shop, simulator_server, settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False
    paid_after_close(shop, simulator_server, "LPO-COUNT-1")

    response, count, sql = _counted(lambda: _signed(shop, "GET", "/api/v1/orders/LPO-COUNT-1"))
    assert response.status_code == 200 and response.json()["late_payment"]["state"] == "with_support"
    assert count <= QUERY_BUDGET, "\n".join(sql)

    _, one, _ = _counted(lambda: _signed(shop, "GET", "/api/v1/orders"))
    for no in ("LPO-COUNT-2", "LPO-COUNT-3"):
        paid_after_close(shop, simulator_server, no)
    response, three, sql = _counted(lambda: _signed(shop, "GET", "/api/v1/orders"))
    assert [o["late_payment"]["amount"] for o in response.json()["data"]] == [1500, 1500, 1500]
    assert three == one, "\n".join(sql)


def test_the_openapi_document_declares_the_late_payment_and_its_states():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schemas = yaml.safe_load(out.getvalue())["components"]["schemas"]

    def named(node: dict) -> dict:  # a property given as a reference to a component (allOf: [$ref]) or inline
        ref = node.get("$ref") or (node.get("allOf") or [{}])[0].get("$ref")
        return schemas[ref.rsplit("/", 1)[1]] if ref else node

    field = schemas["OrderOutput"]["properties"]["late_payment"]
    assert field.get("nullable") is True and "late_payment" in schemas["OrderOutput"]["required"]
    late = named(field)
    assert set(late["properties"]) == {"amount", "paid_at", "channel_trade_no", "state", "refunded_at"}
    assert tuple(named(late["properties"]["state"])["enum"]) == LATE_PAYMENT_STATES


def test_the_docs_describe_each_state_a_late_payment_can_have():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = docs.split("**Paid after the close: late payments.**", 1)[1].split("\n`POST ", 1)[0]
    described = re.findall(r"^\| `(\w+)` \|", section, re.M)[1:]  # the heading row names `state`
    assert tuple(described) == LATE_PAYMENT_STATES
    example = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    assert set(example["late_payment"]) == {"amount", "paid_at", "channel_trade_no", "state", "refunded_at"}

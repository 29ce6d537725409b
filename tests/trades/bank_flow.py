"""Helpers for refund tests on the bank simulator (docs/channels/bank.md §7): a paid order, the bank's refund
settings, a refund asked through the merchant API, and the bank deciding a refund now."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from channels.simulators.bank_state import ns
from trades.models import Order, Refund


def paid_at_the_bank(shop, out_trade_no: str, amount: int = 1500) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201, order
    shop.sim("bank", "/_payer/pay", org_no=shop.accounts["bank"].config["org_no"], out_trade_no=order["id"])
    shop.sim("bank", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def bank_refunds(shop, **settings) -> None:
    """The bank's refund settings from now on: ``refund_outcome`` (SUCCESS, FAIL, …) after ``refund_seconds``."""
    shop.sim("bank", f"/_control/accounts/{shop.accounts['bank'].config['org_no']}/settings", **settings)


def refund(shop, order: Order, out_refund_no: str, amount: int) -> tuple[int, dict]:
    status, _, body = shop.client.request("POST", f"/api/v1/orders/{order.out_trade_no}/refunds",
                                          json={"out_refund_no": out_refund_no, "amount": amount})
    return status, body


def bank_simulator(simulator_server):
    return simulator_server.app.apps["bank"]


def at_the_bank(shop, simulator_server, number: str) -> dict | None:
    """The bank's own record of refund ``number`` (our refund id, or ``<id>_<attempt>``), or None."""
    org = shop.accounts["bank"].config["org_no"]
    return bank_simulator(simulator_server).store.get(ns("refunds", org), number)


def settle_now(shop, simulator_server, number: str) -> None:
    """The bank decides refund ``number`` now (instead of after ``refund_seconds``) and sends its notice."""
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    row = bank.store.get(ns("refunds", org), number)
    bank.store.put(ns("refunds", org), number, {**row, "resolve": {**row["resolve"], "at": 0}})
    bank.schedule("refund", org, number, 0)
    shop.sim("bank", "/_control/flush")


def refund_in_state(shop, refund_id: str, state: str) -> Refund:
    return shop.wait_for(lambda: Refund.objects.filter(pk=refund_id, state=state).first(),
                         message=f"refund {refund_id} {state}")


def due_now(refund_id: str) -> None:
    """Stand-in for the minute the ladder waits (design §5 rule 2): the refund is due for the sweeper."""
    Refund.objects.filter(pk=refund_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))

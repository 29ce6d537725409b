"""Helpers for refund tests on the bank simulator (docs/channels/bank.md §7): a paid order, the bank's refund
settings, a refund asked through the merchant API, and the bank deciding a refund now — or changing its mind about
one it failed; a late payment (paid at the bank after we closed the order) and its first refund failing there."""

from __future__ import annotations

import datetime as dt
import time

from django.utils import timezone

from channels.models import ChannelAccount
from channels.simulators import bank_wire
from channels.simulators.bank_state import ns
from channels.simulators.bank_trades import REFUND_VIEW, TRADE_VIEW, _view
from trades.models import LatePayment, Order, Refund

# §13.2: UnionPay payment codes — the last digit decides: 2 paid at once, 9 paid but the answer is UNKNOWN (a query
# finds it paid).
UNIONPAY_PAID_AT_ONCE = "6212345678901234562"
UNIONPAY_PAID_UNANSWERED = "6212345678901234569"


def unreachable_bank_account(code: str) -> ChannelAccount:
    """A Bank A account row no call reaches (``bank.invalid``), for tests that hand the services the bank's parsed
    answers and notices themselves; ``code`` names it (a callback's actor is ``channel:<code>``)."""
    return ChannelAccount.objects.create(code=code, kind="bank", name="Bank A", enabled=True,
                                         base_url="http://bank.invalid", config={})


def paid_at_the_bank(shop, out_trade_no: str, amount: int = 1500) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201, order
    shop.sim("bank", "/_payer/pay", org_no=shop.accounts["bank"].config["org_no"], out_trade_no=order["id"])
    shop.sim("bank", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def paid_by_code_at_the_bank(shop, out_trade_no: str, amount: int = 1500) -> Order:
    """A UnionPay payment code the bank charges at once: its answer to the create says paid (§6.3)."""
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "unionpay.barcode", "subject": "tea",
        "auth_code": UNIONPAY_PAID_AT_ONCE})
    assert status == 201 and order["state"] == "succeeded", order
    return Order.objects.get(pk=order["id"])


def paid_by_code_unanswered(shop, out_trade_no: str, amount: int = 1500) -> Order:
    """A UnionPay payment code the bank charges but answers UNKNOWN (§13.2), its PAY_RESULT notice held back: pending
    here until a query asks the bank."""
    org = shop.accounts["bank"].config["org_no"]
    shop.sim("bank", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=600, times=1,
             match={"path": "^PAY_RESULT$", "contains": org})
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "unionpay.barcode", "subject": "tea",
        "auth_code": UNIONPAY_PAID_UNANSWERED})
    assert status == 201 and order["state"] == "pending", order
    return Order.objects.get(pk=order["id"])


def bank_trade(shop, simulator_server, order_id: str) -> dict | None:
    """The bank's own record of the trade (our order id is its out_trade_no, §6.5), or None."""
    org = shop.accounts["bank"].config["org_no"]
    return bank_simulator(simulator_server).store.get(ns("trades", org), order_id)


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


def succeeded_after_all(shop, simulator_server, number: str) -> None:
    """The bank changes its mind about refund ``number``, which it had failed: it returned the money after all, and
    says so in a signed REFUND_RESULT notice (§11), sent now."""
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    row = bank.store.get(ns("refunds", org), number)
    bank.notify(bank.account(org), row["notify_url"], "REFUND_RESULT",
                _view({**row, "refund_state": "SUCCESS", "fail_reason": "", "success_time": bank_wire.now_text()},
                      REFUND_VIEW))
    shop.sim("bank", "/_control/flush")


def bank_pays_after_close(shop, simulator_server, out_trade_no: str, amount: int = 1500):
    """An order closed here and at the bank, which then records the payer's payment after all (a race at the bank):
    the order (as the API returned it) and a function that sends the bank's payment notice."""
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201, order
    status, _, closed = shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/close")
    assert status == 200 and closed["state"] == "closed", closed
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    account = bank.account(org)
    trade = bank.store.get(ns("trades", org), order["id"])
    trade = bank._update_trade(account, trade, resolve=None, **bank._paid_fields(account, trade, at=time.time()))
    return order, lambda: bank.notify(account, trade["notify_url"], "PAY_RESULT", _view(trade, TRADE_VIEW))


def paid_after_close(shop, simulator_server, out_trade_no: str, amount: int = 1500) -> LatePayment:
    """bank_pays_after_close, and its notice handled: a late payment, refunded at once if
    AGGPAY_LATE_PAYMENT_AUTO_REFUND."""
    order, notify = bank_pays_after_close(shop, simulator_server, out_trade_no, amount)
    notify()
    shop.sim("bank", "/_control/flush")
    return shop.wait_for(lambda: LatePayment.objects.filter(order_id=order["id"]).first(), message="a late payment")


def late_refund_failed_first(shop, simulator_server, out_trade_no: str) -> LatePayment:
    """A late payment whose first refund (``late_<order id>``) fails at the bank: back in the queue for a person.
    Needs AGGPAY_LATE_PAYMENT_AUTO_REFUND."""
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=0)
    late = paid_after_close(shop, simulator_server, out_trade_no)
    shop.sim("bank", "/_control/flush")  # the bank's FAIL notice
    late = shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="open",
                                                            resolution__contains="refund failed").first(),
                         message="the first refund failed")
    assert at_the_bank(shop, simulator_server, f"late_{late.order_id}")["refund_state"] == "FAIL"
    return late


def refund_in_state(shop, refund_id: str, state: str) -> Refund:
    return shop.wait_for(lambda: Refund.objects.filter(pk=refund_id, state=state).first(),
                         message=f"refund {refund_id} {state}")


def due_now(refund_id: str) -> None:
    """Stand-in for the minute the ladder waits (design §5 rule 2): the refund is due for the sweeper."""
    Refund.objects.filter(pk=refund_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))

"""A close that asked the account an order has since left (trades.services.orders ``order_close``): the merchant
closes an order while its create is failing over (design §7 layer 4) — the close asks Bank A, which never took the
trade, and meanwhile Bank B creates it and hands out its code. Closing then would leave Bank B's trade payable
behind a closed order (design §5 rule 3: a close asks the channel that holds the trade first). The close is handed
to the expiry sweeper instead, which asks Bank B and closes it there.

Staged at the one outbound HTTP function (style.md §4): the create's call to Bank A waits until the close has asked
Bank A; the close's answer comes back only once the create has failed over to Bank B."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest
from django.db import connection

import channels.adapters.bank as bank_adapter
from tests.trades.failover_flow import at_the_bank, create_order
from trades.models import Order, OrderState
from trades.services.orders import order_close, order_expire, orders_expired

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _org(account) -> str:
    return f'"org_no":"{account.config["org_no"]}"'


def test_a_close_that_asked_the_account_the_order_left_is_finished_by_the_sweeper_at_the_new_one(
        shop, bank_b, simulator_server):
    bank_a = shop.accounts["bank"]
    # Bank A refuses the create for now (HTTP 429); its query and close answer as usual ("no such trade").
    shop.sim("bank", "/_control/faults", fault="business_error", code="RATE_LIMITED", status=429,
             match={"path": "^/api/pay/unified$", "contains": _org(bank_a)})
    real = bank_adapter.channel_request
    close_asked_a, create_done = threading.Event(), threading.Event()

    def send(method, url, **kwargs):
        body = (kwargs.get("body") or b"").decode()
        if url.endswith("/api/pay/unified") and _org(bank_a) in body:  # the create's call (bank.md §6.1)
            assert close_asked_a.wait(30), "the close never asked Bank A"
        answer = real(method, url, **kwargs)
        if url.endswith("/api/pay/close") and _org(bank_a) in body:
            close_asked_a.set()
            assert create_done.wait(30), "the create never came back"
        return answer

    created = {}

    def create():
        try:
            created["answer"] = create_order(shop, "FOCLOSE1")
        finally:
            create_done.set()
            connection.close()

    with mock.patch.object(bank_adapter, "channel_request", autospec=True, side_effect=send):
        creating = threading.Thread(target=create)
        creating.start()
        order_id = _wait_for_order("FOCLOSE1")
        answered = order_close(order_id=order_id)
        creating.join(30)

    status, _, order = created["answer"]
    assert status == 201 and order["pay_params"]["code_url"], order  # Bank B's code, handed to the merchant
    assert at_the_bank(simulator_server, bank_b, "trades", order_id)["trade_state"] == "NOTPAY"
    # Not closed over Bank B's live trade: still pending, expiring now, for the sweeper.
    assert answered.state == OrderState.PENDING and answered.channel_account_id == bank_b.pk

    assert order_id in orders_expired()
    order_expire(order_id=order_id)

    assert Order.objects.get(pk=order_id).state == OrderState.CLOSED
    assert at_the_bank(simulator_server, bank_b, "trades", order_id)["trade_state"] == "CLOSED"


def _wait_for_order(out_trade_no: str) -> str:
    for _ in range(300):
        found = Order.objects.filter(out_trade_no=out_trade_no).values_list("pk", flat=True).first()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no order {out_trade_no}")

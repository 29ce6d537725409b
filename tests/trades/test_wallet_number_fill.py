"""The wallet's number filled on orders paid before it was kept (trades/migrations/0013_fill_wallet_trade_no.py).

Orders paid before migration 0010 have no wallet_trade_no. At WeChat Pay and Alipay the wallet's number is the
channel's own trade number, so it is copied. Behind the bank it is the bank's ``channel_trade_no`` (docs/channels/
bank.md §2, §6.5), which our stored channel calls hold in the bank's verified trade objects; an order only the bank's
PAY_RESULT notice told paid has it in that notice alone, stored encrypted, which the migration does not open.

The bank orders are paid for real on the simulator; "paid before 0010" is their wallet number emptied, as those
orders were left. The numbers are read off the bank's own record, never made up here.
"""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from channels.models import ChannelAccount
from tests.trades.bank_flow import (
    bank_trade,
    paid_at_the_bank,
    paid_by_code_at_the_bank,
    paid_by_code_unanswered,
)
from tests.trades.ledger import at, paid_order
from tests.trades.test_staff_workbench import _order
from trades.models import ChannelCall, LatePayment, Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

fill = importlib.import_module("trades.migrations.0013_fill_wallet_trade_no").fill_wallet_trade_no


def _paid_before_the_wallets_number_was_kept(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(wallet_trade_no="")


def _wallet_no(order: Order) -> str:
    return Order.objects.get(pk=order.pk).wallet_trade_no


def test_a_bank_payment_code_order_gets_the_wallets_number_from_the_banks_answer_to_the_create(shop,
                                                                                             simulator_server):
    order = paid_by_code_at_the_bank(shop, "WF-BANK-CODE")
    _paid_before_the_wallets_number_was_kept(order)

    assert fill(apps) == 1
    wallet_no = bank_trade(shop, simulator_server, order.pk)["channel_trade_no"]
    assert wallet_no and _wallet_no(order) == wallet_no != order.channel_trade_no  # not the bank's own number
    assert fill(apps) == 0 and _wallet_no(order) == wallet_no  # run again: nothing more to fill


def test_a_bank_order_a_query_found_paid_gets_the_wallets_number_from_the_banks_answer_to_the_query(
        shop, simulator_server):
    order = paid_by_code_unanswered(shop, "WF-BANK-QUERY")
    status, _, asked = shop.client.request("GET", f"/api/v1/orders/{order.out_trade_no}")  # asks the bank
    assert status == 200 and asked["state"] == "succeeded", asked
    assert ChannelCall.objects.filter(order=order, verb="query", outcome="succeeded").exists()
    _paid_before_the_wallets_number_was_kept(order)

    assert fill(apps, batch=1) == 1
    assert _wallet_no(order) == bank_trade(shop, simulator_server, order.pk)["channel_trade_no"]


def test_a_bank_order_only_the_banks_notice_told_paid_is_left_without_it(shop, simulator_server):
    order = paid_at_the_bank(shop, "WF-BANK-NOTICE")
    _paid_before_the_wallets_number_was_kept(order)

    assert fill(apps) == 0  # the number is only in the notice, stored encrypted
    assert _wallet_no(order) == ""


def test_a_bank_answer_about_another_trade_is_not_taken(shop, simulator_server):
    order = paid_by_code_at_the_bank(shop, "WF-BANK-OTHER")
    _paid_before_the_wallets_number_was_kept(order)
    Order.objects.filter(pk=order.pk).update(channel_trade_no="B20260310000000000001")  # not the answer's trade_no

    assert fill(apps) == 0 and _wallet_no(order) == ""


@pytest.mark.parametrize(("kind", "product"), [("wechatpay", "wechat.native"), ("alipay", "alipay.qr")])
def test_a_direct_order_gets_the_channels_own_number_and_a_late_paid_one_its_late_payments(tea_house, kind,
                                                                                           product):
    account = ChannelAccount.objects.create(code=f"{kind}-fill", kind=kind, name=kind, enabled=True,
                                            base_url=f"http://{kind}.invalid", config={})
    paid = paid_order(tea_house, "WF-PAID", amount=1500, paid_at=at(10), product=product, channel_account=account)
    known = paid_order(tea_house, "WF-KNOWN", amount=1500, paid_at=at(11), product=product, channel_account=account,
                       wallet_trade_no="4200000000KNOWN")
    closed = _order(tea_house, "WF-LATE", state="closed", channel_account=account)  # paid after we closed it
    LatePayment.objects.create(order=closed, channel_trade_no="4200000000LATE", amount=1500)
    unpaid = _order(tea_house, "WF-UNPAID", state="closed", channel_account=account)

    assert fill(apps, batch=2) == 2
    assert _wallet_no(paid) == paid.channel_trade_no
    assert _wallet_no(closed) == "4200000000LATE"
    assert _wallet_no(known) == "4200000000KNOWN" and _wallet_no(unpaid) == ""  # never overwritten, nothing to copy
    assert fill(apps) == 0

"""Every payment an account collects is counted once on its local day, against the product's daily cap (design §7
layer 1; channels.services.volume): a success by callback, by a payment code's create answer, by a query, a late
payment after a close (design §5 rule 3) and a payment found after a reverse — each once, however many copies of
its notice arrive; refunds take nothing off. Once the day's payments reach the cap, routing sends the next order to
another account, or, with none left, the merchant gets ``product_not_available`` as for any other ineligibility.
Over signed HTTP against the simulators (the shop persona: WeChat Pay, Alipay and Bank A)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
import requests
from django.utils import timezone

from channels.models import AccountDayVolume, ChannelAccount, ChannelProduct
from channels.routing import choose
from channels.services.volume import local_day
from channels.simulators import bank as bank_sim
from channels.simulators.bank_state import ns
from channels.simulators.bank_trades import TRADE_VIEW, _view
from merchants.models import Contract, ContractRate
from tests.trades.bank_flow import (
    bank_pays_after_close,
    bank_refunds,
    bank_simulator,
    paid_at_the_bank,
    paid_by_code_at_the_bank,
    paid_by_code_unanswered,
    refund,
    settle_now,
)
from tests.trades.order_steps import confirming_alipay_code
from trades.models import LatePayment, Order, Refund
from trades.services.orders import order_sync

# Payments are counted now and read back as today's: on a clock at local noon, never across a midnight.
pytestmark = pytest.mark.usefixtures("local_midday", "quiet_channels")


def _volume(account, product: str, day: dt.date | None = None) -> tuple[int, int]:
    """(fen collected, payments) on ``account``'s ``product`` on ``day`` (default: today, Asia/Shanghai)."""
    row = AccountDayVolume.objects.filter(account=account, product=product,
                                          day=day or local_day(timezone.now())).first()
    return (row.paid_amount, row.paid_count) if row else (0, 0)


def _notify_again(shop, simulator_server, order_id: str) -> None:
    """The bank sends its signed PAY_RESULT notice for the trade once more (a channel retries until acknowledged)."""
    bank, org = bank_simulator(simulator_server), shop.accounts["bank"].config["org_no"]
    trade = bank.store.get(ns("trades", org), order_id)
    bank.notify(bank.account(org), trade["notify_url"], "PAY_RESULT", _view(trade, TRADE_VIEW))
    shop.sim("bank", "/_control/flush")


def _cap(account, product: str, fen: int | None) -> None:
    # Saved, not QuerySet.update: the save moves the front door's generation token, as ops' edits do.
    offer = ChannelProduct.objects.get(account=account, product=product)
    offer.daily_cap = fen
    offer.save()


# --- counted once, whichever way the payment is heard of ------------------------------------------------------------
def test_a_callback_success_is_counted_once_and_a_copy_of_its_notice_adds_nothing(shop, simulator_server):
    bank = shop.accounts["bank"]
    order = paid_at_the_bank(shop, "VOL-CB-1", amount=1500)
    assert local_day(order.paid_at) == local_day(timezone.now())
    assert _volume(bank, "unionpay.qr") == (1500, 1)

    _notify_again(shop, simulator_server, order.pk)

    assert _volume(bank, "unionpay.qr") == (1500, 1)
    paid_at_the_bank(shop, "VOL-CB-2", amount=2500)
    assert _volume(bank, "unionpay.qr") == (4000, 2)
    assert _volume(shop.accounts["wechatpay"], "unionpay.qr") == (0, 0)


def test_a_payment_code_paid_in_the_creates_answer_is_counted_on_its_own_product(shop):
    paid_by_code_at_the_bank(shop, "VOL-CODE-1", amount=1200)
    assert _volume(shop.accounts["bank"], "unionpay.barcode") == (1200, 1)
    assert _volume(shop.accounts["bank"], "unionpay.qr") == (0, 0)


def test_a_success_found_by_a_query_is_counted_once_however_often_the_order_is_synced(shop):
    order = paid_by_code_unanswered(shop, "VOL-QUERY-1", amount=1800)
    assert _volume(shop.accounts["bank"], "unionpay.barcode") == (0, 0)  # pending: nothing collected yet

    assert order_sync(order_id=order.pk, force=True).state == "succeeded"
    order_sync(order_id=order.pk, force=True)

    assert _volume(shop.accounts["bank"], "unionpay.barcode") == (1800, 1)


def test_a_late_payment_is_counted_once_and_its_refund_takes_nothing_off(shop, simulator_server, settings):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = True
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=0)
    order, notify = bank_pays_after_close(shop, simulator_server, "VOL-LATE-1", amount=1300)
    assert _volume(shop.accounts["bank"], "unionpay.qr") == (0, 0)  # closed unpaid

    notify()
    notify()  # the bank's copy of its notice
    shop.sim("bank", "/_control/flush")
    late = shop.wait_for(lambda: LatePayment.objects.filter(order_id=order["id"], state="resolved").first(),
                         message="the late payment refunded")

    assert late.amount == 1300
    assert _volume(shop.accounts["bank"], "unionpay.qr", local_day(late.paid_at)) == (1300, 1)


def test_a_refund_takes_nothing_off_the_day(shop, simulator_server):
    order = paid_at_the_bank(shop, "VOL-REFUND-1", amount=2000)
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, body = refund(shop, order, "VOL-REFUND-1R", 2000)
    assert status == 201, body
    settle_now(shop, simulator_server, body["id"])
    shop.wait_for(lambda: Refund.objects.filter(pk=body["id"], state="succeeded").exists(), message="refunded")

    assert _volume(shop.accounts["bank"], "unionpay.qr") == (2000, 1)  # the channel collected it today


def test_a_payment_found_after_a_reverse_is_counted_once(shop, simulator_server):
    # The payer confirmed just before the reverse; the reverse refunded it, and its notice arrives afterwards
    # (trades.services.orders._paid_after_reverse). Collected all the same: the channel took it in today.
    order, app_id = confirming_alipay_code(shop, "VOL-REV-1", amount=1600)
    shop.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)
    shop.sim("alipay", "/_control/faults", fault="http_503", match={"contains": "alipay.trade.query"})
    status, _, reversed_ = shop.client.request("POST", "/api/v1/orders/VOL-REV-1/reverse", json={})
    assert status == 200 and reversed_["state"] == "reversed" and reversed_["paid_at"] is None, reversed_
    assert _volume(shop.accounts["alipay"], "alipay.barcode") == (0, 0)
    (held,) = simulator_server.app.apps["alipay"].held_notifies(order["id"])
    assert dict(parse_qsl(held["body"]))["trade_status"] == "TRADE_SUCCESS"

    for _copy in range(2):
        answer = requests.post(held["url"], data=held["body"].encode("ascii"), timeout=30,
                               headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        assert answer.text == "success"

    assert Order.objects.get(pk=order["id"]).paid_at is not None
    assert _volume(shop.accounts["alipay"], "alipay.barcode") == (1600, 1)


# --- routing holds the cap -------------------------------------------------------------------------------------------
def _second_bank(shop) -> ChannelAccount:
    """Bank B: another bank account at the simulator, dearer than Bank A, with an active contract for the shop."""
    root = shop.root
    name = f"bankb{shop.accounts['bank'].code[-8:]}"
    account = ChannelAccount.objects.create(code=name, kind="bank", name="Bank B", base_url=f"{root}/bank",
                                            config=bank_sim.provision(root, name=name), enabled=True)
    mch = requests.post(f"{root}/bank/_control/merchants",
                        json={"org_no": account.config["org_no"], "name": "Tea House"}, timeout=10).json()
    contract = Contract.objects.create(merchant=shop.merchant, channel_account=account, state="active",
                                       business_code=f"B{name}", sub_mchid=mch["mch_no"])
    ChannelProduct.objects.create(account=account, product="unionpay.qr", cost_rate=Decimal("0.0025"),
                                  max_amount=5_000_000)
    ContractRate.objects.create(contract=contract, product="unionpay.qr", rate=Decimal("0.0038"))
    return account


def test_once_the_days_payments_reach_the_cap_the_next_order_goes_to_the_next_account(shop):
    bank_a = shop.accounts["bank"]
    bank_b = _second_bank(shop)
    _cap(bank_a, "unionpay.qr", 3000)
    paid_at_the_bank(shop, "VOL-CAP-1", amount=3000)

    status, _, body = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "VOL-CAP-2", "amount": 100, "product": "unionpay.qr", "subject": "tea"})

    assert status == 201, body
    order = Order.objects.get(pk=body["id"])
    assert order.channel_account_id == bank_b.pk and order.cost_rate == Decimal("0.0025")
    reasons = {c["account"]: c["reason"] for c in order.routing["candidates"]}
    assert reasons[bank_a.code] == "daily cap reached: 30.00 of 30.00 yuan paid today"


def test_with_only_a_capped_account_full_the_merchant_gets_product_not_available(shop):
    bank = shop.accounts["bank"]
    _cap(bank, "unionpay.qr", 2000)
    paid_at_the_bank(shop, "VOL-FULL-1", amount=1500)

    status, _, body = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "VOL-FULL-2", "amount": 1000, "product": "unionpay.qr", "subject": "tea"})

    assert status == 422, body
    assert body["error"]["code"] == "product_not_available" and body["error"]["param"] == "product"
    assert body["error"]["message"] == "no active contract can take unionpay.qr for 1000 fen"  # as any ineligibility
    assert not Order.objects.filter(out_trade_no="VOL-FULL-2").exists()
    decision = choose(merchant=shop.merchant, product="unionpay.qr", amount=1000)
    assert [c["reason"] for c in decision.candidates] == [
        "daily cap reached: 15.00 of 20.00 yuan paid today, 5.00 left"]
    status, _, body = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "VOL-FULL-3", "amount": 500, "product": "unionpay.qr", "subject": "tea"})
    assert status == 201, body  # what is left still fits

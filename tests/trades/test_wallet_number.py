"""The wallet's own number (issue 5 "Staff pages": support searches by any number a caller quotes). A consumer who
complains reads the number off their wallet — WeChat's 交易单号 (``transaction_id``), Alipay's 交易号 (``trade_no``),
UnionPay's order id. At a direct channel that is the channel's trade number; behind the partner bank it is not: the
bank's answers carry its own ``trade_no`` and the wallet's number as ``channel_trade_no`` (docs/channels/bank.md §2,
§6.5). aggpay keeps the bank's number as the order's channel trade no and the wallet's beside it, fills it from every
bank answer that carries it (the create answer of a payment code, a query, the PAY_RESULT notice), shows it on the
trade page, and finds the order by it.

Every number below is read off the simulators (the payer's answer, the bank's own record of the trade), never made
up here.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.trades.bank_flow import (
    bank_trade,
    paid_after_close,
    paid_by_code_at_the_bank,
    paid_by_code_unanswered,
)
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

SEARCH = "/staff/trades/"


def _create(shop, out_trade_no: str, product: str, **fields) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": product, "subject": "tea", **fields})
    assert status == 201, order
    return order


def _paid(shop, order_id: str) -> Order:
    return shop.wait_for(lambda: Order.objects.filter(pk=order_id, state="succeeded").first(), message="paid")


def _found(client, number: str) -> str:
    """What support gets for ``number`` in the search box: the id of the one trade it opens."""
    response = client.get(SEARCH, {"q": number})
    assert response.status_code == 302, f"{number} did not open exactly one trade"
    return response.url.rstrip("/").rsplit("/", 1)[-1]


def _trade_page(client, order_id: str) -> str:
    return client.get(reverse("trades:detail", args=[order_id])).content.decode()


def test_a_bank_order_paid_by_scanning_is_found_by_the_number_in_the_payers_wallet(shop, client, agent):
    created = _create(shop, "WN-BANK-QR", "unionpay.qr")
    payer = shop.sim("bank", "/_payer/pay", org_no=shop.accounts["bank"].config["org_no"],
                     out_trade_no=created["id"])
    wallet_no = payer["channel_trade_no"]  # what the payer's UnionPay app shows
    shop.sim("bank", "/_control/flush")  # the bank's PAY_RESULT notice
    order = _paid(shop, created["id"])

    assert wallet_no and order.channel_trade_no == payer["trade_no"] != wallet_no  # the bank's own number
    assert order.wallet_trade_no == wallet_no
    assert _found(client, wallet_no) == order.pk
    page = _trade_page(client, order.pk)
    assert f'id="wallet-trade-no">{wallet_no}<' in page
    assert f'id="channel-trade-no">{order.channel_trade_no}<' in page


def test_a_payment_code_paid_at_once_keeps_the_wallets_number_from_the_banks_answer(shop, simulator_server,
                                                                                    client, agent):
    order = paid_by_code_at_the_bank(shop, "WN-BANK-CODE")  # the create answer itself said paid
    wallet_no = bank_trade(shop, simulator_server, order.pk)["channel_trade_no"]

    assert order.wallet_trade_no == wallet_no
    assert _found(client, wallet_no) == order.pk


def test_a_payment_code_the_bank_did_not_answer_gets_the_wallets_number_from_the_query(shop, simulator_server,
                                                                                      client, agent):
    # The bank's notice is held back, so only the query can tell us the payment (and the wallet's number).
    created = paid_by_code_unanswered(shop, "WN-BANK-UNKNOWN")
    wallet_no = bank_trade(shop, simulator_server, created.pk)["channel_trade_no"]
    assert client.get(SEARCH, {"q": wallet_no}).context["page"].paginator.count == 0  # not known to us yet

    client.post(reverse("trades:sync", args=[created.pk]))  # support presses "Sync now": the bank is queried
    order = Order.objects.get(pk=created.pk)
    assert order.state == "succeeded" and order.wallet_trade_no == wallet_no
    assert _found(client, wallet_no) == order.pk


@pytest.mark.parametrize(("kind", "product", "wallet_field"), [
    ("wechatpay", "wechat.native", "transaction_id"),  # WeChat's 交易单号
    ("alipay", "alipay.qr", "trade_no"),  # Alipay's 交易号
])
def test_a_direct_order_is_found_by_the_wallets_number_which_is_the_channels_own(shop, client, agent, kind, product,
                                                                                wallet_field):
    created = _create(shop, f"WN-{kind}", product)
    code = created["pay_params"]["code_url"]
    payer = shop.sim(kind, "/_payer/pay", **({"code_url": code} if kind == "wechatpay" else {"qr_code": code}))
    wallet_no = payer[wallet_field]
    shop.sim(kind, "/_control/flush")
    order = _paid(shop, created["id"])

    assert order.wallet_trade_no == order.channel_trade_no == wallet_no
    assert _found(client, wallet_no) == order.pk
    assert f'id="wallet-trade-no">{wallet_no}<' in _trade_page(client, order.pk)


def test_a_late_payment_at_the_bank_is_found_by_the_wallets_number(shop, simulator_server, settings, client, agent):
    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False  # left for a person: the payer calls support
    late = paid_after_close(shop, simulator_server, "WN-BANK-LATE")
    wallet_no = bank_trade(shop, simulator_server, late.order_id)["channel_trade_no"]

    assert _found(client, wallet_no) == late.order_id
    assert f'id="wallet-trade-no">{wallet_no}<' in _trade_page(client, late.order_id)

"""The order object says which wallet paid and which till took it (docs/api.md "Which wallet, which till", an
addition to merchant-api.md's order object): a ``barcode`` order's ``product`` stays ``barcode``, so ``wallet`` names
the wallet its payment code belonged to, and ``store_id`` / ``terminal_id`` come back as sent — on the create, its
replay, the query, the list and the notification. Over signed HTTP against the simulators."""

from __future__ import annotations

import json

import pytest

from trades.services.cashier import order_cashier_pay

pytestmark = pytest.mark.usefixtures("quiet_channels")

WECHAT_CODE = "134567890123456780"  # WeChat: 18 digits from 10–15; ending 0, paid at once
ALIPAY_CODE = "281234567890123450"  # Alipay: 16–24 digits from 25–30; ending 0, paid at once
TILL = {"store_id": "S001", "terminal_id": "POS-03"}


def _create(shop, out_trade_no, product, **fields):
    body = {"out_trade_no": out_trade_no, "amount": 1500, "product": product, "subject": "tea", **fields}
    return shop.client.request("POST", "/api/v1/orders", json=body)


def _notifications(receiver, event_type, order_id):
    notes = [json.loads(r["body"]) for r in receiver.requests]
    return [n for n in notes if n["type"] == event_type and n["data"]["object"]["id"] == order_id]


def test_it_says_a_barcode_order_with_a_wechat_code_is_paid_in_wechat_and_echoes_the_till(shop, callback_receiver):
    status, _, order = _create(shop, "WAL00001", "barcode", auth_code=WECHAT_CODE, **TILL)
    assert status == 201, order
    assert order["product"] == "barcode" and order["state"] == "succeeded"
    assert (order["wallet"], order["store_id"], order["terminal_id"]) == ("wechat", "S001", "POS-03")

    status, _, queried = shop.client.request("GET", "/api/v1/orders/WAL00001")
    assert status == 200
    assert (queried["wallet"], queried["store_id"], queried["terminal_id"]) == ("wechat", "S001", "POS-03")

    note = shop.wait_for(lambda: _notifications(callback_receiver, "order.succeeded", order["id"]),
                         message="the order.succeeded notification")[0]
    told = note["data"]["object"]
    assert (told["wallet"], told["store_id"], told["terminal_id"]) == ("wechat", "S001", "POS-03")


def test_it_says_a_barcode_order_with_an_alipay_code_is_paid_in_alipay(shop):
    status, _, order = _create(shop, "WAL00002", "barcode", auth_code=ALIPAY_CODE)
    assert status == 201, order
    assert order["product"] == "barcode" and order["wallet"] == "alipay"

    status, _, queried = shop.client.request("GET", "/api/v1/orders/WAL00002")
    assert status == 200 and queried["wallet"] == "alipay"


def test_it_answers_the_wallet_and_the_till_on_a_replayed_create_too(shop):
    status, _, first = _create(shop, "WAL00003", "barcode", auth_code=ALIPAY_CODE, **TILL)
    assert status == 201, first

    status, headers, replay = _create(shop, "WAL00003", "barcode", auth_code=ALIPAY_CODE, **TILL)
    assert status == 200 and headers.get("Idempotent-Replayed") == "true", replay
    assert replay["id"] == first["id"]
    assert (replay["wallet"], replay["store_id"], replay["terminal_id"]) == ("alipay", "S001", "POS-03")


def test_it_says_a_wechat_native_order_is_wechat_with_no_till_when_none_was_sent(shop):
    status, _, order = _create(shop, "WAL00004", "wechat.native")
    assert status == 201, order
    assert (order["wallet"], order["store_id"], order["terminal_id"]) == ("wechat", None, None)


def test_it_has_no_wallet_for_a_cashier_order_no_payer_has_opened_yet(shop):
    status, _, order = _create(shop, "WAL00005", "cashier", **TILL)
    assert status == 201, order
    assert (order["wallet"], order["store_id"], order["terminal_id"]) == (None, "S001", "POS-03")


def test_it_says_a_cashier_order_is_in_the_wallet_the_payer_opened_it_in(shop):
    status, _, order = _create(shop, "WAL00009", "cashier")
    assert status == 201, order
    # What the hosted page does once Alipay's OAuth names the payer (trades.onecode, channel-protocols.md §E).
    order_cashier_pay(order_id=order["id"], wallet="alipay", payer_id="2088000000000001",
                      account_id=shop.accounts["alipay"].pk)

    status, _, queried = shop.client.request("GET", "/api/v1/orders/WAL00009")
    assert status == 200 and queried["product"] == "cashier" and queried["wallet"] == "alipay", queried


def test_it_lists_only_the_orders_of_the_wallet_asked_for_and_refuses_another_naming_it(shop):
    for out_trade_no, product, fields in (("WAL00006", "barcode", {"auth_code": WECHAT_CODE}),
                                          ("WAL00007", "barcode", {"auth_code": ALIPAY_CODE}),
                                          ("WAL00008", "alipay.qr", {})):
        status, _, order = _create(shop, out_trade_no, product, **fields)
        assert status == 201, order

    status, _, listed = shop.client.request("GET", "/api/v1/orders?wallet=alipay")
    assert status == 200, listed
    assert [o["out_trade_no"] for o in listed["data"]] == ["WAL00008", "WAL00007"]
    assert {o["wallet"] for o in listed["data"]} == {"alipay"}

    status, _, refused = shop.client.request("GET", "/api/v1/orders?wallet=paypal")
    assert status == 400 and refused["error"]["param"] == "wallet", refused

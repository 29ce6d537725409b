"""Orders end to end over signed HTTP (issue 5 "How it is checked"): create through the merchant API, pay on the
simulator's payer side, the channel's signed callback settles the order, the merchant receives a signed
notification, refunds settle, close and reverse work — PostgreSQL, live HTTP, real crypto."""

from __future__ import annotations

import json

import pytest

from aggpay.api import signing
from channels.models import ChannelAccount
from trades.models import Order, Refund
from trades.tasks_orders import sync_due_orders


def _create(shop, **fields):
    body = {"out_trade_no": fields.pop("out_trade_no"), "amount": fields.pop("amount", 1234), "subject": "Longjing tea",
            **fields}
    return shop.client.request("POST", "/api/v1/orders", json=body)


def _notifications(receiver, event_type):
    return [json.loads(r["body"]) for r in receiver.requests if json.loads(r["body"])["type"] == event_type]


def test_a_wechat_native_order_is_paid_notified_and_refunded(shop, callback_receiver):
    status, headers, order = _create(shop, out_trade_no="T10001", product="wechat.native",
                                     metadata={"table": "7"})
    assert status == 201, order
    assert order["state"] == "pending" and order["pay_params"]["code_url"].startswith("weixin://")
    assert order["metadata"] == {"table": "7"}

    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    paid = shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")
    assert paid.channel_trade_no and paid.merchant_fee == 5 and paid.channel_cost == 2  # 0.38% / 0.20% of 1234

    note = shop.wait_for(lambda: _notifications(callback_receiver, "order.succeeded"), message="notification")[0]
    request = next(r for r in callback_receiver.requests if json.loads(r["body"])["id"] == note["id"])
    assert signing.verify_response(request["headers"], request["body"], secret=shop.app.secret)
    assert note["data"]["object"]["out_trade_no"] == "T10001" and note["data"]["object"]["state"] == "succeeded"

    status, _, queried = shop.client.request("GET", "/api/v1/orders/T10001")
    assert status == 200 and queried["state"] == "succeeded" and queried["refundable_amount"] == 1234

    status, _, refund = shop.client.request("POST", "/api/v1/orders/T10001/refunds",
                                            json={"out_refund_no": "R1", "amount": 234, "reason": "one cup short"})
    assert status == 201 and refund["state"] in ("pending", "succeeded")
    shop.sim("wechatpay", f"/_control/refunds/{refund['id']}", status="SUCCESS",
             sp_mchid=shop.accounts["wechatpay"].config["sp_mchid"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Refund.objects.filter(pk=refund["id"], state="succeeded").exists(), message="refunded")
    status, _, order_after = shop.client.request("GET", "/api/v1/orders/T10001")
    assert order_after["refunded_amount"] == 234 and order_after["refundable_amount"] == 1000

    status, _, replay = shop.client.request("POST", "/api/v1/orders/T10001/refunds",
                                            json={"out_refund_no": "R1", "amount": 234, "reason": "one cup short"})
    assert status == 200 and replay["id"] == refund["id"]
    status, _, too_much = shop.client.request("POST", "/api/v1/orders/T10001/refunds",
                                              json={"out_refund_no": "R2", "amount": 1001})
    assert status == 422 and too_much["error"]["code"] == "refund_amount_exceeded"


def test_a_retried_create_replays_and_a_changed_one_conflicts(shop):
    status, _, first = _create(shop, out_trade_no="T20001", product="alipay.qr")
    assert status == 201 and first["pay_params"]["code_url"]
    status, headers, again = _create(shop, out_trade_no="T20001", product="alipay.qr")
    assert status == 200 and headers["Idempotent-Replayed"] == "true" and again["id"] == first["id"]
    status, _, conflict = _create(shop, out_trade_no="T20001", product="alipay.qr", amount=999)
    assert status == 409 and conflict["error"]["code"] == "idempotency_conflict"


def test_a_payment_code_of_another_wallet_is_refused_naming_the_field_and_nothing_is_written(shop):
    # A WeChat code sent as unionpay.barcode: the bank would refuse it; aggpay says so first (design §5 rule 12).
    status, _, answer = _create(shop, out_trade_no="T20010", product="unionpay.barcode",
                                auth_code="134567890123456780")
    assert status == 400 and answer["error"]["param"] == "auth_code", answer
    assert not Order.objects.filter(merchant=shop.merchant, out_trade_no="T20010").exists()


def test_a_retry_is_replayed_even_when_the_order_could_no_longer_be_routed(shop):
    # Retries are recognised when the order is inserted; a request refused before that (here: no contract can take
    # it any more) still replays the order it retries, and a changed one still conflicts (design §5 rule 5).
    status, _, first = _create(shop, out_trade_no="T20002", product="alipay.qr")
    assert status == 201
    account = ChannelAccount.objects.get(pk=shop.accounts["alipay"].pk)
    account.enabled = False
    account.save()
    status, headers, again = _create(shop, out_trade_no="T20002", product="alipay.qr")
    assert status == 200 and headers["Idempotent-Replayed"] == "true" and again["id"] == first["id"]
    status, _, conflict = _create(shop, out_trade_no="T20002", product="alipay.qr", amount=999)
    assert status == 409 and conflict["error"]["code"] == "idempotency_conflict"
    status, _, refused = _create(shop, out_trade_no="T20003", product="alipay.qr")
    assert status == 422 and refused["error"]["code"] == "product_not_available"


@pytest.mark.parametrize(("product", "kind"), [("alipay.qr", "alipay"), ("unionpay.qr", "bank")])
def test_qr_orders_of_other_wallets_are_paid_through_their_callbacks(shop, product, kind):
    status, _, order = _create(shop, out_trade_no=f"Q{kind[:3]}0001", product=product)
    assert status == 201, order
    code = order["pay_params"]["code_url"]
    if kind == "alipay":
        shop.sim("alipay", "/_payer/pay", qr_code=code)
    else:
        shop.sim("bank", "/_payer/pay", org_no=shop.accounts["bank"].config["org_no"], out_trade_no=order["id"])
    shop.sim(kind, "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").exists(), message="paid")


def test_closing_asks_the_channel_first_and_closes_an_unpaid_order(shop):
    _, _, order = _create(shop, out_trade_no="T30001", product="wechat.native")
    status, _, closed = shop.client.request("POST", "/api/v1/orders/T30001/close")
    assert status == 200 and closed["state"] == "closed"
    status, _, again = shop.client.request("POST", "/api/v1/orders/T30001/close")
    assert status == 409 and again["error"]["code"] == "invalid_state"


def test_closing_a_paid_order_answers_409_with_the_paid_order(shop):
    _, _, order = _create(shop, out_trade_no="T30002", product="wechat.native")
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])  # callback may lag
    status, _, answer = shop.client.request("POST", "/api/v1/orders/T30002/close")
    assert status == 409 and answer["error"]["code"] == "invalid_state"
    assert answer["order"]["state"] == "succeeded"


def test_a_payment_code_order_succeeds_at_once_or_after_the_payer_confirms(shop):
    status, _, paid = _create(shop, out_trade_no="B40001", product="barcode", auth_code="134567890123456780")
    assert status == 201 and paid["state"] == "succeeded"  # WeChat code ending 0: paid at once
    status, _, waiting = _create(shop, out_trade_no="B40002", product="barcode", auth_code="134567890123456785")
    assert status == 201 and waiting["state"] == "pending"  # ending 5: USERPAYING, then paid
    order = Order.objects.get(out_trade_no="B40002")
    assert order.next_query_at is not None  # the 5-second ladder of design §5 rule 2

    def settled_by_the_sweeper():
        sync_due_orders()  # what beat runs (every minute; the in-process beat in the demo)
        return Order.objects.filter(pk=order.pk, state="succeeded").exists()

    shop.wait_for(settled_by_the_sweeper, timeout=20, message="the payment-code order to settle by query")


def test_reversing_a_paid_payment_code_order_refunds_it(shop):
    _, _, paid = _create(shop, out_trade_no="B50001", product="barcode", auth_code="281234567890123450")
    assert paid["state"] == "succeeded"
    status, _, reversed_ = shop.client.request("POST", "/api/v1/orders/B50001/reverse")
    assert status == 200 and reversed_["state"] == "reversed"


def test_bad_fields_are_named_and_nothing_is_written(shop):
    for body, param in [({"out_trade_no": "x", "amount": 1, "product": "wechat.native", "subject": "s"}, "out_trade_no"),
                        ({"out_trade_no": "T60001", "amount": "100", "product": "wechat.native", "subject": "s"},
                         "amount"),
                        ({"out_trade_no": "T60001", "amount": 1, "product": "wechat.cash", "subject": "s"}, "product"),
                        ({"out_trade_no": "T60001", "amount": 1, "product": "barcode", "subject": "s",
                          "auth_code": "999999999999999999"}, "auth_code"),
                        ({"out_trade_no": "T60001", "amount": 1, "product": "wechat.jsapi", "subject": "s"},
                         "payer.openid")]:  # the key WeChat pays by, not just "payer"
        status, _, answer = shop.client.request("POST", "/api/v1/orders", json=body)
        assert status == 400 and answer["error"]["param"] == param, answer
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_an_orders_refunds_are_listed_newest_first_with_paging_and_a_state_filter(shop):
    _, _, paid = _create(shop, out_trade_no="L60001", product="barcode", auth_code="281234567890123450")
    assert paid["state"] == "succeeded", paid
    numbers = []
    for n in range(3):
        status, _, refund = shop.client.request("POST", "/api/v1/orders/L60001/refunds",
                                                json={"out_refund_no": f"LR{n}", "amount": 10})
        assert status == 201, refund
        numbers.append(refund["out_refund_no"])
    status, _, first_page = shop.client.request("GET", "/api/v1/orders/L60001/refunds?limit=2")
    assert status == 200 and first_page["has_more"] is True
    assert [r["out_refund_no"] for r in first_page["data"]] == ["LR2", "LR1"]
    assert all(r["out_trade_no"] == "L60001" for r in first_page["data"])
    after = first_page["data"][-1]["id"]
    status, _, second_page = shop.client.request("GET", f"/api/v1/orders/L60001/refunds?starting_after={after}")
    assert status == 200 and [r["out_refund_no"] for r in second_page["data"]] == ["LR0"]
    assert second_page["has_more"] is False
    status, _, failed = shop.client.request("GET", "/api/v1/orders/L60001/refunds?state=failed")
    assert status == 200 and failed == {"data": [], "has_more": False}
    status, _, bad = shop.client.request("GET", "/api/v1/orders/L60001/refunds?state=done")
    assert status == 400 and bad["error"]["param"] == "state"
    status, _, missing = shop.client.request("GET", "/api/v1/orders/NOSUCH1/refunds")
    assert status == 404, missing

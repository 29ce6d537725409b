"""A failed order's or refund's `failure.code` is aggpay's own word whichever channel took the trade
(docs/api.md "Test payment codes" and "Refunds"; channels.adapters.errors.NORMALISED_CODES): a till that handles
`insufficient_balance` must not meet WeChat Pay's `NOT_ENOUGH` the day routing sends its codes to WeChat Pay
itself. The channel's own words stay in `failure.message`. Over signed HTTP against the WeChat Pay simulator."""

from __future__ import annotations

import pytest

from trades.models import Refund
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _barcode(shop, out_trade_no, auth_code):
    return shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "barcode", "subject": "tea", "auth_code": auth_code})


@pytest.mark.parametrize(("last_digit", "code"), [("7", "insufficient_balance"), ("8", "auth_code_invalid")])
def test_a_payment_code_wechat_pay_refuses_fails_with_aggpays_code(shop, last_digit, code):
    status, _, body = _barcode(shop, f"FCW0000{last_digit}", "13456789012345678" + last_digit)

    assert status == 502 and body["error"]["code"] == "channel_error", body
    failure = body["order"]["failure"]
    assert failure["code"] == code and failure["message"], failure
    status, _, queried = shop.client.request("GET", f"/api/v1/orders/FCW0000{last_digit}")
    assert queried["state"] == "failed" and queried["failure"]["code"] == code


def test_a_payment_code_the_payer_gives_up_on_in_wechat_fails_as_payment_failed(shop):
    sp_mchid = shop.accounts["wechatpay"].config["sp_mchid"]
    shop.sim("wechatpay", f"/_control/accounts/{sp_mchid}/settings", userpaying_seconds=0)
    status, _, order = _barcode(shop, "FCW00006", "134567890123456786")  # ending 6: confirms, then fails
    assert status == 201 and order["state"] == "pending", order

    def failed():
        status, _, queried = shop.client.request("GET", "/api/v1/orders/FCW00006")
        sync_due_orders()
        return queried if queried["state"] == "failed" else None

    queried = shop.wait_for(failed, timeout=15, message="the payer's failure")
    assert queried["failure"]["code"] == "payment_failed" and queried["failure"]["message"], queried["failure"]


def test_a_refund_wechat_pay_closes_is_recorded_with_channel_error(shop):
    status, _, order = _barcode(shop, "FCW00011", "134567890123456781")  # ending 1: paid at once
    assert status == 201 and order["state"] == "succeeded", order
    status, _, refund = shop.client.request("POST", "/api/v1/orders/FCW00011/refunds",
                                            json={"out_refund_no": "FCR1", "amount": 500})
    assert status == 201 and refund["state"] == "pending", refund
    shop.sim("wechatpay", f"/_control/refunds/{refund['id']}", status="CLOSED",
             sp_mchid=shop.accounts["wechatpay"].config["sp_mchid"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Refund.objects.filter(pk=refund["id"], state="closed").exists(), message="closed")

    status, _, closed = shop.client.request("GET", "/api/v1/refunds/FCR1")
    assert closed["state"] == "closed", closed
    stored = Refund.objects.get(pk=refund["id"])  # what support's pages show (the API gives failure on `failed`)
    assert stored.failure_code == "channel_error" and "CLOSED" in stored.failure_message

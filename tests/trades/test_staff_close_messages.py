"""What the trade page says after "Close order", "Sync now" and a staff refund (issue 5 "Staff pages"). A support
agent's trial: closing an order whose channel did not answer said only "The order is pending." while its audit row
said "left to the expiry sweeper: the channel did not answer"; and messages read "The order is succeeded". Over
signed HTTP against the WeChat Pay simulator."""

from __future__ import annotations

import pytest
from django.urls import reverse

from aggpay.models import AuditLog
from tests.trades.test_staff_workbench import _paid
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _pending(shop, out_trade_no: str) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 800, "product": "wechat.native", "subject": "tea"})
    assert status == 201, order
    return order


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("unanswered", ["close", "query"])
def test_closing_an_order_the_channel_does_not_answer_says_nothing_changed_and_the_sweeper_carries_on(
        shop, client, agent, unanswered):
    order = _pending(shop, f"CLOSE-MSG-{unanswered}")
    path = f"out-trade-no/{order['id']}/close$" if unanswered == "close" else f"out-trade-no/{order['id']}$"
    shop.sim("wechatpay", "/_control/faults", fault="http_500", times=20, match={"path": path})

    response = client.post(reverse("trades:close", args=[order["id"]]), {"reason": "customer left"}, follow=True)

    said = " ".join(_messages(response))
    assert "the channel did not answer" in said and "Nothing changed" in said
    assert "still pending" in said and "expiry sweeper" in said
    assert "The order is pending." not in said
    assert Order.objects.get(pk=order["id"]).state == "pending"
    row = AuditLog.objects.get(action="trades.order.staff_closed", target_id=order["id"])
    assert row.data["close"] == "left to the expiry sweeper: the channel did not answer"


def test_closing_an_order_the_channel_closes_says_it_is_closed(shop, client, agent):
    order = _pending(shop, "CLOSE-MSG-OK")

    response = client.post(reverse("trades:close", args=[order["id"]]), {"reason": "customer left"}, follow=True)

    assert _messages(response) == ["The order is closed."]


def test_sync_now_on_a_paid_order_says_it_has_succeeded(shop, client, agent):
    order = _pending(shop, "SYNC-MSG-1")
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    # The payment's callback is held back: "Sync now" is what finds the order paid.

    response = client.post(reverse("trades:sync", args=[order["id"]]), follow=True)

    said = " ".join(_messages(response))
    assert "the order has succeeded" in said and "is succeeded" not in said
    again = client.post(reverse("trades:sync", args=[order["id"]]), follow=True)
    assert _messages(again) == ["the order has succeeded; only pending orders are synced"]


def test_a_staff_refund_form_sent_again_says_its_refund_has_succeeded(shop, client, agent):
    order = _paid(shop, "REFUND-MSG-1")
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    form = {"amount": "1.00", "reason": "one cup short",
            "form_no": page.split('name="form_no" value="', 1)[1].split('"', 1)[0]}
    client.post(reverse("trades:refund", args=[order.pk]), form)
    shop.sim("wechatpay", "/_control/flush")  # the refund's notice: it succeeded
    refund = shop.wait_for(lambda: Refund.objects.filter(order=order, state="succeeded").first(), message="refunded")

    response = client.post(reverse("trades:refund", args=[order.pk]), form, follow=True)  # a browser resubmit

    said = " ".join(_messages(response))
    assert f"refund {refund.pk} of 1.00 yuan has succeeded. Nothing more was refunded" in said


@pytest.mark.parametrize(("state", "words"), [("succeeded", "has succeeded"), ("failed", "has failed"),
                                              ("pending", "is pending"), ("closed", "is closed"),
                                              ("reversed", "is reversed"), ("refunding", "is refunding")])
def test_a_state_reads_right_after_its_subject(state, words):
    from trades.services.staff import state_words

    assert state_words(state) == words

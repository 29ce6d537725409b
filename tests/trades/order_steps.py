"""Steps the order-ladder tests share: bring the ladder's next rung forward, and read what the order went through."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from trades.models import ChannelCall, Event, Order


def rung_due(order_id: str) -> None:
    """The ladder's next rung is due now (its wait skipped)."""
    Order.objects.filter(pk=order_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))


def call_outcomes(order_id: str, verb: str) -> list[str]:
    """The outcomes of the order's channel calls of ``verb``, oldest first."""
    return list(ChannelCall.objects.filter(order_id=order_id, verb=verb).order_by("id")
                .values_list("outcome", flat=True))


def event_count(order_id: str, event_type: str) -> int:
    return Event.objects.filter(object_id=order_id, type=event_type).count()


NEVER = 600  # seconds: the simulator's payer does not confirm by itself within the test


def confirming_alipay_code(shop, out_trade_no, amount=1500):
    """An Alipay payment code whose payer is still confirming (10003), and whose payment notice will be held:
    ``(order, app_id)``."""
    app_id = shop.accounts["alipay"].config["app_id"]
    shop.sim("alipay", f"/_control/accounts/{app_id}/settings", user_paying_seconds=NEVER)
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "barcode", "subject": "tea",
        "auth_code": "281234567890123456"})  # ending 6: 10003, the payer confirms later
    assert status == 201 and order["state"] == "pending", order
    shop.sim("alipay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=NEVER,
             match={"contains": order["id"]})  # the channel knows the trade by our order id
    return order, app_id

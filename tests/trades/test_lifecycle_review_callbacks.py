"""Payment callbacks that are not a success (design §5 rule 4): "a callback is verified and cross-checked against the
order (channel account, sub merchant, out_trade_no, amount, currency) before anything changes". Alipay notifies
``TRADE_CLOSED`` when an unpaid trade times out (channel-protocols.md B.4): a signed notice that names another
total or another seller than the order's is not about our order as we know it, and must not close it — the merchant
would hear ``order.closed`` about a trade the channel knows otherwise. Only successes were cross-checked."""

from __future__ import annotations

import pytest

from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from trades.models import Event, Order

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _alipay_order(shop, out_trade_no: str) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "alipay.qr", "subject": "tea"})
    assert status == 201, order
    return order


def _closed_notice(shop, simulator_server, order_id: str, **changes) -> None:
    """Alipay signs and sends a TRADE_CLOSED notify about ``order_id`` (the unpaid trade timed out there), with
    ``changes`` to what the notify says of the trade."""
    sim = simulator_server.app.apps["alipay"]
    (trade,) = [t for _, t in sim.store.items(sim.TRADES) if t["out_trade_no"] == order_id]
    trade = {**trade, "notify_url": trade["notify_url"], "status": "TRADE_CLOSED", "gmt_payment": "",
             "trade_no": trade.get("trade_no") or "2026112722001400000000000001", **changes}
    sim._notify(trade)
    shop.sim("alipay", "/_control/flush")


@pytest.mark.parametrize(("out_trade_no", "changes", "named"), [
    ("XCLOSE01", {"total_amount": 1}, "total 1 differs"),
    ("XCLOSE02", {"seller_id": "2088000000009999"}, "sub-merchant"),
])
def test_a_signed_close_notice_that_does_not_match_the_order_is_refused_and_closes_nothing(
        shop, simulator_server, out_trade_no, changes, named):
    order = _alipay_order(shop, out_trade_no)
    _closed_notice(shop, simulator_server, order["id"], **changes)
    rejected = shop.wait_for(lambda: ChannelCallback.objects.filter(account=shop.accounts["alipay"],
                                                                    outcome=CallbackOutcome.REJECTED).first(),
                             message="the notice to be refused")
    assert named in rejected.message and order["id"] in rejected.message, rejected.message
    assert AuditLog.objects.filter(action="security.callback.mismatch", target_id=str(rejected.pk)).exists()
    assert Order.objects.get(pk=order["id"]).state == "pending"
    assert not Event.objects.filter(object_id=order["id"], type="order.closed").exists()


def test_a_matching_close_notice_still_closes_the_order(shop, simulator_server):
    order = _alipay_order(shop, "XCLOSE03")
    _closed_notice(shop, simulator_server, order["id"])
    shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="closed").exists(), message="closed")
    assert Event.objects.filter(object_id=order["id"], type="order.closed").count() == 1
    assert not ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED).exists()

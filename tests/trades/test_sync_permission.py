""""Sync now" on the staff trade page asks the channel about the order at once, past the per-order rate limit: a
staff action that calls the channel, so it needs the order-action permission support holds (trades.refund_order,
as closing an order does), not just the right to look (design §5 rule 11), and it is audited (rule 9). Roles that
may only look — finance, operations — get 403 and the channel hears nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from aggpay.errors import Forbidden
from aggpay.models import AuditLog
from trades.models import ChannelCall, Order
from trades.services.staff import order_sync_by_staff

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _pending(shop, out_trade_no: str) -> Order:
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 800, "product": "wechat.native", "subject": "tea"})
    assert status == 201 and created["state"] == "pending", created
    return Order.objects.get(pk=created["id"])


def _queries(order: Order) -> int:
    return ChannelCall.objects.filter(order=order, verb="query").count()


@pytest.mark.parametrize("role", ["finance", "operations"])
def test_a_role_that_may_only_look_cannot_sync_and_the_channel_is_not_asked(shop, client, staff_member, role):
    order = _pending(shop, f"T-SYNC-{role}")
    viewer = staff_member(role, username=f"{role}.viewer")
    client.force_login(viewer)
    page = client.get(reverse("trades:detail", args=[order.pk]))
    assert page.status_code == 200 and 'id="sync-form"' not in page.content.decode()

    assert client.post(reverse("trades:sync", args=[order.pk])).status_code == 403
    with pytest.raises(Forbidden, match="trades.refund_order"):  # the service checks again, behind the view
        order_sync_by_staff(order_id=order.pk, actor=viewer)
    assert _queries(order) == 0
    assert not AuditLog.objects.filter(action="trades.order.staff_synced").exists()


def test_support_still_syncs_and_is_audited(shop, client, staff_member):
    order = _pending(shop, "T-SYNC-SUPPORT")
    agent = staff_member("support_agent", username="he.support")
    client.force_login(agent)
    assert 'id="sync-form"' in client.get(reverse("trades:detail", args=[order.pk])).content.decode()

    assert client.post(reverse("trades:sync", args=[order.pk])).status_code == 302
    assert _queries(order) == 1
    row = AuditLog.objects.get(action="trades.order.staff_synced", target_id=order.pk)
    assert row.actor == agent and row.data == {"from": "pending", "to": "pending", "sync_state": "ok"}

"""A close the channel did not answer, on support's pages (a support lead's trial of the demo, DEMO-0029: the merchant
asked to close, the bank answered nothing). The order stays pending and its expiry moves to the close's time
(trades.services.orders._close_later), but the pages said only "outcome unknown", and "Expires" silently equalled
"Created". Now the queue's reason and the trade page say who asked to close it and when, "Expires" says why it is
that time, and the timeline says it in words — from the close's audit row: a staff close's (``staff_closed`` with
``close``), and the row a merchant's close through the API writes (``trades.order.close_requested``, actor
``api:<app_id>``; see CLOSE_ASKED in trades.workbench)."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from aggpay.audit import audit_log
from tests.trades.test_staff_workbench import _order
from trades.models import Order

UNKNOWN = reverse("trades:queue", args=["unknown"])


def _why(client, order_id: str) -> str:
    html = client.get(UNKNOWN).content.decode()
    match = re.search(rf'data-why="{order_id}">([^<]*)', html)
    assert match, html
    return match.group(1)


@pytest.mark.usefixtures("quiet_channels")
def test_a_staff_close_the_channel_did_not_answer_is_named_in_the_queue_the_expiry_and_the_timeline(shop, client,
                                                                                                   agent):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CLOSE-ASKED-1", "amount": 4600, "product": "wechat.native", "subject": "Gift box"})
    assert status == 201, order
    shop.sim("wechatpay", "/_control/faults", fault="http_500", times=20,
             match={"path": f"out-trade-no/{order['id']}$"})
    client.post(reverse("trades:close", args=[order["id"]]), {"reason": "customer left the counter"})

    why = _why(client, order["id"])
    assert "close not confirmed: staff (zhou.support) asked to close it at" in why, why
    assert "did not answer whether the payer paid" in why
    page = client.get(reverse("trades:detail", args=[order["id"]])).content.decode()
    expires = re.search(r'id="close-asked">(.*?)</span>', page, re.S).group(1)
    assert "when staff (zhou.support) asked to close it" in expires and "did not answer" in expires
    assert re.search(r'id="queue-reason">.*staff \(zhou\.support\) asked to close it', page)
    assert "Close asked by staff: the channel did not answer — left to the expiry sweeper" in page


@pytest.mark.django_db
def test_a_merchants_close_recorded_by_the_api_is_named_too(tea_house, client, agent):
    order = _order(tea_house, "CLOSE-ASKED-2", sync_state="unknown")
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now())  # the close's time (_close_later)
    with transaction.atomic():
        audit_log(actor="api:app_teahouse0001", action="trades.order.close_requested", target=order,
                  data={"close": "left to the expiry sweeper: the channel did not answer"})
    assert "the merchant (app_teahouse0001) asked to close it at" in _why(client, order.pk)
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert "when the merchant (app_teahouse0001) asked to close it" in page
    assert "Close asked by the merchant" in page and 'data-action="trades.order.close_requested"' in page


@pytest.mark.django_db
def test_an_order_nobody_asked_to_close_keeps_its_reason(tea_house, client, agent):
    order = _order(tea_house, "CLOSE-ASKED-3", sync_state="unknown")
    assert _why(client, order.pk) == "outcome unknown: queried on the ladder"
    assert 'id="close-asked"' not in client.get(reverse("trades:detail", args=[order.pk])).content.decode()


@pytest.mark.usefixtures("quiet_channels")
def test_a_merchants_close_the_channel_did_not_answer_is_recorded_and_named_in_the_queue(shop, client, agent):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CLOSE-ASKED-4", "amount": 4600, "product": "wechat.native", "subject": "Gift box"})
    assert status == 201, order
    shop.sim("wechatpay", "/_control/faults", fault="http_500", times=20,
             match={"path": f"out-trade-no/{order['id']}$"})
    status, _, closed = shop.client.request("POST", "/api/v1/orders/CLOSE-ASKED-4/close")
    assert status == 200 and closed["state"] == "pending", closed

    app_id = shop.app.app_id
    why = _why(client, order["id"])
    assert f"close not confirmed: the merchant ({app_id}) asked to close it at" in why, why
    page = client.get(reverse("trades:detail", args=[order["id"]])).content.decode()
    assert f"when the merchant ({app_id}) asked to close it" in page
    assert 'data-action="trades.order.close_requested"' in page

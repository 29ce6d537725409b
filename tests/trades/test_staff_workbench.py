"""The support/ops trade workbench (issue 5 "Staff pages"): search by any number, the trade's timeline, the queues and
their counts, and who may open what — trades paid on the simulators over signed HTTP, pages through Django's client
signed in as the real role groups."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import requests
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from channels.models import ChannelCallback
from tests.factories import MerchantFactory
from trades.models import Delivery, LatePayment, Order, Refund
from trades.services.events import delivery_attempt, event_emit

SEARCH = "/staff/trades/"


def _paid(shop, out_trade_no: str, amount: int = 1234) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "wechat.native", "subject": "Longjing tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def _api_refund(shop, order: Order, out_refund_no: str, amount: int) -> Refund:
    status, _, refund = shop.client.request("POST", f"/api/v1/orders/{order.out_trade_no}/refunds",
                                            json={"out_refund_no": out_refund_no, "amount": amount})
    assert status == 201, refund
    return Refund.objects.get(pk=refund["id"])


def _listed(response) -> set[str]:
    return set(re.findall(r'data-order="(ord_[A-Za-z0-9]+)"', response.content.decode()))


def test_a_trade_is_found_by_each_of_its_numbers(shop, client, agent):
    order = _paid(shop, "T-SEARCH-1")
    other = _paid(shop, "T-SEARCH-2", amount=500)
    refund = _api_refund(shop, order, "R-SEARCH-1", 234)
    assert refund.channel_refund_no and order.channel_trade_no  # the channel's numbers exist to search by

    for number in (order.pk, order.out_trade_no, order.channel_trade_no, refund.pk, refund.out_refund_no,
                   refund.channel_refund_no):
        response = client.get(SEARCH, {"q": number})
        # One exact hit opens the trade page directly.
        assert response.status_code == 302 and response.url == reverse("trades:detail", args=[order.pk]), number

    by_merchant = client.get(SEARCH, {"q": shop.merchant.merchant_no})
    assert by_merchant.status_code == 200 and _listed(by_merchant) == {order.pk, other.pk}
    nothing = client.get(SEARCH, {"q": "ord_doesnotexist"})
    assert nothing.status_code == 200 and _listed(nothing) == set() and "No trades match" in nothing.content.decode()


def test_the_filters_narrow_the_search(local_midday, shop, client, agent):
    paid = _paid(shop, "T-FILTER-1")
    status, _, pending = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "T-FILTER-2", "amount": 300, "product": "alipay.qr", "subject": "cup"})
    assert status == 201
    merchant_no = shop.merchant.merchant_no

    assert _listed(client.get(SEARCH, {"q": merchant_no, "state": "succeeded"})) == {paid.pk}
    assert _listed(client.get(SEARCH, {"q": merchant_no, "product": "alipay.qr"})) == {pending["id"]}
    assert _listed(client.get(SEARCH, {"channel_account": shop.accounts["wechatpay"].code})) == {paid.pk}
    Order.objects.filter(pk=pending["id"]).update(sync_state="manual")
    assert _listed(client.get(SEARCH, {"sync_state": "manual"})) == {pending["id"]}
    today = timezone.localdate()
    assert _listed(client.get(SEARCH, {"date_from": today.isoformat(), "date_to": today.isoformat()})) == {
        paid.pk, pending["id"]}
    assert _listed(client.get(SEARCH, {"date_to": (today - dt.timedelta(days=1)).isoformat()})) == set()


def test_the_search_is_paginated(shop, client, agent):
    for i in range(27):
        status, _, _ = shop.client.request("POST", "/api/v1/orders", json={
            "out_trade_no": f"T-PAGE-{i:02d}", "amount": 100 + i, "product": "alipay.qr", "subject": "cup"})
        assert status == 201
    first = client.get(SEARCH, {"q": shop.merchant.merchant_no})
    second = client.get(SEARCH, {"q": shop.merchant.merchant_no, "page": 2})
    assert len(_listed(first)) == 25 and len(_listed(second)) == 2
    assert not _listed(first) & _listed(second) and "Page 1 of 2" in first.content.decode()


def test_the_timeline_shows_calls_callbacks_events_attempts_and_refunds(shop, client, agent, callback_receiver):
    order = _paid(shop, "T-TIMELINE-1")
    refund = _api_refund(shop, order, "R-TIMELINE-1", 200)
    delivery = shop.wait_for(lambda: Delivery.objects.filter(event__object_id=order.pk, state="delivered").first(),
                             message="the order.succeeded notification delivered")
    callback = ChannelCallback.objects.get(account=shop.accounts["wechatpay"], outcome="applied",
                                           message__contains=order.pk)

    page = client.get(reverse("trades:detail", args=[order.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-kind="call"' in html and "Channel call: create → pending" in html
    assert "Channel call: refund" in html
    assert f'id="callback-{callback.pk}"' in html and "payment — applied" in html
    assert "Event order.succeeded #" in html
    attempt = delivery.attempt_log.get()
    assert f'data-attempt="{attempt.pk}"' in html and f"{attempt.duration_ms} ms" in html
    assert f'id="refund-{refund.pk}"' in html and "2.00 yuan" in html
    assert "¥12.34" in html  # amounts in yuan (aggpay.money.format_yuan)
    assert 'data-candidate="' + shop.accounts["wechatpay"].code + '"' in html  # the routing record
    # The callback is shown as read — the resource decrypted, then redacted — never its ciphertext.
    ciphertext = json.loads(callback.body)["resource"]["ciphertext"]
    assert ciphertext not in html and re.search(r'"trade_state":\s*"SUCCESS"', html.replace("&quot;", '"'))
    # Oldest first: the create call comes before the callback, which comes before the refund.
    assert html.index("Channel call: create") < html.index(f'id="callback-{callback.pk}"') < html.index(
        f'id="refund-{refund.pk}"')


def test_sync_now_asks_the_channel_and_is_audited(shop, client, agent):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "T-SYNC-1", "amount": 800, "product": "wechat.native", "subject": "tea"})
    # The payment callback is held back a minute, so only our query can learn that the payer paid.
    shop.sim("wechatpay", "/_control/faults", fault="out_of_order_callback", phase="callback", seconds=60,
             match={"contains": created["id"]})
    shop.sim("wechatpay", "/_payer/pay", code_url=created["pay_params"]["code_url"])
    assert Order.objects.get(pk=created["id"]).state == "pending"
    response = client.post(reverse("trades:sync", args=[created["id"]]))
    assert response.status_code == 302
    assert Order.objects.get(pk=created["id"]).state == "succeeded"
    row = AuditLog.objects.get(action="trades.order.staff_synced", target_id=created["id"])
    assert row.actor == agent and row.data == {"from": "pending", "to": "succeeded", "sync_state": "ok"}
    requests.delete(f"{shop.root}/wechatpay/_control/callbacks", timeout=10)  # the held callback goes nowhere


def test_closing_from_staff_needs_a_reason_then_closes_and_audits(shop, client, agent):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "T-CLOSE-1", "amount": 800, "product": "wechat.native", "subject": "tea"})
    client.post(reverse("trades:close", args=[created["id"]]), {"reason": ""})
    assert Order.objects.get(pk=created["id"]).state == "pending"
    client.post(reverse("trades:close", args=[created["id"]]), {"reason": "customer left"})
    assert Order.objects.get(pk=created["id"]).state == "closed"
    row = AuditLog.objects.get(action="trades.order.staff_closed", target_id=created["id"])
    assert row.reason == "customer left" and row.actor == agent


# --- queues ---------------------------------------------------------------------------------------------------
def _order(merchant, no: str, **fields) -> Order:
    return Order.objects.create(merchant=merchant, out_trade_no=no, amount=fields.pop("amount", 1000),
                                product="wechat.native", subject="tea", request_fingerprint="x" * 64,
                                expires_at=timezone.now() + dt.timedelta(hours=2), **fields)


def _exhausted(app) -> Delivery:
    with transaction.atomic():
        event = event_emit(merchant=app.merchant, type="order.succeeded", obj_type="order", obj_id="ord_exh",
                           data={"id": "ord_exh"})
    delivery = event.deliveries.get()
    while delivery.state == "pending":  # every attempt of the contract's ladder, each one due at once
        delivery = delivery_attempt(delivery_id=delivery.pk)
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    return delivery


def _count(html: str, slug: str) -> int:
    return int(re.search(rf'data-queue="{slug}".*?data-count="(\d+)"', html, re.S).group(1))


def test_the_queues_count_what_needs_a_person(tea_house_app, client, agent, callback_receiver):
    merchant = tea_house_app.merchant
    _order(merchant, "U1", sync_state="unknown")
    _order(merchant, "U2", sync_state="manual")
    _order(merchant, "U3")  # known pending: not in any queue
    closed = _order(merchant, "L1", state="closed")
    LatePayment.objects.create(order=closed, channel_trade_no="4200001", amount=1000)
    resolved = _order(merchant, "L2", state="closed")
    LatePayment.objects.create(order=resolved, channel_trade_no="4200002", amount=1000, state="resolved")
    paid = _order(merchant, "A1", state="succeeded", refund_reserved=300)
    Refund.objects.create(order=paid, merchant=merchant, out_refund_no="RA1", amount=300, request_fingerprint="x",
                          requested_by="api:x", abnormal=True)
    callback_receiver.status = 500
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    _exhausted(tea_house_app)

    html = client.get(reverse("trades:queue", args=["unknown"])).content.decode()
    assert {_count(html, s) for s in ("unknown",)} == {2}
    assert (_count(html, "late"), _count(html, "abnormal"), _count(html, "exhausted")) == (1, 1, 1)
    assert set(re.findall(r'data-order="(ord_\w+)"', html)) == set(
        Order.objects.filter(out_trade_no__in=["U1", "U2"]).values_list("pk", flat=True))
    assert f'data-late="{closed.late_payment.pk}"' in client.get(reverse("trades:queue", args=["late"])).content.decode()

    support = client.get("/staff/support/").content.decode()
    home = client.get("/staff/").content.decode()
    for page in (support, home):
        counts = dict(re.findall(r'<a href="/staff/trades/queues/\w+/">([^<]+)</a> <span class="count[^"]*">(\d+)',
                                 page))
        assert counts == {"Unknown outcomes": "2", "Late payments": "1", "Abnormal refunds": "1",
                          "Exhausted deliveries": "1"}, counts


def test_resend_all_exhausted_for_a_merchant_is_audited_and_empties_the_queue(tea_house_app, client, agent,
                                                                              callback_receiver):
    callback_receiver.status = 500
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    delivery = _exhausted(tea_house_app)
    callback_receiver.status = 200
    url = reverse("trades:resend-exhausted", args=[tea_house_app.merchant.merchant_no])
    client.post(url, {"reason": ""})
    assert Delivery.objects.get(pk=delivery.pk).state == "exhausted"  # a reason is required
    client.post(url, {"reason": "receiver fixed"})
    assert Delivery.objects.get(pk=delivery.pk).state in ("pending", "delivered")
    assert AuditLog.objects.get(action="trades.delivery.resent", target_id=str(delivery.pk)).reason == "receiver fixed"
    html = client.get(reverse("trades:queue", args=["exhausted"])).content.decode()
    assert _count(html, "exhausted") == 0 and "No exhausted deliveries" in html


# --- who may open what ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["onboarding_clerk", "risk_officer", "admin"])
def test_roles_without_trade_view_get_403_everywhere(tea_house, client, staff_member, role):
    order = _order(tea_house, "F1", state="succeeded")
    client.force_login(staff_member(role))
    for url in (SEARCH, f"{SEARCH}?q={order.pk}", reverse("trades:detail", args=[order.pk]),
                reverse("trades:queue", args=["unknown"]), reverse("trades:queue", args=["exhausted"])):
        assert client.get(url).status_code == 403, url
    for url in (reverse("trades:refund", args=[order.pk]), reverse("trades:sync", args=[order.pk]),
                reverse("trades:close", args=[order.pk]),
                reverse("trades:resend-exhausted", args=[tea_house.merchant_no])):
        assert client.post(url, {"amount": "1.00", "reason": "x"}).status_code == 403, url
    assert not Refund.objects.exists()


@pytest.mark.parametrize("role", ["finance", "operations"])
def test_finance_and_operations_may_look_but_not_refund(tea_house, client, staff_member, role):
    order = _order(tea_house, "F2", state="succeeded")
    client.force_login(staff_member(role))
    assert client.get(reverse("trades:detail", args=[order.pk])).status_code == 200
    assert 'id="refund-form"' not in client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert client.post(reverse("trades:refund", args=[order.pk]), {"amount": "1.00", "reason": "x"}).status_code == 403
    assert not Refund.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(tea_house, client):
    response = client.get(SEARCH)
    assert response.status_code == 302 and response.url.startswith("/staff/login/")


def test_another_merchants_order_is_not_listed_by_a_merchant_no(tea_house, client, agent):
    mine = _order(tea_house, "M1")
    _order(MerchantFactory(), "M1")
    assert _listed(client.get(SEARCH, {"q": tea_house.merchant_no})) == {mine.pk}


def test_support_refunds_a_late_payment_from_its_queue(shop, simulator_server, settings, client, agent):
    from tests.trades.test_faults import _notify_success

    settings.AGGPAY_LATE_PAYMENT_AUTO_REFUND = False  # queued for support instead (design §5 rule 3)
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "T-LATE-1", "amount": 1500, "product": "wechat.native", "subject": "tea"})
    status, _, closed = shop.client.request("POST", "/api/v1/orders/T-LATE-1/close")
    assert status == 200 and closed["state"] == "closed"
    _notify_success(shop, simulator_server, order["id"])  # the wallet charged the payer anyway
    late = shop.wait_for(lambda: LatePayment.objects.filter(order_id=order["id"], state="open").first(),
                         message="the late payment")

    html = client.get(reverse("trades:queue", args=["late"])).content.decode()
    assert _count(html, "late") == 1 and f'data-late="{late.pk}"' in html and "¥15.00" in html
    client.post(reverse("trades:late-refund", args=[late.pk]), {"reason": "paid after the order was closed"})
    late.refresh_from_db()
    # Refunding until the channel says the money is back (design §5 rule 3); off the queue meanwhile.
    assert late.state in ("refunding", "resolved") and "refund" in late.resolution
    assert AuditLog.objects.get(action="trades.late_payment.staff_refund", target_id=order["id"]).actor == agent
    assert AuditLog.objects.filter(action="trades.late_payment.refund", target_id=order["id"]).first().actor == agent
    assert _count(client.get(reverse("trades:queue", args=["late"])).content.decode(), "late") == 0
    shop.wait_for(lambda: LatePayment.objects.filter(pk=late.pk, state="resolved").exists(),
                  message="the channel's refund notice")  # the simulator settles its refunds after a moment
    detail = client.get(reverse("trades:detail", args=[order["id"]])).content.decode()
    assert "late payment resolved" in detail and "trades.late_payment.refund" in detail


def test_finance_cannot_refund_a_late_payment(tea_house, client, staff_member):
    closed = _order(tea_house, "L9", state="closed")
    late = LatePayment.objects.create(order=closed, channel_trade_no="4200009", amount=1000)
    client.force_login(staff_member("finance"))
    assert client.post(reverse("trades:late-refund", args=[late.pk])).status_code == 403
    late.refresh_from_db()
    assert late.state == "open"


def test_a_delivery_is_resent_from_the_trade_page_with_a_reason(shop, client, agent, callback_receiver):
    order = _paid(shop, "T-RESEND-1")
    delivery = shop.wait_for(lambda: Delivery.objects.filter(event__object_id=order.pk, state="delivered").first(),
                             message="the notification delivered")
    url = reverse("trades:delivery-resend", args=[delivery.pk])
    client.post(url, {"reason": "", "order": order.pk})
    assert not AuditLog.objects.filter(action="trades.delivery.resent").exists()
    response = client.post(url, {"reason": "merchant lost it", "order": order.pk})
    assert response.status_code == 302 and response.url.endswith(f"/staff/trades/{order.pk}/#delivery-{delivery.pk}")
    assert AuditLog.objects.get(action="trades.delivery.resent", target_id=str(delivery.pk)).actor == agent
    shop.wait_for(lambda: delivery.attempt_log.count() == 2, message="the second attempt")
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert page.count('<tr data-attempt="') == 2 and "merchant lost it" in page


def test_the_trade_page_costs_the_same_queries_whatever_its_history(shop, client, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    order = _paid(shop, "T-QUERIES-1")
    url = reverse("trades:detail", args=[order.pk])
    client.get(url)  # warm the session and content types
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for i in range(3):
        _api_refund(shop, order, f"R-QUERIES-{i}", 100)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries) <= 25

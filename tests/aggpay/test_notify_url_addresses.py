"""Notifications go to public addresses only (aggpay/notify_urls.py): a merchant's notify_url must not make aggpay's
workers post inside aggpay's own network. Refused when the URL is given, if it names a private address outright;
refused again where a delivery connects, whatever the name resolved to. AGGPAY_NOTIFY_PRIVATE_ADDRESSES allows them
(the demo, these tests' receivers on 127.0.0.1)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from aggpay.errors import InvalidRequest
from aggpay.notify_urls import address_refused, notify_url_refusal
from merchants.services.apps import merchant_app_notify_url_set
from tests.factories import ChannelAccountFactory
from tests.trades.ledger import paid_order
from trades.models import Delivery, Refund
from trades.services.events import delivery_attempt, event_emit

pytestmark = pytest.mark.django_db

PRIVATE = ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
           "224.0.0.1", "::1", "fe80::1", "fc00::5", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "240.0.0.1"]
PUBLIC = ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1"]


@pytest.fixture
def public_only(settings):
    settings.AGGPAY_NOTIFY_PRIVATE_ADDRESSES = False


@pytest.mark.parametrize("address", PRIVATE)
def test_a_connection_to_a_private_address_is_refused(public_only, address):
    assert address_refused(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_a_connection_to_a_public_address_is_allowed(public_only, address):
    assert not address_refused(address)


def test_the_setting_allows_private_addresses(settings):
    settings.AGGPAY_NOTIFY_PRIVATE_ADDRESSES = True
    assert not address_refused("127.0.0.1") and notify_url_refusal("http://localhost/notify") is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "https://10.0.0.5/admin", "http://169.254.169.254/latest",
                                 "http://[::1]:8080/n", "http://localhost/n", "http://shop.localhost./n",
                                 "http://[::ffff:192.168.0.1]/n"])
def test_a_url_naming_a_private_address_is_refused_saying_why(public_only, url):
    assert "public addresses only" in notify_url_refusal(url)


@pytest.mark.parametrize("url", ["https://shop.example.com/aggpay/notify", "http://1.1.1.1/n",
                                 "https://[2606:4700:4700::1111]/n"])
def test_a_public_address_or_a_name_is_accepted_when_given(public_only, url):
    assert notify_url_refusal(url) is None


def test_an_order_with_a_private_notify_url_is_refused_naming_the_field(public_only, signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/orders", json={
        "out_trade_no": "SSRF0001", "amount": 100, "product": "wechat.native", "subject": "tea",
        "notify_url": "http://127.0.0.1:6379/"})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "notify_url")
    assert "public addresses only" in error["message"]


def test_a_refund_with_a_private_notify_url_is_refused_naming_the_field(public_only, signed_api, tea_house_app):
    paid_order(tea_house_app.merchant, "SSRF0002", amount=1000, paid_at=timezone.now(),
               channel_account=ChannelAccountFactory())
    response = signed_api(tea_house_app).post("/api/v1/orders/SSRF0002/refunds", json={
        "out_refund_no": "R1", "amount": 100, "notify_url": "http://192.168.1.10/notify"})

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "notify_url"
    assert not Refund.objects.exists()


def test_staff_cannot_point_an_app_at_a_private_address(public_only, tea_house_app, clerk_wang):
    with pytest.raises(InvalidRequest) as refused:
        merchant_app_notify_url_set(app_id=tea_house_app.app_id, actor=clerk_wang,
                                    notify_url="http://10.0.0.8/notify")

    assert refused.value.param == "notify_url"
    tea_house_app.refresh_from_db()
    assert tea_house_app.notify_url != "http://10.0.0.8/notify"


def test_a_delivery_whose_connection_reaches_a_private_address_is_not_sent(settings, tea_house_app,
                                                                           callback_receiver):
    # The URL was accepted (a name that resolved elsewhere then; here, allowed when it was set); by the time the
    # delivery connects it leads to a private address: nothing is posted, the attempt says why, the ladder goes on.
    tea_house_app.notify_url = callback_receiver.url
    tea_house_app.save()
    with transaction.atomic():
        event = event_emit(merchant=tea_house_app.merchant, type="order.succeeded", obj_type="order",
                           obj_id="ord_ssrf", data={"id": "ord_ssrf"})
    settings.AGGPAY_NOTIFY_PRIVATE_ADDRESSES = False

    delivery = delivery_attempt(delivery_id=event.deliveries.get().pk)

    assert callback_receiver.requests == []
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None and "public addresses only" in attempt.error
    assert delivery.state == "pending" and delivery.next_attempt_at is not None
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1

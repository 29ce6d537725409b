"""Support narrows the trade search by product from a list of the API's products (issue 5 "Staff pages": search
trades). It was free text matched exactly: "WeChat.native" or "wechat" found nothing and said nothing, so an
agent read "no such trades". A value that is not a product is now an error naming the field."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from trades.models import Order
from trades.products import API_PRODUCTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def native_order(tea_house_app):
    return Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-PRODUCT-1",
                                amount=1000, product="wechat.native", channel_product="wechat.native", subject="tea",
                                request_fingerprint="x" * 64, expires_at=timezone.now() + dt.timedelta(hours=2))


def test_the_product_filter_offers_every_product_of_the_api(client, agent):
    html = client.get(reverse("trades:search")).content.decode()
    for product in API_PRODUCTS:
        assert f'<option value="{product}">{product}</option>' in html


def test_it_lists_the_trades_of_the_product_chosen(client, agent, native_order):
    html = client.get(reverse("trades:search"), {"product": "wechat.native"}).content.decode()
    assert "T-PRODUCT-1" in html and 'id="result-count">1 trade<' in html


@pytest.mark.parametrize("typed", ["WeChat.native", "wechat"])
def test_a_product_that_is_not_one_is_refused_naming_the_field_not_answered_with_no_trades(client, agent,
                                                                                          native_order, typed):
    html = client.get(reverse("trades:search"), {"product": typed}).content.decode()
    assert 'id="result-count"' not in html  # no list that reads "0 trades"
    assert "form-errors" in html and "product" in html and "Select a valid choice" in html

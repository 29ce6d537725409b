"""The admin's event and delivery pages link the merchant and its app only for who may open them.

Support and finance read events and deliveries (aggpay/roles.py) but not merchants: Django linked the read-only
merchant and app fields anyway, and the link ended in a 403 (found by tests/aggpay/test_staff_crawl.py)."""

from __future__ import annotations

import pytest
from django.db import transaction

from trades.services.events import event_emit

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(tea_house_app):
    with transaction.atomic():
        event = event_emit(merchant=tea_house_app.merchant, type="order.succeeded", obj_type="order",
                           obj_id="ord_links", data={"id": "ord_links"})
    return event.deliveries.get()


def _pages(delivery):
    return (f"/admin/trades/event/{delivery.event.pk}/change/", f"/admin/trades/delivery/{delivery.pk}/change/")


@pytest.mark.parametrize("role", ["support_agent", "finance"])
def test_it_shows_the_merchant_and_app_as_text_to_a_role_that_cannot_open_them(client, staff_member, delivery, role):
    client.force_login(staff_member(role))
    app = delivery.app
    for page in _pages(delivery):
        html = client.get(page).content.decode()
        assert str(app) in html, page
        assert "/admin/merchants/merchantapp/" not in html and "/admin/merchants/merchant/" not in html, page
    assert str(app.merchant) in client.get(_pages(delivery)[0]).content.decode()


def test_it_still_links_them_for_a_superuser(client, django_user_model, delivery):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 12))
    event_page, delivery_page = (client.get(page).content.decode() for page in _pages(delivery))
    app_link = f'href="/admin/merchants/merchantapp/{delivery.app.pk}/change/"'
    assert f'href="/admin/merchants/merchant/{delivery.app.merchant.pk}/change/"' in event_page
    assert app_link in event_page and app_link in delivery_page

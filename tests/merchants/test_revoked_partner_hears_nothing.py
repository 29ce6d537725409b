"""A partner that risk stopped (``merchant_partner_set(is_partner=False)``, "Stop being a partner") is refused its
onboarding calls from the next one on — and that includes hearing of the merchants it onboarded: no
``merchant.*`` event is written or pushed to it, and its event feed lists none of those it had. Found by a security
trial: a revoked partner still pulled ``merchant.frozen`` with the merchant's whole record (settlement bank, masked
ID, contracts) and had it pushed to its notify URL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from merchants.models import Merchant
from merchants.services.apps import merchant_partner_set
from merchants.services.merchants import merchant_freeze
from tests.factories import UserFactory
from tests.merchants.test_partner_api import create, partner  # noqa: F401 - the partner's signed client (a fixture)
from trades.models import Delivery, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def risk_qian(db):
    user = UserFactory(username="qian.risk")
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="merchants",
        codename__in=("freeze_merchant", "unfreeze_merchant", "designate_partner")))
    return type(user).objects.get(pk=user.pk)


def _onboarded(partner) -> Merchant:  # noqa: F811
    merchant_no = create(partner)["merchant_no"]
    Merchant.objects.filter(merchant_no=merchant_no).update(state="active")
    return Merchant.objects.get(merchant_no=merchant_no)


def test_a_revoked_partner_is_not_told_that_its_merchant_was_frozen(partner, westlake_app, risk_qian):  # noqa: F811
    merchant = _onboarded(partner)
    westlake_app.notify_url = "https://partner.example.com/hooks"
    westlake_app.save()
    merchant_partner_set(merchant_id=westlake_app.merchant_id, actor=risk_qian, is_partner=False,
                         reason="contract with the agency ended")

    merchant_freeze(merchant_id=merchant.pk, actor=risk_qian, reason="channel reported fraud")

    assert not Event.objects.filter(type="merchant.frozen").exists()
    assert not Delivery.objects.filter(app=westlake_app).exclude(event__type="merchant.submitted").exists()


def test_a_revoked_partner_lists_none_of_its_merchants_events(partner, westlake_app, risk_qian):  # noqa: F811
    merchant = _onboarded(partner)
    merchant_freeze(merchant_id=merchant.pk, actor=risk_qian, reason="channel reported fraud")
    assert partner.get("/api/v1/events?limit=100").json()["data"], "a partner lists its merchants' events"

    merchant_partner_set(merchant_id=westlake_app.merchant_id, actor=risk_qian, is_partner=False,
                         reason="contract with the agency ended")

    response = partner.get("/api/v1/events?limit=100")
    assert response.status_code == 200 and response.json()["data"] == [], response.json()

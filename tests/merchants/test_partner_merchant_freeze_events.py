"""A partner hears when risk freezes or unfreezes one of its merchants (``merchant.frozen`` / ``merchant.unfrozen``):
the merchant it onboarded stops taking payments, and the partner, which runs it, learns it from its event feed and
notify URL rather than from the merchant's failing orders. The reason stays risk's (only the state is told)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from merchants.models import Merchant
from merchants.services.merchants import merchant_freeze, merchant_unfreeze
from tests.factories import MerchantFactory, UserFactory
from tests.merchants.test_partner_api import create, partner  # noqa: F401 - the partner's signed client (a fixture)
from trades.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def risk_qian(db):
    user = UserFactory(username="qian.risk")
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="merchants", codename__in=("freeze_merchant", "unfreeze_merchant")))
    return type(user).objects.get(pk=user.pk)


def _pulled(partner, merchant_no: str) -> list[dict]:  # noqa: F811
    events = partner.get("/api/v1/events?limit=100").json()["data"]
    return sorted((e for e in events if e["data"]["object"]["merchant_no"] == merchant_no), key=lambda e: e["sequence"])


def test_the_partner_is_told_when_its_merchant_is_frozen_and_unfrozen(partner, risk_qian):  # noqa: F811
    merchant_no = create(partner)["merchant_no"]
    Merchant.objects.filter(merchant_no=merchant_no).update(state="active")  # onboarded; its contracts elsewhere
    merchant = Merchant.objects.get(merchant_no=merchant_no)

    merchant_freeze(merchant_id=merchant.pk, actor=risk_qian, reason="channel reported fraud (VR-1)")
    frozen = _pulled(partner, merchant_no)
    merchant_unfreeze(merchant_id=merchant.pk, actor=risk_qian, reason="cleared with the channel")
    unfrozen = _pulled(partner, merchant_no)

    assert [e["type"] for e in frozen] == ["merchant.frozen"]
    assert frozen[0]["data"]["object"]["state"] == "frozen"
    assert "fraud" not in str(frozen[0])  # risk's reason is not the partner's to read
    assert [e["type"] for e in unfrozen] == ["merchant.frozen", "merchant.unfrozen"]
    assert unfrozen[-1]["data"]["object"]["state"] == "active"
    assert [e["sequence"] for e in unfrozen] == [1, 2]


def test_a_merchant_no_partner_onboarded_writes_no_merchant_event(risk_qian):
    merchant = MerchantFactory(state="active")

    merchant_freeze(merchant_id=merchant.pk, actor=risk_qian, reason="channel reported fraud")

    assert not Event.objects.filter(type__startswith="merchant.").exists()

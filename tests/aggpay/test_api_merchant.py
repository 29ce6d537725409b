"""GET /api/v1/merchant (merchant-api.md "The merchant")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggpay.api.merchant import MerchantProductOutputSerializer
from aggpay.platform_keys import platform_key
from merchants.services import products
from tests.factories import MerchantAppFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def test_it_returns_the_calling_apps_merchant_and_app_settings(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/merchant")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"  # merchant-api.md "Conventions"
    merchant = tea_house_app.merchant
    assert response.json() == {
        "merchant_no": merchant.merchant_no,
        "legal_name": "Hangzhou Tea House Co., Ltd.",
        "short_name": "Tea House",
        "state": "active",
        "products": [],
        "app": {
            "app_id": "app_teahouse0001",
            "scopes": ["payments"],
            "notify_url": tea_house_app.notify_url,
            "sign_type": "hmac",
            "platform_public_key": None,
        },
    }


def test_it_never_shows_the_secret(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/merchant")
    assert tea_house_app.secret.encode() not in response.content


def test_an_rsa_app_is_shown_the_platform_public_key(signed_api, tea_house_rsa_app, merchant_rsa_keypair):
    response = signed_api(tea_house_rsa_app, private_key_pem=merchant_rsa_keypair[0]).get("/api/v1/merchant")
    app = response.json()["app"]
    assert app["sign_type"] == "rsa"
    assert app["platform_public_key"] == platform_key().public_key_pem
    assert app["platform_public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_another_merchants_app_sees_only_its_own_merchant(signed_api, tea_house_app):
    other = MerchantFactory(short_name="Noodle Bar")
    body = signed_api(MerchantAppFactory(merchant=other)).get("/api/v1/merchant").json()
    assert body["merchant_no"] == other.merchant_no
    assert body["short_name"] == "Noodle Bar"


def test_a_merchant_still_onboarding_can_look_itself_up(signed_api):
    app = MerchantAppFactory(merchant=MerchantFactory(), scopes=["onboarding"])
    response = signed_api(app).get("/api/v1/merchant")
    assert response.status_code == 200
    assert response.json()["state"] == "onboarding"


def test_products_render_their_rate_as_a_decimal_string():
    product = products.AvailableProduct("wechat.native", Decimal("0.006"))
    rendered = MerchantProductOutputSerializer({"product": product.product, "rate": product.rate}).data
    assert rendered == {"product": "wechat.native", "rate": "0.006000"}


def test_without_contracts_no_product_is_available(tea_house):
    assert products.merchant_available_products(tea_house) == []


def test_it_lists_products_of_active_contracts_with_the_rate_routing_would_use(signed_api, tea_house_app):
    from channels.models import ChannelProduct
    from merchants.models import Contract, ContractRate
    from tests.factories import ChannelAccountFactory

    merchant = tea_house_app.merchant
    cheap, dear, off = (ChannelAccountFactory(code=c) for c in ("bank-a", "bank-b", "bank-off"))
    for account, cost, state, rate in ((cheap, "0.0020", "active", "0.0038"), (dear, "0.0023", "active", "0.0045"),
                                       (off, "0.0010", "limited", "0.0030")):
        ChannelProduct.objects.create(account=account, product="wechat.native", cost_rate=Decimal(cost),
                                      max_amount=100_000)
        contract = Contract.objects.create(merchant=merchant, channel_account=account, state=state,
                                           business_code=f"B-{account.code}")
        ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal(rate))
    response = signed_api(tea_house_app).get("/api/v1/merchant")
    assert response.json()["products"] == [{"product": "wechat.native", "rate": "0.003800"}]

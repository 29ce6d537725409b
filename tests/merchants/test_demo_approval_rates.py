"""Approving a merchant on the demo's channels (channels.services.demo): the default merchant rates approval prices
a contract at (merchants.services.contracts ``default_rate``) and the demo's channel costs agree on which products
are offline. They used to disagree about JSAPI and mini programs — the demo priced them as online products (WeChat Pay
ISV cost 0.60%, Alipay ISV 0.55%) while approval gave them the 0.38% offline default — so risk could approve no
merchant asking for one-code-pay (一码付: wechat.jsapi, alipay.jsapi): "0.38% is below WeChat Pay ISV's cost".

When a default rate is still below a cost (a deployment priced otherwise), risk is told who can do what about it."""

from __future__ import annotations

import pytest

from aggpay.errors import InvalidRequest
from channels.models import ChannelProduct
from channels.services.demo import demo_channel_accounts_seed
from channels.services.products import channel_product_set
from merchants.models import ApplicationState, ContractRate, OnboardingApplication
from merchants.services.onboarding import (
    application_approve,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from tests.merchants.records import png, record

pytestmark = pytest.mark.django_db

OFFICIAL_ACCOUNT_APPID = "wx1a2b3c4d5e6f7a8b"
MINI_PROGRAM_APPID = "wx9f8e7d6c5b4a3f2e"
SCENARIOS = [
    {"type": "store", "name": "龙井路店"},
    {"type": "official_account", "name": "西湖茶馆公众号", "appid": OFFICIAL_ACCOUNT_APPID},
    {"type": "mini_program", "name": "西湖茶馆小程序", "appid": MINI_PROGRAM_APPID},
    {"type": "app", "name": "西湖茶馆 App", "appid": "wx0a1b2c3d4e5f6a7b"},
    {"type": "website", "name": "西湖茶馆商城", "url": "https://shop.xihu-tea.example"},
]
DOCUMENTS = ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside", "site_screenshot")


@pytest.fixture
def demo_channels(simulator_server, settings):
    """The demo's four channel accounts with their products and costs, as seed_demo makes them."""
    settings.AGGPAY_SIMULATOR_BASE_URL = simulator_server.base_url
    report = demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
    assert report.skipped == {}


def _onboarded_products() -> list[str]:
    return sorted(set(ChannelProduct.objects.filter(onboards_merchants=True, enabled=True, account__enabled=True)
                      .values_list("product", flat=True)))


def _in_review(clerk, risk, products: list[str]) -> OnboardingApplication:
    application = merchant_onboard_draft(actor=clerk, data=record(requested_products=products, scenarios=SCENARIOS))
    for doc_type in DOCUMENTS:
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor=clerk)
    return application_review_start(application_id=application.pk, actor=risk)


def test_it_approves_a_merchant_asking_for_every_product_the_demo_onboards_at_the_default_rates(
        demo_channels, clerk_wang, risk_zhao):
    products = _onboarded_products()
    assert {"wechat.jsapi", "alipay.jsapi", "wechat.mini", "unionpay.qr"} <= set(products)
    application = _in_review(clerk_wang, risk_zhao, products)

    approved = application_approve(application_id=application.pk, actor=risk_zhao, notes="real tea house")

    assert approved.state == ApplicationState.CONTRACTING
    rates = ContractRate.objects.filter(contract__application=approved).select_related("contract__channel_account")
    contracted = {(r.contract.channel_account.code, r.product): r.rate for r in rates}
    assert ("wechatpay-isv", "wechat.jsapi") in contracted and ("alipay-isv", "alipay.jsapi") in contracted
    assert ("bank-a", "wechat.jsapi") in contracted
    costs = {(o.account.code, o.product): o.cost_rate for o in ChannelProduct.objects.select_related("account")}
    below = {key: (rate, costs[key]) for key, rate in contracted.items() if rate < costs[key]}
    assert below == {}


def test_a_default_rate_below_a_cost_tells_risk_who_can_change_what(demo_channels, clerk_wang, risk_zhao,
                                                                     staff_member):
    """Another deployment's WeChat Pay ISV charges 0.60% for JSAPI: nothing is approved, and the refusal names the
    field, the account's product page where operations changes the cost or stops it onboarding merchants, and the
    return to the clerk — not the merchant's rates page, which has no contract to show before approval."""
    wechat = ChannelProduct.objects.select_related("account").get(account__code="wechatpay-isv",
                                                                 product="wechat.jsapi")
    channel_product_set(account_id=wechat.account_id, product="wechat.jsapi", actor=staff_member("operations"),
                        reason="this deployment's WeChat price list", cost_rate="0.0060")
    application = _in_review(clerk_wang, risk_zhao, ["wechat.jsapi", "wechat.native"])

    with pytest.raises(InvalidRequest) as refused:
        application_approve(application_id=application.pk, actor=risk_zhao, notes="real tea house")

    message = refused.value.message
    assert refused.value.param == "rates.wechat.jsapi"
    assert message.startswith("rates.wechat.jsapi: the default rate 0.38% is below WeChat Pay ISV's cost 0.60%")
    assert "/staff/channels/wechatpay-isv/products/wechat.jsapi/" in message
    assert "Operations can correct that cost" in message and "return the application" in message
    application.refresh_from_db()
    assert application.state == ApplicationState.RISK_REVIEW
    assert not ContractRate.objects.filter(contract__merchant_id=application.merchant_id).exists()

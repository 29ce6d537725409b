"""seed_demo and demo_credentials: the demo data README.md promises, created idempotently through the services."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from aggpay.api.client import AggpayClient
from aggpay.management import demo
from aggpay.models import AuditLog
from aggpay.roles import ROLES
from merchants.models import Merchant, MerchantApp
from trades.models.store_codes import StoreCode

REPO = Path(__file__).resolve().parents[2]


def _seed(*extra: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-channels", *extra, stdout=out)
    return out.getvalue()


def _credentials() -> dict:
    out = io.StringIO()
    call_command("demo_credentials", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_it_creates_one_staff_user_per_role_who_can_log_in():
    _seed()
    for role in ROLES:
        username = demo.DEMO_USERNAMES[role.slug]
        user = authenticate(username=username, password=demo.DEMO_STAFF_PASSWORD)
        assert user is not None, f"{username} cannot log in with the demo password"
        assert user.is_staff
        assert list(user.groups.values_list("name", flat=True)) == [role.slug]


@pytest.mark.django_db
def test_it_creates_the_active_demo_merchant_with_its_fixed_app():
    _seed()
    merchant = Merchant.objects.get(merchant_no=demo.DEMO_MERCHANT_NO)
    assert merchant.state == "active"
    assert merchant.short_name == "Demo Tea House"
    app = MerchantApp.objects.get(app_id=demo.DEMO_APP_ID)
    assert app.merchant == merchant
    assert app.secret == demo.DEMO_APP_SECRET
    assert app.sign_type == "hmac"
    assert app.scopes == ["payments"]
    assert app.notify_url == demo.DEMO_NOTIFY_URL


@pytest.mark.django_db
def test_running_it_again_changes_nothing():
    _seed()
    counts = (get_user_model().objects.count(), Merchant.objects.count(), MerchantApp.objects.count(),
              AuditLog.objects.count())
    output = _seed()
    assert (get_user_model().objects.count(), Merchant.objects.count(), MerchantApp.objects.count(),
            AuditLog.objects.count()) == counts
    assert "created" not in output


@pytest.mark.django_db
def test_every_seeded_row_is_audited_as_the_seed():
    _seed()
    actions = set(AuditLog.objects.filter(actor_label=demo.SEED_ACTOR).values_list("action", flat=True))
    assert {"aggpay.staff_user.created", "merchants.merchant.created", "merchants.merchant.activate",
            "merchants.app.created"} <= actions


@pytest.mark.django_db
def test_it_seeds_one_store_code_of_the_demo_shop_and_credentials_print_its_page():
    # One-code-pay on the demo needs a store and a code; the demo shop had neither (no onboarding record).
    assert _credentials()["store_code"] == {"store_no": "S001", "name": demo.DEMO_STORE_NAME, "url": None,
                                            "seeded": False}
    output = _seed()
    (code,) = StoreCode.objects.filter(merchant__merchant_no=demo.DEMO_MERCHANT_NO, active=True)
    assert code.store.store_no == demo.DEMO_STORE_NO and f"/c/{code.code}" in output
    assert AuditLog.objects.filter(actor_label=demo.SEED_ACTOR, action="storecode.generate").count() == 1

    _seed()

    assert StoreCode.objects.filter(merchant__merchant_no=demo.DEMO_MERCHANT_NO).count() == 1
    assert _credentials()["store_code"]["url"].endswith(f"/c/{code.code}")
    text = io.StringIO()
    call_command("demo_credentials", stdout=text)
    assert f"/c/{code.code}" in text.getvalue()


@pytest.mark.django_db
def test_it_can_leave_out_the_staff_users():
    _seed("--skip-staff")
    assert not get_user_model().objects.exists()
    assert MerchantApp.objects.filter(app_id=demo.DEMO_APP_ID).exists()


@pytest.mark.django_db
def test_demo_credentials_prints_the_logins_and_says_whether_they_are_seeded():
    before = _credentials()
    assert before["app"] == {**before["app"], "app_id": demo.DEMO_APP_ID, "secret": demo.DEMO_APP_SECRET,
                             "seeded": False}
    assert [user["seeded"] for user in before["staff"]] == [False] * len(ROLES)
    _seed()
    after = _credentials()
    assert after["app"]["seeded"] is True
    assert {user["username"]: user["password"] for user in after["staff"]} == {
        demo.DEMO_USERNAMES[role.slug]: demo.DEMO_STAFF_PASSWORD for role in ROLES
    }
    assert all(user["seeded"] for user in after["staff"])
    assert after["staff_login_url"].endswith("/staff/login/")


@pytest.mark.django_db
def test_demo_credentials_has_a_readable_form_too():
    _seed()
    out = io.StringIO()
    call_command("demo_credentials", stdout=out)
    text = out.getvalue()
    assert demo.DEMO_APP_ID in text and demo.DEMO_APP_SECRET in text
    assert "not seeded" not in text


def test_the_readme_states_the_same_demo_credentials():
    readme = (REPO / "README.md").read_text()
    for value in (demo.DEMO_STAFF_PASSWORD, demo.DEMO_APP_ID, demo.DEMO_APP_SECRET, demo.DEMO_MERCHANT_NO):
        assert f"`{value}`" in readme, f"README.md does not state {value!r}"
    for role in ROLES:
        assert f"| `{demo.DEMO_USERNAMES[role.slug]}` |" in readme, f"README.md has no demo login for {role.slug}"


def test_the_readme_names_the_demo_trades_the_seed_makes():
    from aggpay.management.demo_trades import SALES

    readme = (REPO / "README.md").read_text()
    assert f"`{SALES[0].no}` … `{SALES[-1].no}`" in readme


@pytest.mark.django_db
def test_without_channel_accounts_it_makes_no_trades(settings):
    """``--skip-channels`` leaves the merchant without contracts: there is nothing to sell through."""
    from trades.models import Order

    settings.AGGPAY_SIMULATORS = True
    output = _seed()
    assert not Order.objects.exists()
    assert "demo trades" not in output


@pytest.mark.django_db(transaction=True)
def test_the_readme_example_makes_a_signed_call_with_the_seeded_app(live_server):
    _seed("--skip-staff")
    client = AggpayClient(live_server.url, demo.DEMO_APP_ID, secret=demo.DEMO_APP_SECRET)
    status, headers, data = client.request("GET", "/api/v1/merchant")
    assert status == 200
    assert headers["X-Request-Id"]
    assert data["merchant_no"] == demo.DEMO_MERCHANT_NO
    assert data["app"]["app_id"] == demo.DEMO_APP_ID


def test_the_demo_merchant_can_take_payments_on_every_demo_account(db, simulator_server, settings, tea_house_app):
    """The seed gives the demo merchant an active contract per demo account, its sub-merchant real at the
    simulators, so the README's first order works without onboarding."""
    from channels.services.demo import demo_channel_accounts_seed, demo_merchant_contracts_seed
    from merchants.services.products import merchant_available_products
    from trades.services.orders import order_create

    settings.AGGPAY_SIMULATOR_BASE_URL = simulator_server.base_url
    demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
    merchant = tea_house_app.merchant
    seeded = demo_merchant_contracts_seed(merchant=merchant, simulator_root=simulator_server.base_url)
    assert sorted(seeded) == ["alipay-isv", "bank-a", "bank-b", "wechatpay-isv"]
    assert demo_merchant_contracts_seed(merchant=merchant, simulator_root=simulator_server.base_url) == []
    products = {p.product for p in merchant_available_products(merchant)}
    assert {"wechat.native", "alipay.qr", "unionpay.qr"} <= products
    for product in ("wechat.native", "alipay.qr", "unionpay.qr"):
        order, _ = order_create(app=tea_house_app, data={"out_trade_no": f"D{product[:6]}1", "amount": 100,
                                                         "product": product, "subject": "tea"})
        assert order.state == "pending" and order.pay_params.get("code_url"), (product, order.pay_params)

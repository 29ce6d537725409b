"""A clerk issues an RSA app in a real browser: from the merchant page's "API apps" card, pasting the merchant's
public key (merchant_public.pem) into the form, and is shown aggpay's platform public key to give the merchant —
which verifies the live server's answer to the new app's first signed call."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from aggpay.api.client import AggpayClient
from aggpay.platform_keys import platform_key
from merchants.models import MerchantApp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_clerk_issues_an_rsa_app_by_pasting_a_key_and_sees_the_platform_key(
        sign_in, live_server, clerk_wang, tea_house, merchant_rsa_keypair, fresh_platform_key, shots):
    private_pem, public_pem = merchant_rsa_keypair
    page = sign_in(clerk_wang.get_username())
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/staff/merchants/{tea_house.merchant_no}/")

    page.locator("#apps #issue-app").click()
    page.wait_for_url(re.compile(rf"/staff/merchants/{tea_house.merchant_no}/apps/new/$"))
    page.fill("#id_name", "cashier terminals")
    page.check('input[name=sign_type][value="rsa"]')
    page.fill("#id_public_key_pem", public_pem)
    page.fill("#id_notify_url", "https://tea.example.com/aggpay/notify")
    page.screenshot(path=str(shots / "app-issue-rsa.png"), full_page=True)
    page.locator("#issue-app-submit").click()

    app = MerchantApp.objects.get(merchant=tea_house, name="cashier terminals")
    page.wait_for_url(re.compile(rf"/apps/{app.app_id}/$"))
    expect(page.locator(".messages")).to_contain_text(f"App {app.app_id} issued with the merchant's RSA key")
    expect(page.locator("#app-settings")).to_contain_text("AGGPAY-SHA256-RSA2048")
    expect(page.locator("#app-notify-url")).to_have_text("https://tea.example.com/aggpay/notify")
    shown = page.locator("#platform-public-key").text_content()
    assert shown == platform_key().public_key_pem
    expect(page.locator("#download-platform-key")).to_be_visible()
    page.screenshot(path=str(shots / "app-rsa-platform-key.png"), full_page=True)

    # The merchant page's card lists the app and shows the same key.
    page.goto(f"{live_server.url}/staff/merchants/{tea_house.merchant_no}/")
    expect(page.locator(f'#apps tr[data-app="{app.app_id}"]')).to_contain_text("AGGPAY-SHA256-RSA2048")
    assert page.locator("#apps #platform-public-key").text_content() == shown
    page.locator("#apps").screenshot(path=str(shots / "merchant-api-apps-card.png"))

    # The merchant calls with its private key and verifies the answer with the key the clerk was shown.
    client = AggpayClient(live_server.url, app.app_id, private_key_pem=private_pem, platform_public_key_pem=shown)
    status, _, data = client.request("GET", "/api/v1/merchant")
    assert status == 200 and data["app"]["notify_url"] == "https://tea.example.com/aggpay/notify"

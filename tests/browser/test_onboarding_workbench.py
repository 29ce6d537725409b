"""Issue 4 "How it is checked", in a real browser: a clerk creates a merchant with documents through the form and
submits it, a risk officer takes and approves it, and the clerk sees the contracts progress to active — against the
WeChat Pay and Bank A simulators over real HTTP, the bank calling us back on the live server."""

from __future__ import annotations

import re
import struct
import time
import zlib

import pytest
import requests
from playwright.sync_api import expect

from channels.models import ChannelAccount
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants.models import Merchant
from tests.merchants.conftest import offer
from tests.merchants.records import ID_NUMBER, LICENCE_NO

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCUMENTS = ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside")
COLOURS = {"licence": (200, 60, 50), "id_front": (60, 120, 200), "id_back": (80, 160, 220), "bank_card": (240, 180, 40),
           "store_front": (60, 170, 90), "store_inside": (120, 90, 180)}


def picture(rgb: tuple[int, int, int], width: int = 160, height: int = 100) -> bytes:
    """A real PNG (one colour) so the thumbnails render as pictures do."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def channel_accounts(simulator_server, live_server, settings):
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # where Bank A's apply notify comes back to
    root = simulator_server.base_url
    wechat = ChannelAccount.objects.create(
        code="wechatpay-isv", kind="wechatpay", name="WeChat Pay ISV", base_url=f"{root}/wechatpay", enabled=True,
        config=wechat_sim.provision(root, name="h9-browser-wechat"))
    bank = ChannelAccount.objects.create(
        code="bank-a", kind="bank", name="Bank A", base_url=f"{root}/bank", enabled=True,
        config=bank_sim.provision(root, name="h9-browser-bank",
                                  settings={"auto_review": {"delay_seconds": 0, "outcome": "approve"}}))
    offer(wechat, "wechat.native", "0.0038")
    offer(bank, "wechat.native", "0.0020")
    offer(bank, "unionpay.qr", "0.0020")
    return {"root": root, "wechat": wechat, "bank": bank}


def fill_merchant_form(page):
    page.select_option("#id_subject_type", "enterprise")
    for field, value in {
        "legal_name": "杭州西湖茶馆有限公司", "short_name": "西湖茶馆", "mcc": "5814", "industry": "餐饮",
        "service_phone": "0571-88888888", "registered_address": "浙江省杭州市西湖区龙井路1号",
        "licence_no": LICENCE_NO, "licence_valid_from": "2020-01-01", "legal_person_name": "张三",
        "legal_person_id_number": ID_NUMBER, "legal_person_id_valid_from": "2015-05-01",
        "legal_person_id_valid_until": "2035-05-01", "contact_name": "李四", "contact_phone": "13800138000",
        "contact_email": "li.si@example.com",
        "scenarios-0-name": "龙井路店", "stores-0-store_no": "S001", "stores-0-name": "龙井路店",
        "stores-0-area_code": "330106", "stores-0-address": "龙井路1号",
        "settlement_account-bank_name": "招商银行", "settlement_account-bank_branch": "杭州西湖支行",
        "settlement_account-account_number": "571234567890123",
        "settlement_account-account_holder": "杭州西湖茶馆有限公司",
    }.items():
        page.fill(f"#id_{field}", value)
    page.check('input[name=requested_products][value="wechat.native"]')
    page.check('input[name=requested_products][value="unionpay.qr"]')
    page.select_option("#id_scenarios-0-type", "store")
    page.select_option("#id_settlement_account-account_type", "corporate")
    for doc_type in DOCUMENTS:
        page.set_input_files(f"#id_doc-{doc_type}", files=[{
            "name": f"{doc_type}.png", "mimeType": "image/png", "buffer": picture(COLOURS[doc_type])}])


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/staff/login/"))


def contract_card(page, code: str):
    return page.locator(f'section.contract-card[data-contract="{code}"]')


def test_a_merchant_goes_from_the_clerks_form_to_active_contracts(sign_in, staff_member, live_server,
                                                                  channel_accounts, shots):
    staff_member("onboarding_clerk", username="wang")
    staff_member("risk_officer", username="zhao")
    page = sign_in("wang")
    page.set_viewport_size({"width": 1440, "height": 900})

    # 1. The clerk creates the merchant with its documents and submits it.
    page.goto(live_server.url + "/staff/onboarding/")
    page.click("#new-merchant")
    fill_merchant_form(page)
    page.screenshot(path=str(shots / "h9-form.png"), full_page=True)
    page.click("#save-merchant")
    page.wait_for_url(re.compile(r"/staff/merchants/M\d+/$"))
    merchant = Merchant.objects.get()
    expect(page.locator("#application-state")).to_have_text("Draft")
    expect(page.locator("#documents figure.doc")).to_have_count(len(DOCUMENTS))
    page.click("#submit-application")
    expect(page.locator("#application-state")).to_have_text("Submitted")
    expect(page.locator(".message.success")).to_contain_text("submitted for risk review")
    page.goto(live_server.url + "/staff/onboarding/")
    expect(page.locator(f'#queue tr[data-merchant="{merchant.merchant_no}"]')).to_have_attribute(
        "data-state", "submitted")
    page.screenshot(path=str(shots / "h9-queue.png"), full_page=True)
    sign_out(page)

    # 2. The risk officer takes it from the review queue and approves it.
    sign_in("zhao")
    page.goto(live_server.url + "/staff/risk/")
    row = page.locator(f'#review-queue tr[data-merchant="{merchant.merchant_no}"]')
    expect(row).to_be_visible()
    page.screenshot(path=str(shots / "h9-review-queue.png"), full_page=True)
    row.locator('[data-action="take"]').click()
    page.wait_for_url(re.compile(r"/staff/merchants/review/\d+/$"))
    expect(page.locator("#application-state")).to_have_text("Risk review")
    expect(page.locator("#documents figure.doc")).to_have_count(len(DOCUMENTS))
    # Every thumbnail loaded through the permission-checked document view and decoded as a picture. The
    # thumbnails load lazily, so each is brought into view and the page is given time to fetch it; a
    # refused or undecodable picture never reaches naturalWidth 160 and the wait fails.
    thumbnails = page.locator("#documents img")
    for index in range(thumbnails.count()):
        thumbnails.nth(index).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#documents img')]"
        ".every(i => i.complete && i.naturalWidth == 160)", timeout=10_000)
    assert ID_NUMBER not in page.content()
    page.screenshot(path=str(shots / "h9-review.png"), full_page=True)
    page.fill("textarea[name=notes]", "Store and licence checked against the photos.")
    page.click("#approve")  # Celery (eager) submits both contracts to the simulators
    page.wait_for_url(live_server.url + "/staff/risk/")
    expect(page.locator(".message.success")).to_contain_text("2 contracts sent to the channels")
    sign_out(page)

    # 3. The clerk follows the contracts: Bank A approves by itself and calls back; WeChat asks for a signature.
    sign_in("wang")
    detail = f"{live_server.url}/staff/merchants/{merchant.merchant_no}/"
    deadline = time.monotonic() + 20
    while True:
        page.goto(detail)
        if contract_card(page, "bank-a").get_attribute("data-state") == "active" or time.monotonic() > deadline:
            break
        requests.post(f"{channel_accounts['root']}/bank/_control/flush", timeout=10)
        time.sleep(0.3)
    expect(contract_card(page, "bank-a")).to_have_attribute("data-state", "active")
    expect(contract_card(page, "bank-a").locator('[data-role="sub-mchid"]')).not_to_have_text("—")
    expect(page.locator("#merchant-state")).to_have_text("Active")

    wechat = merchant.contracts.get(channel_account__code="wechatpay-isv")
    control = f"{channel_accounts['root']}/wechatpay/_control/applications/{wechat.channel_application_id}"
    requests.post(control, json={"action": "approve"}, timeout=5).raise_for_status()  # → to be signed
    card = contract_card(page, "wechatpay-isv")
    card.get_by_role("button", name="Refresh from channel").click()  # htmx swaps the card in place
    expect(contract_card(page, "wechatpay-isv")).to_have_attribute("data-state", "to_be_signed")
    sign = contract_card(page, "wechatpay-isv").locator('[data-role="sign"]')
    expect(sign.locator("svg")).to_be_visible()
    expect(sign.locator('[data-role="sign-url"]')).to_contain_text("/_payer/sign?applyment_id=")
    page.screenshot(path=str(shots / "h9-merchant-signing.png"), full_page=True)

    requests.post(control, json={"action": "approve"}, timeout=5).raise_for_status()  # signed → finished
    contract_card(page, "wechatpay-isv").get_by_role("button", name="Refresh from channel").click()
    expect(contract_card(page, "wechatpay-isv")).to_have_attribute("data-state", "active")
    page.goto(detail)
    timeline = contract_card(page, "wechatpay-isv").locator('[data-role="contract-timeline"]')
    expect(timeline).to_contain_text("to_be_signed → active")

    # 4. The payments app's secret is shown once.
    page.on("dialog", lambda dialog: dialog.accept())
    app = merchant.apps.get()
    page.click(f"#reveal-{app.app_id}")
    expect(page.locator("#app-secret")).to_have_text(app.secret)
    page.goto(detail)
    assert app.secret not in page.content()
    for secret in (ID_NUMBER, "13800138000", "571234567890123"):
        assert secret not in page.content()
    page.screenshot(path=str(shots / "h9-merchant.png"), full_page=True)


def test_the_queues_stay_readable_with_many_merchants(sign_in, staff_member, live_server, shots):
    """A clerk's and a risk officer's day: thirty merchants in every state, filtered and paged in the browser."""
    from merchants.services.onboarding import (
        application_return,
        application_review_start,
        application_submit,
    )
    from tests.merchants.test_workbench_queue import draft

    clerk = staff_member("onboarding_clerk", username="wang")
    risk = staff_member("risk_officer", username="zhao")
    applications = [draft(clerk, n, documents=DOCUMENTS if n % 4 else ("licence",)) for n in range(30)]
    for application in applications[1:20]:
        if application.merchant.documents.count() == len(DOCUMENTS):
            application_submit(application_id=application.pk, actor=clerk)
    for application in applications[5:12]:
        application.refresh_from_db()
        if application.state == "submitted":
            application_review_start(application_id=application.pk, actor=risk)
    for application in applications[5:8]:
        application.refresh_from_db()
        if application.state == "risk_review":
            application_return(application_id=application.pk, actor=risk,
                               reasons=[{"field": "registered_address", "reason": "不一致"}])
    page = sign_in("wang")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server.url + "/staff/onboarding/")
    expect(page.locator('[data-tab="all"] .n')).to_have_text("30")
    expect(page.locator("#queue tbody tr")).to_have_count(25)
    page.screenshot(path=str(shots / "h9-queue-busy.png"), full_page=True)

    page.click('[data-tab="draft"]')
    drafts = page.locator('#queue tr[data-state="draft"]')
    expect(drafts.first).to_be_visible()
    page.locator('#queue thead input[type=checkbox]').check()
    page.click("#bulk-submit")
    expect(page.locator("#bulk-results")).to_be_visible()
    expect(page.locator('#bulk-results tr[data-outcome="failed"]').first).to_contain_text("documents missing")
    page.screenshot(path=str(shots / "h9-bulk-results.png"), full_page=True)

    page.click('[data-tab="action"]')
    expect(page.locator("#returned tbody tr")).to_have_count(3)
    page.screenshot(path=str(shots / "h9-needs-action.png"), full_page=True)
    sign_out(page)

    sign_in("zhao")
    page.goto(live_server.url + "/staff/risk/")
    expect(page.locator("#review-queue tbody tr").first).to_be_visible()
    page.screenshot(path=str(shots / "h9-review-queue-busy.png"), full_page=True)

"""The channel account page in a real browser (channels.views ``account_detail``, templates/channels/
account_detail.html): an operator reads each product's collected amount today against its daily cap (design §7
layer 1) as a bar and a percentage, after real payments on Bank A's simulator; and, on an account whose interface
evaluation is not live, finds the reason instead of the Enable button, follows its link, takes the evaluation live
and enables the account from the evaluation's page (design §1, issue 3; channels.services.accounts
``enable_refusal``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from aggpay.models import AuditLog
from channels.models import CHECKLIST_KEYS, ChannelAccount, ChannelProduct, EvaluationState
from channels.services.accounts import channel_account_create
from channels.services.products import channel_product_set
from tests.browser.laptop import assert_fits_a_laptop
from tests.factories import channel_config
from tests.trades.conftest import shop  # noqa: F401 - the paying shop persona (a fixture)
from tests.trades.failover_flow import create_order
from trades.models import Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAP = 20_000  # fen: 200 yuan a day of UnionPay QR on Bank A


def _paid_at_bank_a(shop, out_trade_no: str, amount: int) -> Order:  # noqa: F811 - the fixture's value
    """A UnionPay QR order (only Bank A offers it to the shop) that the payer pays on the bank simulator's page."""
    status, _, order = create_order(shop, out_trade_no, product="unionpay.qr", amount=amount)
    assert status == 201, order
    code = parse_qs(urlsplit(order["pay_params"]["code_url"]).query)["code"][0]
    shop.sim("bank", "/_payer/pay", code=code)
    shop.sim("bank", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


def test_an_operator_reads_bank_as_collected_amount_today_against_its_daily_cap(
        shop, staff_member, sign_in, live_server, shots):  # noqa: F811
    bank_a = shop.accounts["bank"]
    ChannelProduct.objects.filter(account=bank_a, product="unionpay.qr").update(daily_cap=CAP)
    paid = [_paid_at_bank_a(shop, "CAP-0001", 3_000), _paid_at_bank_a(shop, "CAP-0002", 2_000)]
    assert all(order.channel_account_id == bank_a.pk for order in paid)
    staff_member("operations", username="ops-li")
    page = sign_in("ops-li")

    page.click('nav a[data-section="operations"]')
    page.click('main a[href="/staff/channels/"]')
    page.click(f'main a[href="/staff/channels/{bank_a.code}/"]')

    page.wait_for_url(f"{live_server.url}/staff/channels/{bank_a.code}/")
    capped = page.locator('#products tr[data-product="unionpay.qr"]')
    bar = capped.locator("progress")
    expect(bar).to_have_attribute("max", str(CAP))
    expect(bar).to_have_attribute("value", "5000")
    assert bar.evaluate("el => el.position") == pytest.approx(0.25)  # a quarter of the bar is filled
    expect(capped.locator(".cap-use")).to_contain_text("50.00 · 25%")
    expect(capped).to_contain_text("200.00")  # the cap itself
    # A product without a cap shows what it collected, with no bar to fill.
    uncapped = page.locator('#products tr[data-product="unionpay.barcode"]')
    expect(uncapped).to_contain_text("0.00 today")
    expect(uncapped.locator("progress")).to_have_count(0)
    # Bank A takes traffic although it was never evaluated (it predates the rule): the page says so.
    expect(page.locator("#enabled-without-live-evaluation")).to_contain_text(
        "Takes traffic without a live interface evaluation (none)")
    page.screenshot(path=str(shots / "ops-account-daily-cap.png"), full_page=True)
    assert_fits_a_laptop(page)


@pytest.fixture
def bank_c(db):
    """Bank C, a new bank account set up by operations: created disabled (a new account has no evaluation), its
    UnionPay QR priced and capped, its interface not evaluated yet."""
    account = channel_account_create(actor="test", kind="bank", code="bank-c", name="Bank C",
                                     base_url="http://127.0.0.1:9/bank", config=channel_config("bank"))
    channel_product_set(account_id=account.pk, product="unionpay.qr", actor="test", cost_rate="0.0021",
                        isv_rebate_rate="0", max_amount=5_000_000, daily_cap=50_000_000)
    return account


def test_an_operator_cannot_enable_an_unevaluated_account_until_she_takes_its_evaluation_live(
        bank_c, staff_member, sign_in, live_server, shots):
    staff_member("operations", username="ops-li")
    page = sign_in("ops-li")
    page.goto(f"{live_server.url}/staff/channels/bank-c/")

    refusal = page.locator("#enable-refusal")
    expect(refusal).to_contain_text(
        "Cannot be enabled yet: channel account bank-c has no interface evaluation; start one and take it live first")
    expect(page.get_by_role("button", name="Enable account")).to_have_count(0)
    expect(page.locator('form[action$="/bank-c/enable/"]')).to_have_count(0)
    # Nothing collected yet: the capped product's bar is empty.
    expect(page.locator('#products tr[data-product="unionpay.qr"] .cap-use')).to_contain_text("0.00 · 0%")
    assert_fits_a_laptop(page)

    refusal.get_by_role("link", name="Start an evaluation →").click()
    page.get_by_role("button", name="Start the evaluation").click()
    expect(page.locator(".message.success")).to_have_text("Interface evaluation of bank-c started.")
    for key in CHECKLIST_KEYS:
        row = page.locator(f'tr[data-item="{key}"]')
        row.locator("textarea").fill(f"Bank C's {key}: as its interface document says, checked in joint tests")
        row.locator("select").select_option("4")
    page.get_by_role("button", name="Save checklist").click()
    expect(page.locator(".message.success")).to_have_text("Checklist saved.")
    expect(page.locator("#overall-score")).to_have_text("4.0")

    # Not live yet: the account page still refuses, now saying what is left of the evaluation.
    page.get_by_role("link", name="← Bank C").click()
    expect(page.locator("#enable-refusal")).to_contain_text(
        "the interface evaluation of bank-c is still evaluating; finish its checklist, approve it")
    page.locator("#enable-refusal").get_by_role("link", name="Open the evaluation →").click()

    page.fill('textarea[name="reason"]', "meets our requirements: refunds, bills and T+1 settlement")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".message.success")).to_have_text("Evaluation of bank-c is now approved.")
    expect(page.locator("#enable-now")).to_have_count(0)  # approved is not live
    page.get_by_role("button", name="Start integrating").click()
    expect(page.locator(".message.success")).to_have_text("Evaluation of bank-c is now integrating.")
    page.get_by_role("button", name="Go live").click()
    expect(page.locator(".message.success")).to_have_text("Evaluation of bank-c is now live.")

    offer = page.locator("#enable-now")
    expect(offer).to_contain_text("The evaluation is live; Bank C is still disabled.")
    assert ChannelAccount.objects.get(code="bank-c").enabled is False  # going live does not enable it
    page.screenshot(path=str(shots / "ops-evaluation-live-enable.png"), full_page=True)
    assert_fits_a_laptop(page)
    offer.locator('textarea[name="reason"]').fill("evaluation live; UnionPay QR priced and capped")
    offer.get_by_role("button", name="Enable the account").click()

    page.wait_for_url(f"{live_server.url}/staff/channels/bank-c/")
    expect(page.locator(".message.success")).to_have_text("Channel account bank-c enabled.")
    expect(page.locator("h1 .badge")).to_have_text("enabled")
    expect(page.locator("#enable-refusal")).to_have_count(0)
    expect(page.locator("#enabled-without-live-evaluation")).to_have_count(0)
    account = ChannelAccount.objects.get(code="bank-c")
    assert account.enabled is True
    assert account.evaluations.get().state == EvaluationState.LIVE
    assert AuditLog.objects.filter(action="channels.account.enabled",
                                   reason="evaluation live; UnionPay QR priced and capped").exists()

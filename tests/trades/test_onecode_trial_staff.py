"""Store codes' staff pages after a trial of one-code-pay (issue 5 "One-code-pay"): a retired code's audit row says
why and whose it was — retiring asks for a reason and a confirmation —, the print sheet names the merchant on every
card (the toolbar that names it is not printed, and cut cards of two merchants looked alike), and the sheet shows the
"Generated N codes." the generate form leaves for it."""

from __future__ import annotations

import re

import pytest

from aggpay.models import AuditLog
from merchants.models import Store
from tests.factories import MerchantFactory
from trades.models.store_codes import StoreCode

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk(client, staff_member):
    client.force_login(staff_member("onboarding_clerk"))
    return client


@pytest.fixture
def tea_house():
    merchant = MerchantFactory(short_name="Tea House")
    store = Store.objects.create(merchant=merchant, store_no="S001", name="West Lake branch")
    return merchant, store


def _code(merchant, store, batch="b_trial") -> StoreCode:
    return StoreCode.objects.create(merchant=merchant, store=store, batch=batch)


def test_it_refuses_to_retire_a_code_without_a_reason_and_changes_nothing(clerk, tea_house):
    code = _code(*tea_house)
    for reason in ("", "   "):
        answer = clerk.post(f"/staff/store-codes/{code.pk}/active", {"active": "0", "reason": reason}, follow=True)
        assert answer.status_code == 200
        text = answer.content.decode()
        assert f"Code {code.code} was not retired" in text and "a reason is required" in text
    assert StoreCode.objects.get(pk=code.pk).active
    assert not AuditLog.objects.filter(action="storecode.deactivate").exists()


def test_a_retired_codes_audit_row_says_why_and_names_the_merchant_and_the_store(clerk, tea_house):
    merchant, store = tea_house
    code = _code(merchant, store)

    answer = clerk.post(f"/staff/store-codes/{code.pk}/active", {"active": "0", "reason": "sticker stolen"})

    assert answer.status_code == 302 and not StoreCode.objects.get(pk=code.pk).active
    row = AuditLog.objects.get(action="storecode.deactivate")
    assert row.reason == "sticker stolen"
    assert row.data == {"code": code.code, "merchant_no": merchant.merchant_no, "merchant": "Tea House",
                        "store_no": "S001"}
    # Restoring needs no reason (it puts a sticker back to work), and says whose code it was too.
    clerk.post(f"/staff/store-codes/{code.pk}/active", {"active": "1"})
    assert AuditLog.objects.get(action="storecode.activate").data["merchant_no"] == merchant.merchant_no


def test_the_retire_form_asks_for_a_reason_and_a_confirmation_naming_the_merchant(clerk, tea_house):
    merchant, store = tea_house
    code = _code(merchant, store)
    for url in (f"/staff/store-codes/merchants/{merchant.pk}/", "/staff/store-codes/codes/"):
        page = clerk.get(url).content.decode()
        form = re.search(rf'<form method="post" action="/staff/store-codes/{code.pk}/active"[^>]*>.*?</form>', page,
                         re.S).group(0)
        assert re.search(r'<input type="text" name="reason" required', form)
        confirm = re.search(r"onsubmit=\"return confirm\('([^']*)'\)\"", form).group(1)
        assert code.code in confirm and "Tea House" in confirm and merchant.merchant_no in confirm


def test_the_print_sheet_names_the_merchant_on_every_card(clerk, tea_house):
    merchant, store = tea_house
    other_store = Store.objects.create(merchant=merchant, store_no="S002", name="Lakeside")
    for s in (store, store, other_store):
        _code(merchant, s)

    sheet = clerk.get("/staff/store-codes/batches/b_trial/").content.decode()

    cards = re.findall(r'<div class="card" data-code="[^"]+">(.*?)</div>\s*(?=<div class="card"|</div>)', sheet, re.S)
    assert len(cards) == 3
    for card in cards:
        assert (f'<div class="merchant"><span class="who">Tea House</span><span class="no">{merchant.merchant_no}'
                '</span></div>') in card


def test_the_print_sheet_shows_how_many_codes_were_generated(clerk, tea_house):
    merchant, store = tea_house

    answer = clerk.post(f"/staff/store-codes/merchants/{merchant.pk}/", {"stores": [store.pk], "per_store": "4"},
                        follow=True)

    assert answer.status_code == 200 and answer.redirect_chain[-1][0].startswith("/staff/store-codes/batches/")
    assert re.search(r'<ul class="messages" id="messages"><li class="success">Generated 4 codes\.</li></ul>',
                     answer.content.decode())

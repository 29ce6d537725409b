"""The store codes' print sheet names the merchant on every card, as printed (issue 5 "One-code-pay": "a batch sheet to
print"): the toolbar that names the merchant is not printed, and the cut cards of two merchants looked alike. The
merchant's line fits the card with the longest names, so the QR and the code under it still do, twelve to a page."""

from __future__ import annotations

import re

import pytest

from merchants.models import Store
from tests.factories import MerchantFactory
from trades.models.store_codes import StoreCode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_every_printed_card_names_the_merchant_and_still_holds_the_qr_and_the_code(sign_in, staff_member, live_server,
                                                                                     shots):
    merchant = MerchantFactory(short_name="Hangzhou West Lake Longjing Tea House and Gift Shop, Old Town")
    stores = [Store.objects.create(merchant=merchant, store_no=f"S00{i}",
                                   name=f"West Lake branch {i}, by the Broken Bridge, at the pier")
              for i in (1, 2)]
    StoreCode.objects.bulk_create([StoreCode(merchant=merchant, store=store, batch="b_names")
                                   for store in stores for _ in range(12)])
    staff_member("onboarding_clerk", username="lin.clerk")
    page = sign_in("lin.clerk")
    page.goto(f"{live_server.url}/staff/store-codes/batches/b_names/")
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 718, "height": 1000})  # A4's 190 mm between the margins, at 96 px an inch
    assert not page.locator(".toolbar").is_visible()  # the merchant named only there was lost on paper

    cards = page.locator(".card")
    assert cards.count() == 24
    for i in range(cards.count()):
        card = cards.nth(i)
        assert card.locator(".merchant .who").inner_text() == merchant.short_name
        assert card.locator(".merchant .no").inner_text() == merchant.merchant_no
        assert card.locator(".merchant .no").is_visible()
    # Nothing is cut off (the card hides its overflow): the QR and the last line stay on it, on one line each, and
    # the merchant's number beside the name.
    overflowing = page.evaluate("""() => [...document.querySelectorAll('.card')].filter(card => {
        const box = card.getBoundingClientRect();
        const last = card.lastElementChild.getBoundingClientRect();
        const no = card.querySelector('.merchant .no').getBoundingClientRect();
        return [...card.children].some(child => child.getBoundingClientRect().bottom > box.bottom - 1)
            || last.height > 14 || no.right > box.right - 1 || no.width < 10;
    }).length""")
    assert overflowing == 0
    page.screenshot(path=str(shots / "storecode-sheet-merchant.png"), full_page=True)
    pdf = page.pdf(prefer_css_page_size=True)
    (shots / "storecode-sheet-merchant.pdf").write_bytes(pdf)
    assert re.findall(rb"/Count (\d+)", pdf) == [b"2"]  # still twelve to an A4 page

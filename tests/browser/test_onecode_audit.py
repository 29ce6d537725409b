"""The store codes' print sheet in a real browser, printed to PDF as a clerk would print it (issue 5 "One-code-pay":
"a batch sheet to print")."""

from __future__ import annotations

import re

import pytest

from merchants.models import Store
from tests.factories import MerchantFactory
from trades.models.store_codes import StoreCode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_batch_sheet_prints_twelve_codes_on_each_a4_page(sign_in, staff_member, live_server, shots):
    merchant = MerchantFactory(short_name="Tea House")
    stores = [Store.objects.create(merchant=merchant, store_no=f"S00{i}", name=f"West Lake branch {i}")
              for i in (1, 2)]
    StoreCode.objects.bulk_create([StoreCode(merchant=merchant, store=store, batch="b_print")
                                   for store in stores for _ in range(12)])
    staff_member("onboarding_clerk", username="lin.clerk")
    page = sign_in("lin.clerk")
    page.goto(f"{live_server.url}/staff/store-codes/batches/b_print/")
    assert page.locator(".card").count() == 24
    pdf = page.pdf(prefer_css_page_size=True)  # the sheet's own @page: A4 portrait, 10 mm margins
    (shots / "storecode-sheet.pdf").write_bytes(pdf)
    # The sheet is laid out as 3 × 4 cards per A4 page: 24 codes are two sheets of stickers, not three.
    assert re.findall(rb"/Count (\d+)", pdf) == [b"2"]

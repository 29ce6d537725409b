"""A batch's print sheet (issue 5 "One-code-pay": "a batch sheet to print") holds the codes that take payments:
reprinting a batch must not put a retired code — whose page only says the code is not valid — back on a counter.
The sheet says how many were left off and where they are, to restore one that should be printed again."""

from __future__ import annotations

import re

import pytest

from merchants.models import Store
from tests.factories import MerchantFactory
from trades.models.store_codes import StoreCode

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk(client, staff_member):
    client.force_login(staff_member("onboarding_clerk"))
    return client


@pytest.fixture
def batch():
    merchant = MerchantFactory(short_name="Tea House")
    stores = [Store.objects.create(merchant=merchant, store_no=f"S00{i}", name=f"West Lake branch {i}")
              for i in (1, 2)]
    return StoreCode.objects.bulk_create([StoreCode(merchant=merchant, store=store, batch="b_reprint")
                                          for store in stores for _ in range(3)])


def _cards(sheet: str) -> set[str]:
    return set(re.findall(r'<div class="card" data-code="([^"]+)">', sheet))


def _retire(clerk, code: StoreCode) -> None:
    assert clerk.post(f"/staff/store-codes/{code.pk}/active", {"active": "0", "reason": "reprinted"}).status_code == 302


def test_it_leaves_retired_codes_off_a_batchs_print_sheet_and_says_how_many(clerk, batch):
    retired, kept = batch[:2], batch[2:]
    for code in retired:
        _retire(clerk, code)
    sheet = clerk.get("/staff/store-codes/batches/b_reprint/")
    text = sheet.content.decode()
    assert sheet.status_code == 200
    assert _cards(text) == {c.code for c in kept}  # only stickers that work
    assert "4 codes" in text and 'data-retired="2"' in text and "2 retired codes left off" in text
    where = re.search(r'<p id="retired-left-off"[^>]*>.*?<a href="([^"]+)">', text, re.S).group(1)
    listed = clerk.get(where.replace("&amp;", "&")).content.decode()
    assert set(re.findall(r'<tr data-code="([^"]+)">', listed)) == {c.code for c in retired}  # to restore one


def test_it_says_so_when_every_code_of_a_batch_is_retired_and_offers_nothing_to_print(clerk, batch):
    for code in batch:
        _retire(clerk, code)
    sheet = clerk.get("/staff/store-codes/batches/b_reprint/")
    text = sheet.content.decode()
    assert sheet.status_code == 200 and not _cards(text)
    assert "6 retired codes left off" in text and "Every code in this batch is retired" in text
    assert "window.print()" not in text


def test_it_prints_a_restored_code_again_and_says_nothing_of_retired_codes_when_there_are_none(clerk, batch):
    _retire(clerk, batch[0])
    assert clerk.post(f"/staff/store-codes/{batch[0].pk}/active", {"active": "1"}).status_code == 302
    text = clerk.get("/staff/store-codes/batches/b_reprint/").content.decode()
    assert _cards(text) == {c.code for c in batch} and "retired-left-off" not in text

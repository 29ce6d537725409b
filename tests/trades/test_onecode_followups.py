"""Store codes' staff pages as a workbench (issue 5 "One-code-pay": "ops or clerks generate codes"): a stale or
typed code id is a 404, not a server error; every code of a merchant can be reached (paginated, filtered, counted,
never silently cut at 500); batches are listed newest first with when, which stores and how many codes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from merchants.models import Store
from tests.factories import MerchantFactory
from trades.models.store_codes import StoreCode
from trades.onecode import views_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk(client, staff_member):
    client.force_login(staff_member("onboarding_clerk"))
    return client


@pytest.fixture
def tea_house():
    merchant = MerchantFactory(short_name="Tea House")
    stores = [Store.objects.create(merchant=merchant, store_no=f"S00{i}", name=f"West Lake branch {i}")
              for i in (1, 2)]
    return merchant, stores


def _codes(merchant, store, batch, count, *, active=True):
    return StoreCode.objects.bulk_create([StoreCode(merchant=merchant, store=store, batch=batch, active=active)
                                          for _ in range(count)])


def _listed(html: str) -> list[str]:
    return re.findall(r'<tr data-code="([^"]+)">', html)


# --- a code id that does not exist --------------------------------------------------------------------------------
def test_it_answers_404_not_a_server_error_for_retiring_or_restoring_a_code_that_does_not_exist(clerk):
    for active in ("0", "1"):
        assert clerk.post("/staff/store-codes/987654/active", {"active": active}).status_code == 404
    assert clerk.get("/staff/store-codes/987654.png").status_code == 404
    assert clerk.get("/staff/store-codes/987654.svg").status_code == 404
    assert clerk.get("/staff/store-codes/batches/b_nothing/").status_code == 404


# --- every code, page by page, with counts ------------------------------------------------------------------------
def test_a_merchant_with_more_than_500_codes_has_every_one_listed_page_by_page_with_the_count(clerk, tea_house):
    merchant, (west, east) = tea_house
    made = {c.code for c in _codes(merchant, west, "b_big", 460) + _codes(merchant, east, "b_more", 61)}
    first = clerk.get(f"/staff/store-codes/merchants/{merchant.pk}/").content.decode()
    assert 'data-total="521"' in first and "521 codes · 521 active · 0 retired" in first
    pages = -(-521 // views_staff.CODES_PAGE_SIZE)
    assert f"Page 1 of {pages}" in first and len(_listed(first)) == views_staff.CODES_PAGE_SIZE
    seen = []
    for number in range(1, pages + 1):
        seen += _listed(clerk.get(f"/staff/store-codes/merchants/{merchant.pk}/?page={number}").content.decode())
    assert len(seen) == 521 and set(seen) == made  # nothing cut off, nothing twice


def test_a_merchants_codes_filter_by_store_batch_and_state_with_counts_that_follow(clerk, tea_house):
    merchant, (west, east) = tea_house
    _codes(merchant, west, "b_one", 3)
    _codes(merchant, west, "b_two", 2, active=False)
    east_codes = _codes(merchant, east, "b_two", 4)
    url = f"/staff/store-codes/merchants/{merchant.pk}/"

    by_store = clerk.get(url, {"store": "S002"}).content.decode()
    assert "4 codes · 4 active · 0 retired" in by_store and set(_listed(by_store)) == {c.code for c in east_codes}
    by_batch = clerk.get(url, {"batch": "b_two"}).content.decode()
    assert "6 codes · 4 active · 2 retired" in by_batch and len(_listed(by_batch)) == 6
    retired = clerk.get(url, {"batch": "b_two", "active": "0"}).content.decode()
    assert "6 codes · 4 active · 2 retired · 2 listed" in retired and len(_listed(retired)) == 2
    nothing = clerk.get(url, {"batch": "b_none"}).content.decode()
    assert "0 codes" in nothing and "No code matches." in nothing


def test_retiring_a_code_from_a_filtered_page_goes_back_to_that_page_and_never_off_site(clerk, tea_house):
    merchant, (west, _) = tea_house
    code, other = _codes(merchant, west, "b_one", 2)
    here = f"/staff/store-codes/merchants/{merchant.pk}/?batch=b_one&page=1"
    page = clerk.get(here).content.decode()
    assert f'name="next" value="{here.replace("&", "&amp;")}"' in page
    answer = clerk.post(f"/staff/store-codes/{code.pk}/active", {"active": "0", "reason": "stolen", "next": here})
    assert answer.status_code == 302 and answer["Location"] == here and not StoreCode.objects.get(pk=code.pk).active
    away = clerk.post(f"/staff/store-codes/{other.pk}/active", {"active": "0", "reason": "stolen",
                                                                  "next": "https://evil.example/x"})
    assert away["Location"] == f"/staff/store-codes/merchants/{merchant.pk}/"


def test_the_all_merchants_list_finds_codes_by_merchant_store_batch_or_the_code_itself(clerk, tea_house):
    merchant, (west, _) = tea_house
    ours = _codes(merchant, west, "b_ours", 2)
    other = MerchantFactory(short_name="Noodle Bar")
    theirs = _codes(other, Store.objects.create(merchant=other, store_no="N1", name="Canal street"), "b_theirs", 3)

    everything = clerk.get("/staff/store-codes/codes/").content.decode()
    assert "5 codes" in everything and len(_listed(everything)) == 5
    by_merchant = clerk.get("/staff/store-codes/codes/", {"merchant": other.merchant_no}).content.decode()
    assert set(_listed(by_merchant)) == {c.code for c in theirs}
    by_name = clerk.get("/staff/store-codes/codes/", {"merchant": "tea house"}).content.decode()
    assert set(_listed(by_name)) == {c.code for c in ours}
    by_store = clerk.get("/staff/store-codes/codes/", {"store": "canal"}).content.decode()
    assert set(_listed(by_store)) == {c.code for c in theirs}
    by_code = clerk.get("/staff/store-codes/codes/", {"code": ours[1].code}).content.decode()
    assert _listed(by_code) == [ours[1].code] and "1 code · 1 active" in by_code


def test_the_merchant_search_lists_every_merchant_page_by_page(clerk):
    MerchantFactory.create_batch(views_staff.MERCHANTS_PAGE_SIZE + 3)
    first = clerk.get("/staff/store-codes/").content.decode()
    total = views_staff.MERCHANTS_PAGE_SIZE + 3
    assert f"{total} merchants" in first and "Page 1 of 2" in first
    second = clerk.get("/staff/store-codes/?page=2").content.decode()
    assert len(re.findall(r'href="/staff/store-codes/merchants/\d+/"', second)) == 3


# --- batches -------------------------------------------------------------------------------------------------------
def test_batches_are_listed_newest_first_with_when_which_stores_and_how_many_codes(clerk, tea_house, staff_member):
    merchant, (west, east) = tea_house
    now = timezone.now().replace(microsecond=0)
    # Hex ids in the other order than their dates: the list must follow the dates.
    for batch, stores, count, days_ago in (("b_0000aaaa", [west], 2, 1), ("b_ffff0000", [west, east], 3, 30),
                                           ("b_8888cccc", [east], 1, 7)):
        for store in stores:
            _codes(merchant, store, batch, count)
        StoreCode.objects.filter(batch=batch).update(created_at=now - dt.timedelta(days=days_ago))
    StoreCode.objects.filter(batch="b_8888cccc").update(active=False)

    page = clerk.get(f"/staff/store-codes/merchants/{merchant.pk}/").content.decode()
    assert re.findall(r'<tr data-batch="([^"]+)">', page) == ["b_0000aaaa", "b_8888cccc", "b_ffff0000"]
    row = re.search(r'<tr data-batch="b_ffff0000">(.*?)</tr>', page, re.S).group(1)
    created = timezone.localtime(now - dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    assert created in row and "S001 · West Lake branch 1" in row and "S002 · West Lake branch 2" in row
    assert "<td>6</td>" in row and 'href="/staff/store-codes/batches/b_ffff0000/"' in row
    retired = re.search(r'<tr data-batch="b_8888cccc">(.*?)</tr>', page, re.S).group(1)
    assert "1 (0 active)" in retired and "S002" in retired and "S001" not in retired
    assert "3 batches, newest first" in page

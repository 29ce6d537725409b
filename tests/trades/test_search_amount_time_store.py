"""Phone support finds a trade without a number (a support lead's trial of the demo): "I paid 23.50 at Demo Tea House
about 9:10, the shop says not paid". The trade search had no amount, no time of day and no store: searching the
store's number ``S001``, its name (``西湖店``, ``West Lake``) or the store a till sent (``HZ-WESTLAKE-01``) found
nothing. Now:

- the amount, in yuan as a person types it (``23.5``, ``¥23.50``, ``23.50元``, full-width digits), matches exactly;
- a window of local date-times (from 09:00 to 09:20 takes in the whole of 09:20), a time without a date being today;
- a store by its code, number or name, or the store field of the order, in the search box or the Store filter;
- a range the wrong way round is an error saying so, never "0 trades";
- and none of it costs a query more per trade or store found.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from merchants.models import Store
from tests.factories import MerchantFactory
from tests.trades.test_staff_trade_payer_and_store import _paid, _paid_through, _store_code
from trades.models import Order

pytestmark = pytest.mark.django_db

SEARCH = "/staff/trades/"


def _at(merchant, no: str, hour: int, minute: int, second: int = 0, *, amount: int = 2350, **fields) -> Order:
    """A paid order created today at hh:mm:ss, local time."""
    order = _paid(merchant, no, amount=amount, **fields)
    when = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(hour, minute, second)))
    Order.objects.filter(pk=order.pk).update(created_at=when)
    return Order.objects.get(pk=order.pk)


def _listed(response) -> set[str]:
    assert response.status_code == 200, response.status_code
    assert response.context["page"] is not None, response.content.decode()
    return {o.pk for o in response.context["page"].object_list}


def _refused(response, field: str) -> str:
    """The search refused with an error on ``field``, and no list (no "0 trades")."""
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["page"] is None and 'id="result-count"' not in html, html
    errors = re.search(r'id="search-errors">(.*?)</div>', html, re.S)
    assert errors and f'data-field="{field}"' in errors.group(1), html
    return errors.group(1)


# --- the amount ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("typed", ["23.50", "23.5", "¥23.50", "￥ 23.50", "23.50元", "23.50 yuan", "２３．５０"])
def test_the_amount_is_found_as_a_person_types_it(local_midday, tea_house, client, agent, typed):
    hit = _at(tea_house, "AMT-1", 9, 10, amount=2350)
    _at(tea_house, "AMT-2", 9, 11, amount=2351)
    _at(tea_house, "AMT-3", 9, 12, amount=235)
    assert _listed(client.get(SEARCH, {"amount": typed})) == {hit.pk}


@pytest.mark.parametrize("typed", ["23.505", "twenty", "1e3", "-23.50", "0"])
def test_an_amount_that_is_not_one_is_an_error_naming_it(tea_house, client, agent, typed):
    _at(tea_house, "AMT-4", 9, 10)
    assert "Amount (yuan)" in _refused(client.get(SEARCH, {"amount": typed}), "amount")


# --- the time window -------------------------------------------------------------------------------------------------
def test_a_window_of_local_times_finds_the_trades_made_in_it(local_midday, tea_house, client, agent):
    early = _at(tea_house, "TW-1", 8, 59, 59)
    first = _at(tea_house, "TW-2", 9, 0)
    last = _at(tea_house, "TW-3", 9, 20, 59)  # "to 09:20" takes in the whole minute
    _at(tea_house, "TW-4", 9, 21)
    today = timezone.localdate().isoformat()

    window = {"date_from": today, "time_from": "09:00", "date_to": today, "time_to": "09:20"}
    assert _listed(client.get(SEARCH, window)) == {first.pk, last.pk}
    # A time without a date is today's; a window with an open end runs on.
    assert _listed(client.get(SEARCH, {"time_from": "09:00", "time_to": "09:20"})) == {first.pk, last.pk}
    assert _listed(client.get(SEARCH, {"time_to": "08:59"})) == {early.pk}
    assert len(_listed(client.get(SEARCH, {"time_from": "09:00"}))) == 3
    # Whole days still work as before.
    assert len(_listed(client.get(SEARCH, {"date_from": today, "date_to": today}))) == 4


def test_the_callers_trade_is_found_by_merchant_amount_and_about_when(local_midday, tea_house, client, agent):
    theirs = _at(tea_house, "PHONE-1", 9, 8, 40, amount=2350)
    _at(tea_house, "PHONE-2", 9, 9, amount=1800)  # another payer at the same time
    _at(tea_house, "PHONE-3", 11, 10, amount=2350)  # the same amount later
    _at(MerchantFactory(short_name="Noodle Bar", legal_name="Hangzhou Noodle Bar Co., Ltd."), "PHONE-4", 9, 10, amount=2350)  # another shop
    found = client.get(SEARCH, {"q": "Tea House", "amount": "23.50", "time_from": "09:00", "time_to": "09:20"})
    assert _listed(found) == {theirs.pk}


@pytest.mark.parametrize("window, field", [
    ({"time_from": "09:20", "time_to": "09:00"}, "time_to"),
    ({"date_from": "2026-11-28", "date_to": "2026-11-27"}, "date_to"),
    ({"date_from": "2026-11-28", "time_from": "10:00", "date_to": "2026-11-27"}, "date_to"),
    ({"date_from": "2026-11-28", "time_from": "09:00", "date_to": "2026-11-27", "time_to": "23:00"}, "time_to"),
])
def test_a_window_the_wrong_way_round_is_an_error_not_no_trades(tea_house, client, agent, window, field):
    _at(tea_house, "TW-5", 9, 10)
    assert "is before From" in _refused(client.get(SEARCH, window), field)


# --- the store -----------------------------------------------------------------------------------------------------
@pytest.fixture
def west_lake(tea_house):
    """The demo's shape: store S001 "West Lake branch 西湖店" with a store code, a till order naming S001, a
    one-code-pay order through the code, and the till's barcode orders naming the store as it calls it."""
    code = _store_code(tea_house, store_no="S001", name="West Lake branch 西湖店")
    return {
        "till": _paid(tea_house, "ST-1", store_id="S001", product="wechat.barcode"),
        "code": _paid_through(code, "ST-2"),
        "barcode": _paid(tea_house, "ST-3", store_id="HZ-WESTLAKE-01", terminal_id="POS-02",
                         product="wechat.barcode"),
        "elsewhere": _paid(tea_house, "ST-4", store_id="S002"),
        "store_code": code.code,
    }


@pytest.mark.parametrize("typed", ["S001", "西湖店", "West Lake", "west lake branch"])
def test_a_store_is_found_by_its_number_or_name(tea_house, client, agent, west_lake, typed):
    stranger = MerchantFactory(short_name="Noodle Bar", legal_name="Hangzhou Noodle Bar Co., Ltd.")
    Store.objects.create(merchant=stranger, store_no="S009", name="Airport kiosk")
    _paid(stranger, "ST-5", store_id="S009")
    expected = {west_lake["till"].pk, west_lake["code"].pk}
    assert _listed(client.get(SEARCH, {"q": typed})) == expected
    assert _listed(client.get(SEARCH, {"store": typed})) == expected


def test_the_store_a_till_sent_is_found_and_listed_even_alone(tea_house, client, agent, west_lake):
    response = client.get(SEARCH, {"q": "HZ-WESTLAKE-01"})
    assert _listed(response) == {west_lake["barcode"].pk}  # listed, not opened: a store names many trades
    assert _listed(client.get(SEARCH, {"store": "HZ-WESTLAKE-01"})) == {west_lake["barcode"].pk}
    assert _listed(client.get(SEARCH, {"store": west_lake["store_code"]})) == {west_lake["code"].pk}
    # The store narrows a merchant's trades; a trade's own number still opens it.
    assert _listed(client.get(SEARCH, {"q": tea_house.merchant_no, "store": "西湖店"})) == {
        west_lake["till"].pk, west_lake["code"].pk}
    assert client.get(SEARCH, {"q": "ST-3"}).status_code == 302


def test_a_store_in_another_merchants_name_is_not_taken_for_this_one(tea_house, client, agent, west_lake):
    stranger = MerchantFactory(short_name="Noodle Bar", legal_name="Hangzhou Noodle Bar Co., Ltd.")
    Store.objects.create(merchant=stranger, store_no="S777", name="Lakeside noodles")
    mine_named_like_theirs = _paid(tea_house, "ST-6", store_id="S777")  # the same number, no store of ours
    theirs = _paid(stranger, "ST-7", store_id="S777")
    assert _listed(client.get(SEARCH, {"q": "Lakeside", "state": "succeeded"})) == {theirs.pk}
    assert _listed(client.get(SEARCH, {"q": "S777"})) == {mine_named_like_theirs.pk, theirs.pk}


# --- what it costs ---------------------------------------------------------------------------------------------------
def test_searching_by_store_amount_and_window_costs_a_fixed_few_queries(local_midday, tea_house, client, agent):
    code = _store_code(tea_house, store_no="S001", name="West Lake branch 西湖店")
    orders = {_paid_through(code, "QC-1", amount=2350).pk, _paid(tea_house, "QCT-1", store_id="S001", amount=2350).pk}
    today = timezone.localdate().isoformat()
    client.get(SEARCH, {"q": "nothing-like-it"})  # warm the session

    def counted(params, expected=orders) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert expected <= _listed(client.get(SEARCH, {**params, "state": "succeeded"}))
        return len(queries.captured_queries)

    by_merchant = counted({"q": tea_house.merchant_no})
    by_store = counted({"q": "西湖店"})
    narrowed = counted({"q": "西湖店", "store": "S001", "amount": "23.50", "date_from": today, "time_from": "00:00"})
    for n in range(2, 9):  # more stores called West Lake, each with trades through its code and from its till
        more = _store_code(tea_house, store_no=f"S{n:03d}", name=f"West Lake {n}")
        _paid_through(more, f"QC-{n}", amount=2350)
        _paid(tea_house, f"QCT-{n}", store_id=f"S{n:03d}", amount=2350)
    many = counted({"q": "West Lake", "amount": "23.50"})
    assert by_store == by_merchant  # a store's name costs what a merchant's number does
    assert narrowed == by_store + 1  # the Store filter's own look-up of the stores it names
    assert many == by_store  # however many stores and trades it finds

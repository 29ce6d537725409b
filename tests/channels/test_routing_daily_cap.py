"""Routing holds each channel product's daily cap (design §7 layer 1: eligible only "within its limits"): what an
account collected today (channels.services.volume, counted per local day in Asia/Shanghai) plus the order's amount
must not pass ``ChannelProduct.daily_cap``. Payments are recorded here through the counter's own service, in a
transaction as trades records them; tests/trades/test_daily_cap_volume.py counts real payments on the simulators."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from aggpay.days import day_start
from channels.models import AccountDayVolume, ChannelProduct
from channels.routing import choose
from channels.services.volume import account_volume_add
from merchants.models import Contract, ContractRate
from tests.conftest import STAFF_PASSWORD
from tests.factories import ChannelAccountFactory, MerchantFactory
from trades.onecode.services import oauth_account

# Payments are counted now and read back as today's: on a clock at local noon, never across a midnight.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_midday")]

PRODUCT = "unionpay.qr"


def _contract(merchant, account, *, cost: str, cap: int | None, min_amount: int = 1, max_amount: int = 5_000_000):
    ChannelProduct.objects.create(account=account, product=PRODUCT, cost_rate=Decimal(cost), min_amount=min_amount,
                                  max_amount=max_amount, daily_cap=cap)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state="active",
                                       business_code=f"AGG{account.code}{merchant.pk}", sub_mchid=f"S{account.pk}")
    ContractRate.objects.create(contract=contract, product=PRODUCT, rate=Decimal("0.0038"))
    return contract


def _paid(account, amount: int, *, at: dt.datetime | None = None, product: str = PRODUCT) -> None:
    """A payment collected on ``account``, counted as trades counts one: in the transaction that records it."""
    with transaction.atomic():
        account_volume_add(account_id=account.pk, product=product, amount=amount, paid_at=at or timezone.now())


def _reasons(decision) -> dict[str, str]:
    return {c["account"]: c["reason"] for c in decision.candidates}


@pytest.fixture
def merchant(db):
    return MerchantFactory()


@pytest.fixture
def capped_and_open(merchant):
    """Bank A, the cheaper, capped at ¥10,000 a day; Bank B, dearer, without a cap."""
    bank_a, bank_b = ChannelAccountFactory(code="bank-a"), ChannelAccountFactory(code="bank-b")
    _contract(merchant, bank_a, cost="0.0020", cap=1_000_000)
    _contract(merchant, bank_b, cost="0.0025", cap=None)
    return bank_a, bank_b


def test_it_stops_choosing_a_capped_account_once_the_days_payments_reach_the_cap_and_the_next_one_takes_it(
        merchant, capped_and_open):
    bank_a, _bank_b = capped_and_open
    _paid(bank_a, 995_000)
    assert choose(merchant=merchant, product=PRODUCT, amount=5_000).chosen.account_code == "bank-a"  # exactly fits

    _paid(bank_a, 5_000)  # ¥10,000 collected: the cap

    decision = choose(merchant=merchant, product=PRODUCT, amount=1)
    assert decision.chosen.account_code == "bank-b"
    record = {c["account"]: c for c in decision.as_record()["candidates"]}
    assert record["bank-a"]["eligible"] is False
    assert record["bank-a"]["reason"] == "daily cap reached: 10,000.00 of 10,000.00 yuan paid today"
    assert record["bank-b"]["reason"].startswith("chosen: lowest net cost 0.25%")


def test_an_order_that_would_pass_the_cap_goes_elsewhere_while_a_smaller_one_still_fits(merchant, capped_and_open):
    bank_a, _bank_b = capped_and_open
    _paid(bank_a, 995_000)

    decision = choose(merchant=merchant, product=PRODUCT, amount=5_001)

    assert decision.chosen.account_code == "bank-b"
    assert _reasons(decision)["bank-a"] == "daily cap reached: 9,950.00 of 10,000.00 yuan paid today, 50.00 left"
    assert choose(merchant=merchant, product=PRODUCT, amount=5_000).chosen.account_code == "bank-a"


def test_only_the_capped_product_counts_not_the_accounts_other_products(merchant, capped_and_open):
    bank_a, _bank_b = capped_and_open
    _paid(bank_a, 1_000_000, product="unionpay.barcode")
    assert choose(merchant=merchant, product=PRODUCT, amount=100).chosen.account_code == "bank-a"


def test_with_only_capped_accounts_full_nothing_is_chosen_and_each_record_says_why(merchant):
    bank_a = ChannelAccountFactory(code="bank-a")
    _contract(merchant, bank_a, cost="0.0020", cap=50_000)
    _paid(bank_a, 60_000)  # orders in flight together may pass the cap: only collected money counts

    decision = choose(merchant=merchant, product=PRODUCT, amount=100)

    assert decision.chosen is None
    assert decision.candidates == [{"account": "bank-a", "contract": decision.candidates[0]["contract"],
                                    "eligible": False,
                                    "reason": "daily cap reached: 600.00 of 500.00 yuan paid today"}]


def test_the_next_local_day_starts_at_zero_at_midnight_in_shanghai_not_utc(merchant, capped_and_open):
    bank_a, _bank_b = capped_and_open
    midnight = day_start(timezone.localdate(timezone.now(), timezone.get_default_timezone()))  # 16:00 UTC before
    _paid(bank_a, 1_000_000, at=midnight - dt.timedelta(microseconds=1))  # yesterday, Shanghai time

    assert choose(merchant=merchant, product=PRODUCT, amount=100).chosen.account_code == "bank-a"

    _paid(bank_a, 1_000_000, at=midnight)  # today's first instant: today's cap is full
    assert choose(merchant=merchant, product=PRODUCT, amount=100).chosen.account_code == "bank-b"


def test_payments_are_counted_on_their_local_calendar_day():
    bank_a = ChannelAccountFactory(code="bank-a")
    utc = dt.UTC
    _paid(bank_a, 100, at=dt.datetime(2026, 11, 27, 15, 59, 59, tzinfo=utc))  # 23:59:59 in Shanghai
    _paid(bank_a, 200, at=dt.datetime(2026, 11, 27, 16, 0, 0, tzinfo=utc))  # 00:00:00 on the 28th in Shanghai
    _paid(bank_a, 300, at=dt.datetime(2026, 11, 28, 10, 0, 0, tzinfo=utc))

    rows = AccountDayVolume.objects.filter(account=bank_a).order_by("day")
    assert [(r.day, r.paid_amount, r.paid_count) for r in rows] == [
        (dt.date(2026, 11, 27), 100, 1), (dt.date(2026, 11, 28), 500, 2)]


@pytest.mark.django_db(transaction=True)  # outside any transaction, as a caller that forgot it would be
def test_the_counter_is_added_to_only_inside_the_payments_transaction():
    bank_a = ChannelAccountFactory(code="bank-a")
    with pytest.raises(RuntimeError, match="in the transaction that records the payment"):
        account_volume_add(account_id=bank_a.pk, product=PRODUCT, amount=100, paid_at=timezone.now())
    assert not AccountDayVolume.objects.exists()


def test_without_a_cap_routing_reads_no_volumes_and_with_one_it_reads_them_in_one_more_query(merchant):
    from aggpay.api import credentials

    for i in range(3):
        _contract(merchant, ChannelAccountFactory(code=f"bank-{i}"), cost=f"0.002{i}", cap=None)
    with CaptureQueriesContext(connection) as queries:
        choose(merchant=merchant, product=PRODUCT, amount=100)
    assert len(queries) == 1  # the bench's accounts have no cap: nothing more than before

    capped = ChannelAccountFactory(code="bank-capped")
    _contract(merchant, capped, cost="0.0010", cap=10_000)
    _contract(merchant, ChannelAccountFactory(code="bank-capped-2"), cost="0.0011", cap=10_000)
    with CaptureQueriesContext(connection) as queries:
        choose(merchant=merchant, product=PRODUCT, amount=100)
    assert len(queries) == 2  # the rows, then one read of today's volumes for both capped accounts

    token = credentials.generation_current()
    assert choose(merchant=merchant, product=PRODUCT, amount=100, token=token).chosen.account_code == "bank-capped"
    _paid(capped, 10_000)  # a payment does not change the token: the volumes are read again, never remembered
    with CaptureQueriesContext(connection) as queries:
        decision = choose(merchant=merchant, product=PRODUCT, amount=100, token=token)
    assert len(queries) == 1 and decision.chosen.account_code == "bank-capped-2"


def test_amount_outside_still_means_another_amount_would_be_taken_so_one_code_pay_logs_no_payer_in_at_a_full_account(
        merchant):
    # A store code (no amount yet) asks routing with 1 fen; accounts below their minimum are kept for the payer's
    # login while another amount could go there (trades.onecode.services.oauth_account).
    full = ChannelAccountFactory(code="bank-full")
    room = ChannelAccountFactory(code="bank-room")
    _contract(merchant, full, cost="0.0020", cap=100_000, min_amount=1_000, max_amount=5_000_000)
    _contract(merchant, room, cost="0.0025", cap=100_000, min_amount=1_000, max_amount=2_000_000)
    _paid(full, 99_500)  # ¥5 left, below its ¥10 minimum: no amount fits today
    _paid(room, 99_000)  # ¥10 left: its minimum still fits

    decision = choose(merchant=merchant, product=PRODUCT, amount=1)

    assert decision.chosen is None
    assert _reasons(decision) == {
        "bank-full": "daily cap reached: 995.00 of 1,000.00 yuan paid today, 5.00 left",
        "bank-room": "amount outside 1000–2000000 fen"}
    assert oauth_account(merchant=merchant, wallet="unionpay", amount=None) == room


@pytest.fixture
def ops(client, staff_member):
    staff_member("operations", username="ops-amy")
    assert client.login(username="ops-amy", password=STAFF_PASSWORD)
    return client


def _page(ops, account):
    with CaptureQueriesContext(connection) as queries:
        response = ops.get(reverse("channels:account_detail", args=[account.code]))
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def test_the_account_page_shows_todays_payments_against_each_cap_with_a_bar_in_a_fixed_number_of_queries(
        ops, merchant):
    bank_a = ChannelAccountFactory(code="bank-a")
    _contract(merchant, bank_a, cost="0.0020", cap=1_000_000)
    _paid(bank_a, 995_000)
    _paid(bank_a, 7_000, at=timezone.now() - dt.timedelta(days=1))  # yesterday's: not shown

    html, queries = _page(ops, bank_a)

    assert '<progress max="1000000" value="995000"' in html
    assert "9,950.00 · 99%" in html  # floored: 100% only once the cap is reached

    for product, cap in (("unionpay.barcode", 200_000), ("wechat.native", None), ("alipay.qr", 300_000)):
        ChannelProduct.objects.create(account=bank_a, product=product, cost_rate=Decimal("0.0020"),
                                      max_amount=5_000_000, daily_cap=cap)
        _paid(bank_a, 100_000, product=product)
    html, more = _page(ops, bank_a)
    assert more == queries  # one query for the day's volumes, whatever the number of products
    assert '<progress max="200000" value="100000"' in html and "1,000.00 · 50%" in html
    assert "1,000.00 today" in html  # no cap: the day's amount, no bar
    assert html.count("<progress") == 3

"""Who paid and where, on support's trade pages (issue 5 "Staff pages"; a trial of the demo): the payer id masked but
recognisable, a one-code-pay (一码付) order's store by name with its store code, trades found by store code, and a
Store column on the trade list — the payer id never whole, whoever reads the page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from aggpay.roles import ROLES
from merchants.models import Store
from tests.factories import MerchantFactory
from tests.trades.onecode_flow import (
    UA_WECHAT,
    bridge,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from trades.models import Order
from trades.models.store_codes import StoreCode

SEARCH = "/staff/trades/"
# Two payers of one official account: WeChat openids of one appid share their first characters (§E).
OPENID_A = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
OPENID_B = "oUpF8uMuAJO_M2pxb1Q9zNjWk7Tq"


def _order(merchant, no: str, **fields) -> Order:
    return Order.objects.create(
        merchant=merchant,
        out_trade_no=no,
        amount=fields.pop("amount", 1000),
        product=fields.pop("product", "wechat.jsapi"),
        subject="tea",
        request_fingerprint="x" * 64,
        expires_at=timezone.now() + dt.timedelta(hours=2),
        **fields,
    )


def _paid(merchant, no: str, **fields) -> Order:
    return _order(merchant, no, state="succeeded", paid_at=timezone.now(), **fields)


def _store_code(merchant, *, store_no: str = "S001", name: str = "West Lake branch") -> StoreCode:
    store = Store.objects.create(merchant=merchant, store_no=store_no, name=name)
    return StoreCode.objects.create(merchant=merchant, store=store, batch="b_test")


def _paid_through(code: StoreCode, no: str, openid: str = OPENID_A, **fields) -> Order:
    """An order as trades.onecode.services.onecode_pay makes it: the store's number, the code in the metadata."""
    return _paid(
        code.merchant,
        no,
        payer={"openid": openid},
        store_id=code.store.store_no,
        metadata={"store_code": code.code},
        channel_product="wechat.jsapi",
        **fields,
    )


def _page(client, order: Order) -> str:
    response = client.get(reverse("trades:detail", args=[order.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _listed(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return [o.pk for o in response.context["page"].object_list]


# --- the payer ---------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_it_shows_a_paid_orders_payer_masked_keeping_enough_to_tell_two_payers_apart(
    tea_house, client, agent
):
    first = _paid(tea_house, "P1", payer={"openid": OPENID_A}, wallet_trade_no="4200001234202611280012345678")
    second = _paid(tea_house, "P2", payer={"openid": OPENID_B})

    page = _page(client, first)
    assert f'data-key="openid">oUpF{"*" * 20}eS6o</dd>' in page
    assert OPENID_A not in page
    assert "4200001234202611280012345678" in page  # the wallet's number, as the payer's receipt shows it
    other = _page(client, second)
    assert f"oUpF{'*' * 20}k7Tq" in other and OPENID_B not in other


@pytest.mark.django_db
def test_an_alipay_payer_is_shown_by_its_buyer_id_masked(tea_house, client, agent):
    order = _paid(tea_house, "P3", product="alipay.jsapi", payer={"buyer_id": "2088102146225135"})
    page = _page(client, order)
    assert 'data-key="buyer_id">2088********5135</dd>' in page and "2088102146225135" not in page


@pytest.mark.django_db
def test_a_short_payer_id_keeps_most_of_itself_hidden(tea_house, client, agent):
    order = _paid(tea_house, "P4", product="unionpay.qr", payer={"user_id": "u12345678"})
    page = _page(client, order)
    assert 'data-key="user_id">u1*****78</dd>' in page and "u12345678" not in page


@pytest.mark.django_db
def test_an_order_that_keeps_no_payer_shows_no_payer_line(tea_house, client, agent):
    order = _paid(tea_house, "P5", product="wechat.native")
    assert 'id="payer-id"' not in _page(client, order)


@pytest.mark.django_db
@pytest.mark.parametrize("role", [role.slug for role in ROLES])
def test_no_role_reads_a_payer_id_whole_and_roles_without_trades_view_get_403(
    tea_house, client, staff_member, role
):
    code = _store_code(tea_house)
    order = _paid_through(code, "P6")
    user = staff_member(role)
    client.force_login(user)
    detail = client.get(reverse("trades:detail", args=[order.pk]))
    listed = client.get(SEARCH, {"q": code.code})
    if not user.has_perm("trades.view_order"):
        assert detail.status_code == 403 and listed.status_code == 403
        return
    assert detail.status_code == 200 and listed.status_code == 200
    assert f"oUpF{'*' * 20}eS6o" in detail.content.decode()
    for response in (detail, listed):
        assert OPENID_A not in response.content.decode()


@pytest.mark.django_db
def test_a_superuser_reads_the_payer_id_masked_too(tea_house, client, django_user_model):
    order = _paid(tea_house, "P7", payer={"openid": OPENID_A})
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 20))
    page = _page(client, order)
    assert f"oUpF{'*' * 20}eS6o" in page and OPENID_A not in page


# --- the store ---------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_store_code_order_shows_its_stores_name_and_the_code_without_a_dangling_slash(
    tea_house, client, agent
):
    code = _store_code(tea_house)
    page = _page(client, _paid_through(code, "S1"))
    assert 'id="order-store">West Lake branch <span class="mono muted">S001</span></dd>' in page
    assert f'title="all trades paid through this code">{code.code}</a></dd>' in page
    assert "Store / terminal" not in page and "S001 /" not in page and 'id="order-terminal"' not in page


@pytest.mark.django_db
def test_an_order_from_the_api_with_a_store_and_terminal_names_the_merchants_store(tea_house, client, agent):
    Store.objects.create(merchant=tea_house, store_no="S009", name="Airport kiosk")
    page = _page(
        client, _paid(tea_house, "S2", product="wechat.barcode", store_id="S009", terminal_id="T-17")
    )
    assert 'id="order-store">Airport kiosk <span class="mono muted">S009</span></dd>' in page
    assert 'id="order-terminal">T-17</dd>' in page and 'id="store-code"' not in page


@pytest.mark.django_db
def test_a_store_code_of_another_merchant_in_the_metadata_is_not_taken_for_its_store(
    tea_house, client, agent
):
    code = _store_code(tea_house)
    stranger = MerchantFactory(short_name="Noodle Bar")
    theirs = _paid(stranger, "S3", metadata={"store_code": code.code})
    page = _page(client, theirs)
    assert "West Lake branch" not in page and "not one of this merchant's store codes" in page
    mine = _paid_through(code, "S3")
    assert _listed(client.get(SEARCH, {"q": code.code})) == [mine.pk]


# --- search and the list -----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_searching_a_store_code_lists_the_trades_paid_through_it_with_their_store(tea_house, client, agent):
    code = _store_code(tea_house)
    other = _store_code(tea_house, store_no="S002", name="Lakeside branch")
    one = _paid_through(code, "L1")
    two = _paid_through(code, "L2", openid=OPENID_B)
    _paid_through(other, "L3")
    _paid(tea_house, "L4", store_id="S001")  # the same store, not through the code

    response = client.get(SEARCH, {"q": code.code})
    assert set(_listed(response)) == {one.pk, two.pk}
    html = response.content.decode()
    assert "<th>Store</th>" in html
    row = html.split(f'<td data-store="{one.pk}">', 1)[1].split("</td>", 1)[0]
    assert "West Lake branch" in row and "S001" in row and code.code in row


@pytest.mark.django_db
def test_a_store_code_with_one_trade_lists_it_rather_than_opening_it(tea_house, client, agent):
    code = _store_code(tea_house)
    order = _paid_through(code, "L5")
    response = client.get(SEARCH, {"q": code.code})
    assert _listed(response) == [order.pk]
    # A trade's own number still opens it.
    assert client.get(SEARCH, {"q": order.out_trade_no}).status_code == 302


@pytest.mark.django_db
def test_a_store_code_search_costs_what_a_trade_number_does_and_the_store_column_a_fixed_few(
    tea_house, client, agent
):
    code = _store_code(tea_house)
    order = _paid_through(code, "Q1")
    client.get(SEARCH, {"q": "nothing-like-it"})  # warm the session
    with CaptureQueriesContext(connection) as by_number:
        assert _listed(client.get(SEARCH, {"q": order.out_trade_no, "state": "succeeded"})) == [order.pk]
    with CaptureQueriesContext(connection) as by_code:
        assert _listed(client.get(SEARCH, {"q": code.code, "state": "succeeded"})) == [order.pk]
    for n in range(2, 8):  # more trades, stores and codes on the page, some through a code, some from the API
        _paid_through(_store_code(tea_house, store_no=f"S{n:03d}", name=f"Branch {n}"), f"Q{n}")
        _paid(tea_house, f"QA{n}", store_id=f"S{n:03d}")
    with CaptureQueriesContext(connection) as many:
        assert len(_listed(client.get(SEARCH, {"q": tea_house.merchant_no}))) == 13
    # The store code is answered inside the numbers' own query; a page's stores are read in one query for the
    # codes and one for the stores named by number, however many.
    assert len(by_code.captured_queries) == len(by_number.captured_queries)
    assert len(many.captured_queries) == len(by_number.captured_queries) + 1


# --- through the payer's phone -----------------------------------------------------------------------------------
def test_support_finds_a_store_code_payment_by_its_code_and_sees_the_store_and_the_payer_masked(
    shop, live_server, client, agent
):
    code = store_code_for(shop, store_no="S001", name="West Lake branch")
    payer = phone(UA_WECHAT)
    pay_page = enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "12.34")
    params = bridge(pay_page.text)
    shop.sim("wechatpay", "/_payer/pay", prepay_id=params["prepay_id"], jsapi=params["jsapi"])
    shop.sim("wechatpay", "/_control/flush")
    order = shop.wait_for(
        lambda: Order.objects.filter(merchant=shop.merchant, state="succeeded").first(), message="paid"
    )
    openid = order.payer["openid"]

    listed = client.get(SEARCH, {"q": code.code})
    assert _listed(listed) == [order.pk]
    row = listed.content.decode().split(f'<td data-store="{order.pk}">', 1)[1].split("</td>", 1)[0]
    assert "West Lake branch" in row and code.code in row

    page = _page(client, order)  # its timeline holds the channel calls and the callback, redacted
    keep = min(4, len(openid) // 4)
    assert f'data-key="openid">{openid[:keep]}{"*" * (len(openid) - 2 * keep)}{openid[-keep:]}</dd>' in page
    assert openid not in page and openid not in listed.content.decode()
    assert 'id="order-store">West Lake branch <span class="mono muted">S001</span></dd>' in page
    assert code.code in page and "S001 /" not in page
    assert order.wallet_trade_no and order.wallet_trade_no in page

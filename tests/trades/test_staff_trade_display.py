"""What the support agent reads on the trade pages (issue 5 "Staff pages"): trades found by the merchant's name,
sync states and routing candidates in words, and the refunded amount without a misleading "reserved"."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from merchants.models import Contract
from tests.factories import ChannelAccountFactory, MerchantFactory
from trades import workbench
from trades.models import Order

pytestmark = pytest.mark.django_db

SEARCH = "/staff/trades/"


def _order(merchant, no: str, **fields) -> Order:
    return Order.objects.create(merchant=merchant, out_trade_no=no, amount=fields.pop("amount", 1000),
                                product="wechat.native", subject="tea", request_fingerprint="x" * 64,
                                expires_at=timezone.now() + dt.timedelta(hours=2), **fields)


def _listed(response) -> set[str]:
    return {o.pk for o in response.context["page"].object_list}


def test_a_merchants_trades_are_found_by_part_of_its_legal_or_short_name_in_any_case(tea_house, client, agent):
    mine = {_order(tea_house, "N1").pk, _order(tea_house, "N2").pk}
    noodles = MerchantFactory(short_name="Noodle Bar", legal_name="西湖面馆有限公司")
    theirs = {_order(noodles, "N1").pk, _order(noodles, "N2").pk}

    assert _listed(client.get(SEARCH, {"q": "tea house"})) == mine  # short name, other case
    assert _listed(client.get(SEARCH, {"q": "HANGZHOU TEA"})) == mine  # legal name
    assert _listed(client.get(SEARCH, {"q": "面馆"})) == theirs
    assert _listed(client.get(SEARCH, {"q": "x"})) == set()  # one letter names nobody


def test_a_name_search_reads_a_bounded_number_of_merchants_with_a_fixed_number_of_queries(client, agent):
    few = MerchantFactory(short_name="Lone Kiosk")
    _order(few, "K1")
    _order(few, "K2")
    with CaptureQueriesContext(connection) as one_merchant:
        client.get(SEARCH, {"q": "kiosk"})
    chains = [MerchantFactory(short_name=f"Chain Store {n}") for n in range(workbench.MERCHANT_NAME_MATCHES + 5)]
    for merchant in chains:
        _order(merchant, "C1")
    with CaptureQueriesContext(connection) as many_merchants:
        response = client.get(SEARCH, {"q": "chain store"})
    assert response.context["page"].paginator.count == workbench.MERCHANT_NAME_MATCHES
    assert len(many_merchants.captured_queries) == len(one_merchant.captured_queries)


def test_the_trade_list_names_sync_states_in_words(tea_house, client, agent):
    _order(tea_house, "S1", sync_state="manual")
    _order(tea_house, "S2", sync_state="unknown")
    html = client.get(SEARCH, {"q": tea_house.merchant_no}).content.decode()
    assert "Unknown — needs a person" in html and "Unknown — being queried" in html
    assert ">manual<" not in html and ">unknown<" not in html


def test_the_refund_line_mentions_money_in_progress_only_while_a_refund_is_unfinished(tea_house, client, agent):
    order = _order(tea_house, "R1", state="succeeded", amount=1500, refunded_amount=500, refund_reserved=500)
    url = reverse("trades:detail", args=[order.pk])
    html = client.get(url).content.decode()
    assert "¥5.00 · refundable ¥10.00" in html and "in progress" not in html and "reserved" not in html

    Order.objects.filter(pk=order.pk).update(refund_reserved=800)
    assert "¥5.00 · in progress ¥3.00 · refundable ¥7.00" in client.get(url).content.decode()


def test_the_routing_table_names_each_candidates_account_and_contract(tea_house, client, agent):
    wechat = ChannelAccountFactory(kind="wechatpay", code="wx-main", name="WeChat Pay ISV")
    bank = ChannelAccountFactory(kind="bank", code="bank-x", name="Bank X")
    chosen = Contract.objects.create(merchant=tea_house, channel_account=wechat, state="active",
                                     business_code="BWX1", sub_mchid="1900000109")
    dropped = Contract.objects.create(merchant=tea_house, channel_account=bank, state="suspended",
                                      business_code="BBX1")
    order = _order(tea_house, "RT1", routing={"layer": "priority", "chosen": "wx-main", "candidates": [
        {"account": "wx-main", "contract": chosen.pk, "eligible": True, "reason": ""},
        {"account": "bank-x", "contract": dropped.pk, "eligible": False, "reason": "contract suspended"}]})

    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert "WeChat Pay ISV" in html and "sub-merchant 1900000109" in html
    assert "Bank X" in html and "business code BBX1" in html

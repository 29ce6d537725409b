"""Before a risk officer limits a contract on the merchant page, its card's limit form shows what that moves (design
§7 "a preview of what moves", risk.traffic_preview): each product with the merchant's contract routing would choose
instead, or — in red, on the form's summary too — that the merchant API will refuse it; a limited contract's card
says where its orders go now. Clerks, who may not limit, get none of it."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aggpay.api import credentials
from channels.models import ChannelProduct
from merchants.models import ContractRate
from merchants.services.contract_risk import contract_limit
from tests.factories import ChannelAccountFactory
from tests.merchants.contract_card import card, limit_form, page, product_line, text
from tests.risk.violations import contract_on, wechat_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def tea_contract(tea_house):
    """The Tea House's WeChat contract takes WeChat QR and payment-code orders, the cheapest way to (0.20%)."""
    return contract_on(wechat_account(), tea_house, sub_mchid="1900000109",
                       products=("wechat.native", "wechat.barcode"))


@pytest.fixture
def bank_contract(tea_house, tea_contract):
    """Bank A takes the Tea House's WeChat QR orders too, dearer to us, at 0.45% to the merchant; not payment codes."""
    contract = contract_on(ChannelAccountFactory(code="bank-a", kind="bank", name="Bank A"), tea_house,
                           sub_mchid="BANKM0001", cost_rate="0.0030")
    ContractRate.objects.filter(contract=contract).update(rate=Decimal("0.0045"))
    return contract


def test_the_limit_form_names_the_account_that_takes_each_product_instead(client, tea_contract, bank_contract,
                                                                          risk_zhao):
    client.force_login(risk_zhao)

    form = limit_form(card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract))

    assert 'data-role="traffic-preview" data-mode="limit"' in form
    native = product_line(form, "wechat.native")
    assert "data-refused" not in native
    assert "wechat.native (here 0.38%) ¥0.01–¥50,000.00 → bank-a (Bank A) at 0.45%" in native


def test_the_limit_form_flags_in_red_a_product_the_merchant_api_would_refuse(client, tea_contract, bank_contract,
                                                                             risk_zhao):
    client.force_login(risk_zhao)

    form = limit_form(card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract))

    summary = re.search(r"<summary>(.*?)</summary>", form, re.S).group(1)
    assert 'data-role="limit-refuses" style="color:var(--bad)' in summary
    assert "stops wechat.barcode (422 product_not_available)" in text(summary)
    barcode = product_line(form, "wechat.barcode")
    assert "data-refused" in barcode and "→ none: refused, 422 product_not_available" in barcode


def test_limiting_a_contract_routing_does_not_choose_moves_nothing(client, tea_contract, bank_contract, risk_zhao):
    client.force_login(risk_zhao)

    form = limit_form(card(client.get(page(tea_contract.merchant)).content.decode(), bank_contract))

    assert "limit-refuses" not in form
    assert ("nothing moves: routing gives these to wx-risk (WeChat Pay wx-risk) at 0.38% already — this contract: "
            "net cost 0.3%, above the chosen 0.2%") in product_line(form, "wechat.native")


def test_a_limited_contracts_card_says_where_its_orders_go_now(client, tea_contract, bank_contract, risk_zhao):
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")
    client.force_login(risk_zhao)

    shown = card(client.get(page(tea_contract.merchant)).content.decode(), tea_contract)

    box = re.search(r'data-role="limit">.*?data-role="traffic-preview" data-mode="now".*?</div>\s*</div>', shown,
                    re.S)
    assert box, "no preview of where the orders go in the limit box"
    assert "Its orders now" in box.group()
    assert "→ bank-a (Bank A) at 0.45%" in product_line(shown, "wechat.native")
    assert "data-refused" in product_line(shown, "wechat.barcode")
    assert 'data-mode="limit"' not in shown


def test_a_clerk_gets_no_preview(client, tea_contract, bank_contract, clerk_wang):
    client.force_login(clerk_wang)

    html = client.get(page(tea_contract.merchant)).content.decode()

    assert 'data-role="traffic-preview"' not in html


def _page_queries(client, merchant) -> int:
    client.get(page(merchant))  # the session and permissions, read once per client
    credentials.generation_bump()  # as a save does: routing reads its rows again, as after the changes below
    with CaptureQueriesContext(connection) as queries:
        assert client.get(page(merchant)).status_code == 200
    return len(queries)


def test_its_queries_grow_by_one_per_product_however_the_limits_cut_the_amounts(
        client, tea_house, tea_contract, bank_contract, risk_zhao, django_assert_max_num_queries):
    """Bound: a card's preview costs one query (its products with the accounts' limits) and routing one per product
    of the merchant, shared by every card on the page — so three more products on both contracts, with limits that
    cut each into bands, cost three queries more, not one per card or per band."""
    client.force_login(risk_zhao)
    before = _page_queries(client, tea_house)
    more = ("wechat.h5", "wechat.app", "wechat.jsapi")
    for i, contract in enumerate((tea_contract, bank_contract)):
        for product in more:
            ChannelProduct.objects.create(account=contract.channel_account, product=product,
                                          cost_rate=Decimal("0.0020"), min_amount=100 * i + 1,
                                          max_amount=1000 * (i + 1))
            ContractRate.objects.create(contract=contract, product=product, rate=Decimal("0.0038"))

    with django_assert_max_num_queries(before + len(more)):
        html = client.get(page(tea_house)).content.decode()

    assert html.count('<li data-product="wechat.h5"') == 2  # one preview line on each card

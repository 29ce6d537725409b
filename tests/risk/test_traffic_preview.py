"""What limiting a contract moves (risk.traffic_preview, design §7 "a preview of what moves"): for each product the
contract serves, the merchant's other contract routing would choose instead — asked of routing itself with the
contract excluded — or that none would and the merchant API will refuse the product; for a limited contract, where
its orders go now. Bounded in queries whatever the number of contracts and bands."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.models import ChannelProduct
from channels.routing import choose
from merchants.models import Contract, ContractRate
from merchants.services.contract_risk import contract_limit
from risk.traffic_preview import LIMIT, NOW, traffic_preview
from tests.factories import ChannelAccountFactory
from tests.risk.violations import TEA_SUB, contract_on

pytestmark = pytest.mark.django_db


def bank(code: str, *, product: str = "wechat.native", cost: str = "0.0030", min_amount: int = 1,
         max_amount: int = 5_000_000):
    """A bank account serving ``product`` within the given limits."""
    account = ChannelAccountFactory(code=code, kind="bank", name=code.replace("-", " ").title())
    ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(cost),
                                  min_amount=min_amount, max_amount=max_amount)
    return account


def other_contract(account, merchant, *, products=("wechat.native",), rate: str = "0.0045"):
    """The merchant's contract on ``account``, at a merchant rate of its own (the preview must show that one)."""
    contract = contract_on(account, merchant, sub_mchid=f"S-{account.code}", products=products)
    ContractRate.objects.filter(contract=contract).update(rate=Decimal(rate))
    return contract


@pytest.fixture
def tea_contract(wx, tea_house):
    """The Tea House's WeChat contract takes WeChat QR and payment-code orders; it is the cheapest (0.20%)."""
    return contract_on(wx, tea_house, sub_mchid=TEA_SUB, products=("wechat.native", "wechat.barcode"))


def loaded(contract) -> Contract:
    return Contract.objects.select_related("merchant").get(pk=contract.pk)


def outcome(preview) -> dict:
    """product -> [(min, max, moves, account code or None, rate or None, refused)]"""
    return {p.product: [(b.min_amount, b.max_amount, b.moves, b.to.account_code if b.to else None,
                         b.to.rate if b.to else None, b.refused) for b in p.bands] for p in preview.products}


def test_it_names_the_contract_routing_would_choose_instead_for_each_product(tea_contract, tea_house):
    other_contract(bank("bank-a"), tea_house)

    preview = traffic_preview(loaded(tea_contract))

    assert preview.mode == LIMIT
    assert outcome(preview)["wechat.native"] == [(1, 5_000_000, True, "bank-a", "0.45%", False)]
    native = next(p for p in preview.products if p.product == "wechat.native")
    assert native.rate == "0.38%" and native.bands[0].to.account_name == "Bank A"


def test_it_flags_a_product_no_other_contract_takes_as_refused(tea_contract, tea_house):
    other_contract(bank("bank-a"), tea_house)  # WeChat QR only: nothing else takes WeChat payment codes

    preview = traffic_preview(loaded(tea_contract))

    assert outcome(preview)["wechat.barcode"] == [(1, 5_000_000, True, None, None, True)]
    assert preview.refused_products == ["wechat.barcode"]


def test_it_cuts_the_amounts_where_another_contract_stops_taking_them(tea_contract, tea_house):
    """Bank Small takes WeChat QR orders up to ¥10 only: the larger ones would be refused, and the preview says so
    rather than answering for one amount."""
    other_contract(bank("bank-small", max_amount=1000), tea_house)

    preview = traffic_preview(loaded(tea_contract))

    assert outcome(preview)["wechat.native"] == [(1, 1000, True, "bank-small", "0.45%", False),
                                                 (1001, 5_000_000, True, None, None, True)]
    assert preview.refused_products == ["wechat.barcode", "wechat.native"]
    assert preview.refused_labels == ["wechat.barcode", "wechat.native ¥10.01–¥50,000.00"]


def test_it_says_nothing_moves_where_routing_prefers_another_contract_already(tea_contract, tea_house):
    other_contract(bank("bank-cheap", cost="0.0010"), tea_house)

    band = next(p for p in traffic_preview(loaded(tea_contract)).products if p.product == "wechat.native").bands[0]

    assert (band.moves, band.to.account_code, band.refused) == (False, "bank-cheap", False)
    assert band.why_not_here == "net cost 0.2%, above the chosen 0.1%"


def test_for_a_limited_contract_it_says_where_its_orders_go_now(tea_contract, tea_house, risk_zhao):
    other_contract(bank("bank-a"), tea_house)
    contract_limit(contract_id=tea_contract.pk, actor=risk_zhao, reason="WeChat closed its payments")

    preview = traffic_preview(loaded(tea_contract))

    assert preview.mode == NOW
    assert outcome(preview) == {"wechat.barcode": [(1, 5_000_000, False, None, None, True)],
                                "wechat.native": [(1, 5_000_000, False, "bank-a", "0.45%", False)]}


def test_routing_records_the_excluded_contract_as_excluded_and_chooses_as_before_without_it(tea_contract, tea_house):
    bank_a = other_contract(bank("bank-a"), tea_house)

    excluded = choose(merchant=tea_house, product="wechat.native", amount=1500, exclude_contract_id=tea_contract.pk)
    usual = choose(merchant=tea_house, product="wechat.native", amount=1500)

    assert excluded.chosen.contract_id == bank_a.pk
    assert {"account": "wx-risk", "contract": tea_contract.pk, "eligible": False,
            "reason": "excluded"} in excluded.candidates
    assert usual.chosen.contract_id == tea_contract.pk
    assert [c["reason"] for c in usual.candidates] == ["chosen: lowest net cost 0.2%",
                                                       "net cost 0.3%, above the chosen 0.2%"]


def test_its_queries_do_not_grow_with_the_contracts_or_the_bands(tea_contract, tea_house,
                                                                 django_assert_max_num_queries):
    """The bound: one query for the contract's products with the accounts' limits, and one routing read per product
    (the further bands reuse the rows routing read under the API's generation token) — 1 + 3 here, with five other
    contracts whose limits cut each product into ten bands (six once those routed alike are merged)."""
    products = ("wechat.native", "wechat.barcode", "wechat.h5")
    ContractRate.objects.create(contract=tea_contract, product="wechat.h5", rate=Decimal("0.0038"))
    ChannelProduct.objects.create(account=tea_contract.channel_account, product="wechat.h5",
                                  cost_rate=Decimal("0.0020"), max_amount=5_000_000)
    for i in range(5):
        account = ChannelAccountFactory(code=f"bank-{i}", kind="bank")
        for product in products:
            ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(f"0.003{i}"),
                                          min_amount=100 * i + 1, max_amount=1000 * (i + 1))
        other_contract(account, tea_house, products=products)
    contract = loaded(tea_contract)

    with django_assert_max_num_queries(1 + len(products)):
        preview = traffic_preview(contract)

    assert len(preview.products) == 3 and all(len(p.bands) == 6 for p in preview.products)

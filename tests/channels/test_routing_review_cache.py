"""Review of routing's per-process rows (channels.routing, kept under the API front door's generation token,
aggpay.api.credentials): what another process changes decides the very next order of this one.

"Another process" writes as tests/aggpay/test_api_front_door_memory.py has it: ``QuerySet.update`` (no signal in
this process) and then the token bump its save would have made."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggpay.api import credentials
from channels.models import ChannelAccount, ChannelProduct
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory
from trades.models import Order

pytestmark = pytest.mark.django_db


def _contract(merchant, code, *, cost, rate="0.0038"):
    # The factory's gateway (port 9) refuses connections: the order stays pending (unknown, design §5 rule 2),
    # which is all routing needs — the account and the fee snapshot are written before the channel is called.
    account = ChannelAccountFactory(code=code)
    ChannelProduct.objects.create(account=account, product="wechat.native", cost_rate=Decimal(cost),
                                  max_amount=100_000)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state="active",
                                       business_code=f"B-{code}", sub_mchid=f"S-{code}")
    ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal(rate))
    return contract


def _another_process_saved(model, pk, **values):
    model.objects.filter(pk=pk).update(**values)
    credentials.generation_bump()


@pytest.fixture
def api(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    counter = iter(range(1, 100))

    def order(amount=1000):
        return api.post("/api/v1/orders", json={"product": "wechat.native", "out_trade_no": f"RCACHE-{next(counter)}",
                                                "amount": amount, "subject": "tea"})
    return order


def _routed(response) -> Order:
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["id"])


def test_a_contract_suspended_elsewhere_takes_no_order_from_the_next_one_on(api, tea_house):
    cheap = _contract(tea_house, "bank-cheap", cost="0.0020")
    _contract(tea_house, "bank-dear", cost="0.0030")
    assert _routed(api()).channel_account.code == "bank-cheap"
    assert _routed(api()).channel_account.code == "bank-cheap"  # warm: the rows of this process
    _another_process_saved(Contract, cheap.pk, state="suspended")
    order = _routed(api())
    assert order.channel_account.code == "bank-dear"
    assert {c["account"]: c["reason"] for c in order.routing["candidates"]}["bank-cheap"] == "contract suspended"


def test_an_account_disabled_elsewhere_takes_no_order_from_the_next_one_on(api, tea_house):
    only = _contract(tea_house, "bank-only", cost="0.0020")
    assert _routed(api()).channel_account.code == "bank-only"
    _another_process_saved(ChannelAccount, only.channel_account_id, enabled=False)
    response = api()
    assert response.status_code == 422 and response.json()["error"]["code"] == "product_not_available"


def test_rates_changed_elsewhere_price_the_next_order(api, tea_house):
    contract = _contract(tea_house, "bank-a", cost="0.0020", rate="0.0038")
    first = _routed(api(amount=10_000))
    assert (first.merchant_fee, first.channel_cost) == (38, 20)
    _another_process_saved(ContractRate, contract.rates.get().pk, rate=Decimal("0.0060"))
    _another_process_saved(ChannelProduct, ChannelProduct.objects.get(account_id=contract.channel_account_id).pk,
                           cost_rate=Decimal("0.0025"))
    second = _routed(api(amount=10_000))
    assert (second.merchant_rate, second.merchant_fee, second.cost_rate, second.channel_cost, second.profit) == (
        Decimal("0.0060"), 60, Decimal("0.0025"), 25, 35)


def test_a_limit_lowered_elsewhere_refuses_the_next_order_beyond_it(api, tea_house):
    contract = _contract(tea_house, "bank-a", cost="0.0020")
    assert _routed(api(amount=50_000)).channel_account.code == "bank-a"
    _another_process_saved(ChannelProduct, ChannelProduct.objects.get(account_id=contract.channel_account_id).pk,
                           max_amount=49_999)
    assert api(amount=50_000).status_code == 422
    assert _routed(api(amount=49_999)).channel_account.code == "bank-a"

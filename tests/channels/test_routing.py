"""Routing layer 1 and priority (design §7): only usable contracts are candidates, the cheapest wins, and the
decision says what was seen and why each was dropped."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import ChannelProduct
from channels.routing import choose, exact_rate
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory, MerchantFactory


def _contract(merchant, account, *, state="active", product="wechat.native", cost="0.0020", rate="0.0038",
              max_amount=5_000_000):
    ChannelProduct.objects.get_or_create(account=account, product=product,
                                         defaults={"cost_rate": Decimal(cost), "max_amount": max_amount})
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state=state,
                                       business_code=f"AGG{account.code}{merchant.pk}", sub_mchid=f"S{account.pk}")
    ContractRate.objects.create(contract=contract, product=product, rate=Decimal(rate))
    return contract


@pytest.fixture
def merchant(db):
    return MerchantFactory()


def test_it_chooses_the_cheapest_active_contract(merchant):
    bank_a = ChannelAccountFactory(code="bank-a")
    bank_b = ChannelAccountFactory(code="bank-b")
    _contract(merchant, bank_b, cost="0.0023")
    _contract(merchant, bank_a, cost="0.0020")
    decision = choose(merchant=merchant, product="wechat.native", amount=100)
    assert decision.chosen.account_code == "bank-a"
    assert decision.chosen.merchant_rate == Decimal("0.0038")
    assert {c["account"] for c in decision.candidates if c["eligible"]} == {"bank-a", "bank-b"}


def test_it_drops_limited_contracts_disabled_accounts_and_amounts_out_of_range(merchant):
    limited = ChannelAccountFactory(code="bank-limited")
    disabled = ChannelAccountFactory(code="bank-off", enabled=False)
    small = ChannelAccountFactory(code="bank-small")
    _contract(merchant, limited, state="limited")
    _contract(merchant, disabled)
    _contract(merchant, small, max_amount=1000)
    decision = choose(merchant=merchant, product="wechat.native", amount=5000)
    assert decision.chosen is None
    reasons = {c["account"]: c["reason"] for c in decision.candidates}
    assert reasons == {"bank-limited": "contract limited", "bank-off": "account disabled",
                       "bank-small": "amount outside 1–1000 fen"}


def test_it_ignores_contracts_without_a_rate_for_the_product(merchant):
    _contract(merchant, ChannelAccountFactory(code="bank-a"), product="alipay.qr")
    assert choose(merchant=merchant, product="wechat.native", amount=100).candidates == []


def test_restricted_to_one_account_it_takes_that_account_within_its_limits_and_nothing_else(merchant):
    cheap = ChannelAccountFactory(code="bank-cheap")
    small = ChannelAccountFactory(code="bank-small")
    _contract(merchant, cheap, cost="0.0010")
    _contract(merchant, small, cost="0.0030", max_amount=1000)
    decision = choose(merchant=merchant, product="wechat.native", amount=500, only_account_id=small.pk)
    assert decision.chosen.account_code == "bank-small" and decision.chosen.cost_rate == Decimal("0.0030")
    assert {c["account"]: c["reason"] for c in decision.candidates}["bank-cheap"] == "not the payer's account"
    beyond = choose(merchant=merchant, product="wechat.native", amount=5000, only_account_id=small.pk)
    assert beyond.chosen is None  # the limits still apply: never another account instead
    with CaptureQueriesContext(connection) as queries:
        choose(merchant=merchant, product="wechat.native", amount=500, only_account_id=small.pk)
    assert len(queries) == 1  # the restriction is a comparison on the rows read, not another query


def test_it_takes_one_query_whatever_the_number_of_contracts(merchant):
    for i in range(6):
        _contract(merchant, ChannelAccountFactory(code=f"bank-{i}"), cost=f"0.002{i}")
    with CaptureQueriesContext(connection) as queries:
        decision = choose(merchant=merchant, product="wechat.native", amount=100)
    assert decision.chosen.account_code == "bank-0"
    assert len(queries) == 1


def test_what_routing_reads_is_watched_by_the_front_doors_generation_token():
    from aggpay.api import credentials
    from channels.routing import ROUTING_INPUTS

    assert set(ROUTING_INPUTS) <= set(credentials.WATCHED)


def test_under_the_same_token_it_reuses_its_rows_and_a_saved_change_is_seen_at_once(merchant):
    from aggpay.api import credentials

    bank_a = ChannelAccountFactory(code="bank-a")
    contract = _contract(merchant, bank_a)
    token = credentials.generation_current()
    assert choose(merchant=merchant, product="wechat.native", amount=100, token=token).chosen.account_code == "bank-a"
    with CaptureQueriesContext(connection) as queries:
        again = choose(merchant=merchant, product="wechat.native", amount=100, token=token)
    assert again.chosen.account_code == "bank-a" and len(queries) == 0
    assert again.contract.channel_account.config == bank_a.config  # the chosen account, credentials decrypted

    contract.limit()  # a channel's risk action (design §4), saved: the token changes
    contract.save()
    token = credentials.generation_current()
    decision = choose(merchant=merchant, product="wechat.native", amount=100, token=token)
    assert decision.chosen is None and decision.candidates[0]["reason"] == "contract limited"


def test_each_decision_gets_its_own_contract_and_account_and_a_new_config_is_seen(merchant):
    from aggpay.api import credentials

    bank_a = ChannelAccountFactory(code="bank-a")
    _contract(merchant, bank_a)
    token = credentials.generation_current()
    first = choose(merchant=merchant, product="wechat.native", amount=100, token=token).contract
    first.channel_account.config["tampered"] = True  # a caller scribbling on what it got
    second = choose(merchant=merchant, product="wechat.native", amount=100, token=token).contract
    assert second is not first and second.channel_account is not first.channel_account
    assert "tampered" not in second.channel_account.config

    bank_a.config = {**bank_a.config, "rotated": "yes"}  # new credentials, saved: a new row, a new conversion
    bank_a.save()
    token = credentials.generation_current()
    third = choose(merchant=merchant, product="wechat.native", amount=100, token=token).contract
    assert third.channel_account.config["rotated"] == "yes"


@pytest.mark.parametrize(("as_read", "rate"), [(Decimal("0.0038"), "0.0038"), (0.0038, "0.0038"), (0.006, "0.006"),
                                               (1, "1")])
def test_a_rate_read_as_a_float_on_sqlite_becomes_the_stored_decimal_not_its_binary_expansion(as_read, rate):
    # The demo's SQLite hands the raw routing query floats: Decimal(0.0038) would be 0.00379999…, and a 2500-fen
    # order's fee 9.4999… fen, rounded down to 9 instead of half-up to 10.
    assert exact_rate(as_read) == Decimal(rate)
    assert str(exact_rate(as_read)) == rate


def test_it_passes_over_a_bank_contract_without_the_sub_appid_that_wechat_jsapi_needs_there(merchant):
    bank = ChannelAccountFactory(code="bank-cheap", kind="bank")
    wechat = ChannelAccountFactory(code="wechat-isv", kind="wechatpay")
    contract = _contract(merchant, bank, product="wechat.jsapi", cost="0.0020")
    _contract(merchant, wechat, product="wechat.jsapi", cost="0.0060")

    decision = choose(merchant=merchant, product="wechat.jsapi", amount=100)

    assert decision.chosen.account_code == "wechat-isv"  # the bank would refuse every such order (bank.md §6.2)
    reasons = {c["account"]: c["reason"] for c in decision.candidates}
    assert reasons["bank-cheap"].startswith("no sub_appid on the contract")
    # Native QR needs no appid at the bank: it keeps its cheapest account.
    ChannelProduct.objects.create(account=bank, product="wechat.native", cost_rate=Decimal("0.0020"),
                                  max_amount=5_000_000)
    ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal("0.0038"))
    assert choose(merchant=merchant, product="wechat.native", amount=100).chosen.account_code == "bank-cheap"


def test_a_bank_contract_with_its_sub_appid_takes_wechat_jsapi(merchant):
    bank = ChannelAccountFactory(code="bank-cheap", kind="bank")
    _contract(merchant, bank, product="wechat.jsapi", cost="0.0020")
    Contract.objects.filter(channel_account=bank).update(sub_appid="wx5f2c8e1a9b7d4c3e")
    assert choose(merchant=merchant, product="wechat.jsapi", amount=100).chosen.account_code == "bank-cheap"

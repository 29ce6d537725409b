"""Review of routing layer 1 and priority (design §7, issue 5): which contracts may take an order, at the edges of
their limits, and what the order's routing record says about the one chosen."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels.models import ChannelProduct
from channels.routing import choose
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory, MerchantFactory


def _contract(merchant, account, *, state="active", product="wechat.native", cost="0.0020", rebate="0",
              rate="0.0038", min_amount=1, max_amount=5_000_000, sub_appid=""):
    ChannelProduct.objects.get_or_create(
        account=account, product=product,
        defaults={"cost_rate": Decimal(cost), "isv_rebate_rate": Decimal(rebate), "min_amount": min_amount,
                  "max_amount": max_amount})
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state=state, sub_appid=sub_appid,
                                       business_code=f"AGG{account.code}{merchant.pk}", sub_mchid=f"S{account.pk}")
    ContractRate.objects.create(contract=contract, product=product, rate=Decimal(rate))
    return contract


def _reasons(decision) -> dict[str, str]:
    return {c["account"]: c["reason"] for c in decision.candidates}


@pytest.fixture
def merchant(db):
    return MerchantFactory()


@pytest.mark.parametrize(("amount", "taken"), [(99, False), (100, True), (5_000, True), (5_001, False)])
def test_the_accounts_limits_include_both_ends_and_refuse_one_fen_beyond(merchant, amount, taken):
    _contract(merchant, ChannelAccountFactory(code="bank-a"), min_amount=100, max_amount=5_000)
    decision = choose(merchant=merchant, product="wechat.native", amount=amount)
    assert (decision.chosen is not None) is taken
    if not taken:
        assert _reasons(decision)["bank-a"] == "amount outside 100–5000 fen"


@pytest.mark.parametrize("state", ["pending", "submitted", "auditing", "to_be_confirmed", "to_be_signed", "limited",
                                   "suspended", "terminated", "rejected"])
def test_only_an_active_contract_takes_an_order(merchant, state):
    _contract(merchant, ChannelAccountFactory(code="bank-a"), state=state)
    decision = choose(merchant=merchant, product="wechat.native", amount=100)
    assert decision.chosen is None and _reasons(decision) == {"bank-a": f"contract {state}"}


def test_an_account_that_stopped_serving_the_product_takes_none_of_it(merchant):
    account = ChannelAccountFactory(code="bank-a")
    _contract(merchant, account)
    ChannelProduct.objects.filter(account=account).delete()
    assert _reasons(choose(merchant=merchant, product="wechat.native", amount=100)) == {
        "bank-a": "product not served"}
    ChannelProduct.objects.create(account=account, product="wechat.native", cost_rate=Decimal("0.0020"),
                                  max_amount=5_000_000, enabled=False)
    assert _reasons(choose(merchant=merchant, product="wechat.native", amount=100)) == {
        "bank-a": "product not served"}


def test_rates_come_from_the_ordered_product_not_another_product_of_the_same_contract(merchant):
    account = ChannelAccountFactory(code="bank-a")
    contract = _contract(merchant, account, product="alipay.barcode", cost="0.0021", rebate="0.0001", rate="0.0031")
    ChannelProduct.objects.create(account=account, product="wechat.barcode", cost_rate=Decimal("0.0025"),
                                  max_amount=5_000_000)
    ContractRate.objects.create(contract=contract, product="wechat.barcode", rate=Decimal("0.0045"))
    chosen = choose(merchant=merchant, product="alipay.barcode", amount=100).chosen
    assert (chosen.merchant_rate, chosen.cost_rate, chosen.rebate_rate) == (
        Decimal("0.0031"), Decimal("0.0021"), Decimal("0.0001"))


def test_net_cost_decides_so_a_rebate_can_make_the_dearer_channel_cheaper(merchant):
    _contract(merchant, ChannelAccountFactory(code="bank-a"), cost="0.0020")
    _contract(merchant, ChannelAccountFactory(code="wx-isv", kind="wechatpay"), cost="0.0038", rebate="0.0020")
    assert choose(merchant=merchant, product="wechat.native", amount=100).chosen.account_code == "wx-isv"


# --- a WeChat JSAPI order needs the merchant's appid at the bank (bank.md §6.2) ------------------------------------
def test_a_bank_contract_without_the_sub_appid_is_dropped_for_that_whatever_the_amount(merchant):
    # The reason a candidate is dropped is the first thing that stops it: the amount is only the reason when nothing
    # else stands in the way. One-code-pay reads "amount outside" as "this account takes other amounts"
    # (trades.onecode.services.oauth_account), so it must never hide a contract that can take no amount at all.
    _contract(merchant, ChannelAccountFactory(code="bank-a", kind="bank"), product="wechat.jsapi", min_amount=100)
    decision = choose(merchant=merchant, product="wechat.jsapi", amount=1)
    assert decision.chosen is None
    assert _reasons(decision)["bank-a"].startswith("no sub_appid on the contract")


def test_a_store_code_logs_wechat_payers_in_where_a_jsapi_order_can_go_not_at_a_bank_without_the_appid(merchant):
    from trades.onecode.services import account_takes, oauth_account

    # The bank has the widest limits but no appid on the contract: every order there would be refused by routing.
    bank = ChannelAccountFactory(code="bank-a", kind="bank")
    _contract(merchant, bank, product="wechat.jsapi", min_amount=100, max_amount=5_000_000)
    wechat = ChannelAccountFactory(code="wx-isv", kind="wechatpay")
    _contract(merchant, wechat, product="wechat.jsapi", cost="0.0060", max_amount=1_000_000)

    account = oauth_account(merchant=merchant, wallet="wechat")

    assert account is not None and account.code == "wx-isv"
    assert account_takes(merchant=merchant, wallet="wechat", account_id=account.pk, amount=500)


# --- the routing record says why the account was chosen (issue 5) ------------------------------------------------
def test_the_record_says_why_the_chosen_account_won_and_why_each_other_eligible_one_lost(merchant):
    _contract(merchant, ChannelAccountFactory(code="bank-b"), cost="0.0023")
    _contract(merchant, ChannelAccountFactory(code="bank-a"), cost="0.0020")
    _contract(merchant, ChannelAccountFactory(code="bank-off", enabled=False), cost="0.0010")
    record = choose(merchant=merchant, product="wechat.native", amount=100).as_record()
    assert record["layer"] == "priority" and record["chosen"] == "bank-a"
    reasons = {c["account"]: c["reason"] for c in record["candidates"]}
    assert reasons == {"bank-b": "net cost 0.23%, above the chosen 0.2%",
                       "bank-a": "chosen: lowest net cost 0.2%",
                       "bank-off": "account disabled"}
    assert {c["account"]: c["eligible"] for c in record["candidates"]} == {
        "bank-b": True, "bank-a": True, "bank-off": False}


def test_of_two_contracts_at_the_same_net_cost_the_oldest_wins_and_the_record_says_so(merchant):
    first = _contract(merchant, ChannelAccountFactory(code="bank-old"), cost="0.0020")
    second = _contract(merchant, ChannelAccountFactory(code="bank-new"), cost="0.0025", rebate="0.0005")
    for _ in range(3):  # deterministic: the same answer every time
        record = choose(merchant=merchant, product="wechat.native", amount=100).as_record()
        assert record["chosen"] == "bank-old"
    reasons = {c["contract"]: c["reason"] for c in record["candidates"]}
    assert reasons == {first.pk: "chosen: lowest net cost 0.2%, the oldest contract at that cost",
                       second.pk: "net cost 0.2%, as the chosen one, which is an older contract"}


def test_the_oldest_contract_is_the_one_signed_first_as_the_merchants_product_list_reads_it(merchant):
    # merchants.services.products shows the rate of "the contract routing would pick first" ordering ties by
    # created_at, then id; routing must break ties the same way, or the merchant reads one rate and pays another.
    from merchants.services.products import merchant_available_products

    lower_id = _contract(merchant, ChannelAccountFactory(code="bank-x"), rate="0.0050")
    signed_first = _contract(merchant, ChannelAccountFactory(code="bank-y"), rate="0.0040")
    # The row with the lower id signed later (an import, or two signings racing between id and timestamp).
    Contract.objects.filter(pk=lower_id.pk).update(created_at=signed_first.created_at.replace(year=2099))
    decision = choose(merchant=merchant, product="wechat.native", amount=100)
    shown = {p.product: p.rate for p in merchant_available_products(merchant)}["wechat.native"]
    assert decision.chosen.account_code == "bank-y"
    assert decision.chosen.merchant_rate == shown == Decimal("0.0040")

"""Failover at order create (design §7 layer 4: "fallback list and failover on retryable errors before the payer is
involved"): a create the preferred account refuses retryably — bank HTTP 429, Alipay's ACQ.REQUEST_TOO_FAST — moves
to the next eligible contract, which then holds the trade: its fee snapshot, its callback, its refund, its close.
Never for a payment code, a permanent refusal or a timeout; with no other candidate the merchant gets 502 as before.

End to end: signed merchant-API requests against the simulators, the refusals injected there (core.py
``/_control/faults``) on the preferred account only.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from channels.models import CallbackOutcome, ChannelCallback, ChannelProduct
from channels.services.volume import account_volume_add
from merchants.models import Contract
from tests.trades.bank_flow import UNIONPAY_PAID_AT_ONCE, refund
from tests.trades.failover_flow import at_the_bank, bank_fault, create_order, rate_limited
from tests.trades.test_faults import SLOW, short_timeout  # noqa: F401 - the read timeout's fixture
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")


def _creates(order_id: str) -> list[tuple[str, str]]:
    return list(Order.objects.get(pk=order_id).channel_calls.filter(verb="create")
                .values_list("outcome", "channel_code"))


def test_it_moves_an_order_the_preferred_bank_refuses_with_429_to_the_next_which_takes_payment_and_refund(
        shop, bank_b, simulator_server):
    bank_a = shop.accounts["bank"]
    rate_limited(shop, bank_a)

    status, _, order = create_order(shop, "FO000001")

    assert status == 201 and order["state"] == "pending" and order["pay_params"]["code_url"], order
    stored = Order.objects.get(pk=order["id"])
    b_contract = Contract.objects.get(channel_account=bank_b)
    assert (stored.channel_account_id, stored.contract_id, stored.sub_mchid) == (
        bank_b.pk, b_contract.pk, b_contract.sub_mchid)
    # Bank B's price, not Bank A's (0.38% / 0.20% would be 38 / 20 fen).
    assert (stored.merchant_rate, stored.merchant_fee, stored.cost_rate, stored.channel_cost, stored.profit) == (
        Decimal("0.005"), 50, Decimal("0.003"), 30, 20)
    assert _creates(stored.pk) == [("error", "rate_limited"), ("pending", "")]
    assert stored.routing["layer"] == "failover" and stored.routing["chosen"] == bank_b.code
    assert [(h["from"], h["to"], h["code"]) for h in stored.routing["failover"]] == [
        (bank_a.code, bank_b.code, "rate_limited")]
    assert at_the_bank(simulator_server, bank_a, "trades", stored.pk) is None
    assert at_the_bank(simulator_server, bank_b, "trades", stored.pk)["trade_state"] == "NOTPAY"

    # The payer scans Bank B's code; Bank B's notice comes to Bank B's callback URL and settles the order.
    code = parse_qs(urlsplit(order["pay_params"]["code_url"]).query)["code"][0]
    shop.sim("bank", "/_payer/pay", code=code)
    shop.sim("bank", "/_control/flush")
    paid = shop.wait_for(lambda: Order.objects.filter(pk=stored.pk, state="succeeded").first(), message="paid")
    assert ChannelCallback.objects.filter(account=bank_b, outcome=CallbackOutcome.APPLIED).count() == 1
    assert not ChannelCallback.objects.filter(account=bank_a).exists()

    status, body = refund(shop, paid, "FOR00001", 4_000)
    assert status == 201, body
    assert at_the_bank(simulator_server, bank_b, "refunds", body["id"])["refund_amount"] == 4_000
    assert at_the_bank(simulator_server, bank_a, "refunds", body["id"]) is None


def test_the_trade_page_says_the_order_failed_over_and_keeps_the_refused_call(shop, bank_b, client, agent):
    bank_a = shop.accounts["bank"]
    rate_limited(shop, bank_a)
    status, _, order = create_order(shop, "FO000002")
    assert status == 201, order

    html = client.get(reverse("trades:detail", args=[order["id"]])).content.decode()

    said = f"Failed over from {bank_a.code} to {bank_b.code}: rate_limited"
    assert said in html
    assert html.index("Channel call: create → error") < html.index(said) < html.index("Channel call: create → pending")
    assert f'from <span class="mono">{bank_a.code}</span> to <span class="mono">{bank_b.code}</span>: rate_limited' \
        in html  # the routing card


def test_it_moves_an_alipay_order_refused_with_a_retryable_sub_code_to_the_bank(shop, bank_b, simulator_server):
    shop.sim("alipay", "/_control/faults", fault="business_error", code="ACQ.REQUEST_TOO_FAST",
             message="请求过于频繁", match={"contains": "alipay.trade.precreate"})

    status, _, order = create_order(shop, "FO000003", product="alipay.qr")

    assert status == 201 and order["state"] == "pending", order
    stored = Order.objects.get(pk=order["id"])
    assert stored.channel_account_id == bank_b.pk and stored.channel_cost == 30
    assert _creates(stored.pk) == [("error", "ACQ.REQUEST_TOO_FAST"), ("pending", "")]
    assert at_the_bank(simulator_server, bank_b, "trades", stored.pk)["pay_channel"] == "ALIPAY"


def test_it_closes_a_failed_over_order_at_the_account_that_holds_it(shop, bank_b, simulator_server):
    rate_limited(shop, shop.accounts["bank"])
    status, _, order = create_order(shop, "FO000004")
    assert status == 201, order

    status, _, closed = shop.client.request("POST", "/api/v1/orders/FO000004/close")

    assert status == 200 and closed["state"] == "closed", closed
    assert at_the_bank(simulator_server, bank_b, "trades", order["id"])["trade_state"] == "CLOSED"


def test_a_payment_code_refused_retryably_fails_without_failing_over(shop, bank_b, simulator_server):
    rate_limited(shop, shop.accounts["bank"])

    status, _, answer = create_order(shop, "FO000005", product="unionpay.barcode", auth_code=UNIONPAY_PAID_AT_ONCE)

    assert status == 502 and answer["error"]["code"] == "channel_error", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000005")
    assert stored.state == "failed" and stored.channel_account_id == shop.accounts["bank"].pk
    assert _creates(stored.pk) == [("error", "rate_limited")]
    assert at_the_bank(simulator_server, bank_b, "trades", stored.pk) is None


def test_it_does_not_fail_over_to_an_account_the_order_would_take_past_its_daily_cap(local_midday, shop, bank_b,
                                                                                    simulator_server):
    # The fallbacks are routing's eligible candidates (design §7 layers 1 and 4): Bank B, with 50 yuan of its
    # 99.99 yuan cap paid today, cannot take 100 yuan more, so Bank A's retryable refusal stands.
    offer = ChannelProduct.objects.get(account=bank_b, product="unionpay.qr")
    offer.daily_cap = 9_999
    offer.save()  # saved, as ops' edit is: the front door's routing token moves
    with transaction.atomic():  # as a payment recorded there this morning counts it
        account_volume_add(account_id=bank_b.pk, product="unionpay.qr", amount=5_000, paid_at=timezone.now())
    rate_limited(shop, shop.accounts["bank"])

    status, _, answer = create_order(shop, "FO000013")

    assert status == 502 and answer["error"]["code"] == "channel_error", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000013")
    assert stored.state == "failed" and stored.channel_account_id == shop.accounts["bank"].pk
    assert _creates(stored.pk) == [("error", "rate_limited")]
    assert {c["account"]: c["reason"] for c in stored.routing["candidates"]}[bank_b.code] == (
        "daily cap reached: 50.00 of 99.99 yuan paid today, 49.99 left")
    assert at_the_bank(simulator_server, bank_b, "trades", stored.pk) is None


def test_a_jsapi_payer_id_of_one_app_is_not_sent_to_a_contract_of_another_app(shop, bank_b):
    # The WeChat Pay contract has no sub_appid: the payer's openid is of the provider's app there (A.7), which Bank
    # B's contract (the merchant's own app) cannot use — the refusal stands, as with no other candidate.
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="FREQUENCY_LIMITED", status=429,
             match={"path": "transactions/jsapi"})

    status, _, answer = create_order(shop, "FO000012", product="wechat.jsapi",
                                payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})

    assert status == 502 and answer["error"]["channel_code"] == "FREQUENCY_LIMITED", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000012")
    assert stored.state == "failed" and stored.channel_account_id == shop.accounts["wechatpay"].pk
    assert _creates(stored.pk) == [("error", "FREQUENCY_LIMITED")]
    assert any(c["account"] == bank_b.code and c["eligible"] for c in stored.routing["candidates"])


def test_a_permanent_refusal_fails_the_order_without_failing_over(shop, bank_b, simulator_server):
    bank_fault(shop, shop.accounts["bank"], "business_error", code="MCH_LIMITED", message="merchant limited")

    status, _, answer = create_order(shop, "FO000006")

    assert status == 502 and answer["error"]["channel_code"] == "MCH_LIMITED", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000006")
    assert stored.state == "failed" and stored.channel_account_id == shop.accounts["bank"].pk
    assert _creates(stored.pk) == [("error", "MCH_LIMITED")]
    assert at_the_bank(simulator_server, bank_b, "trades", stored.pk) is None


@pytest.mark.usefixtures("short_timeout")
def test_a_timeout_leaves_the_order_pending_on_its_account_without_failing_over(shop, bank_b, simulator_server):
    bank_fault(shop, shop.accounts["bank"], "latency", seconds=SLOW)

    status, _, order = create_order(shop, "FO000007")

    assert status == 201 and order["state"] == "pending", order
    stored = Order.objects.get(pk=order["id"])
    assert stored.sync_state == "unknown" and stored.channel_account_id == shop.accounts["bank"].pk
    assert stored.routing["layer"] == "priority" and "failover" not in stored.routing
    assert _creates(stored.pk) == [("unknown", "channel_unknown")]
    assert at_the_bank(simulator_server, bank_b, "trades", stored.pk) is None


@pytest.mark.usefixtures("short_timeout")
def test_a_timeout_at_the_next_account_leaves_the_order_pending_and_unknown_there(shop, bank_b):
    rate_limited(shop, shop.accounts["bank"])
    bank_fault(shop, bank_b, "latency", seconds=SLOW)

    status, _, order = create_order(shop, "FO000008")

    assert status == 201 and order["state"] == "pending", order
    stored = Order.objects.get(pk=order["id"])
    assert stored.sync_state == "unknown" and stored.next_query_at is not None
    assert stored.channel_account_id == bank_b.pk  # its queries go where the trade may be
    assert _creates(stored.pk) == [("error", "rate_limited"), ("unknown", "channel_unknown")]


def test_a_permanent_refusal_at_the_next_account_fails_the_order_with_it(shop, bank_b):
    rate_limited(shop, shop.accounts["bank"])
    bank_fault(shop, bank_b, "business_error", code="MCH_LIMITED", message="merchant limited")

    status, _, answer = create_order(shop, "FO000009")

    assert status == 502 and answer["error"]["channel_code"] == "MCH_LIMITED", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000009")
    assert stored.state == "failed" and stored.failure_code == "MCH_LIMITED"
    assert _creates(stored.pk) == [("error", "rate_limited"), ("error", "MCH_LIMITED")]


def test_when_every_account_refuses_retryably_the_order_fails_with_the_last_refusal(shop, bank_b):
    rate_limited(shop, shop.accounts["bank"])
    bank_fault(shop, bank_b, "business_error", code="RATE_LIMITED", message="too many requests")  # signed, 200

    status, _, answer = create_order(shop, "FO000010")

    assert status == 502 and answer["error"]["channel_code"] == "RATE_LIMITED", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000010")
    assert stored.state == "failed" and stored.failure_code == "RATE_LIMITED"
    assert stored.channel_account_id == bank_b.pk
    assert _creates(stored.pk) == [("error", "rate_limited"), ("error", "RATE_LIMITED")]


def test_with_no_other_candidate_a_retryable_refusal_is_502_as_before(shop):
    rate_limited(shop, shop.accounts["bank"])

    status, _, answer = create_order(shop, "FO000011")

    assert status == 502 and answer["error"]["code"] == "channel_error", answer
    assert answer["error"]["channel_code"] == "rate_limited", answer
    stored = Order.objects.get(merchant=shop.merchant, out_trade_no="FO000011")
    assert stored.state == "failed" and stored.routing["layer"] == "priority"
    assert _creates(stored.pk) == [("error", "rate_limited")]

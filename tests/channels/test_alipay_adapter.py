"""The Alipay adapter against its simulator over real HTTP: every payment verb (channel-protocols.md B.5)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from channels.adapters.alipay import AlipayAdapter, AlipayConfig
from channels.adapters.base import (
    PaymentRequest,
    RefundRequest,
    RefundState,
    SubMerchant,
    TradeRef,
    TradeState,
)
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.simulators.alipay import provision, provision_merchant

SUCCESS_CODE = "281234567890123450"  # auth_code conventions: see channels/simulators/alipay_trades.py
PAYING_THEN_SUCCESS = "281234567890123456"
PAYING_THEN_CLOSED = "281234567890123457"
NO_BALANCE = "281234567890123458"
INVALID_CODE = "281234567890123459"


def order(sub: SubMerchant, out_trade_no: str, product: str = "alipay.qr", **changes) -> PaymentRequest:
    base = PaymentRequest(
        product=product, sub_merchant=sub, out_trade_no=out_trade_no, amount=1234, subject="龙井 250g",
        notify_url="http://127.0.0.1:9/notify", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30),
    )
    return replace(base, **changes)


def ref(sub: SubMerchant, out_trade_no: str) -> TradeRef:
    return TradeRef(sub_merchant=sub, out_trade_no=out_trade_no)


def sim(server, path: str, payload: dict) -> dict:
    response = requests.post(server.base_url + "/alipay" + path, json=payload, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def settings_for(server, app_id: str, **values) -> None:
    sim(server, f"/_control/accounts/{app_id}/settings", values)


# --- create / query ---------------------------------------------------------------------------------------
def test_a_precreate_returns_a_qr_and_alipay_knows_no_trade_until_it_is_scanned(
        alipay_adapter, alipay_merchant, simulator_server):
    created = alipay_adapter.create_payment(order(alipay_merchant, "Q1"))
    assert created.state == TradeState.PENDING
    assert created.pay_params["code_url"].startswith(simulator_server.base_url + "/alipay/_payer/?code=bax")
    assert alipay_adapter.query_payment(ref(alipay_merchant, "Q1")).state == TradeState.NOT_FOUND

    sim(simulator_server, "/_payer/scan", {"qr_code": created.pay_params["code_url"]})
    assert alipay_adapter.query_payment(ref(alipay_merchant, "Q1")).state == TradeState.PENDING

    sim(simulator_server, "/_payer/pay", {"qr_code": created.pay_params["code_url"], "payer_id": "2088000000000042"})
    paid = alipay_adapter.query_payment(ref(alipay_merchant, "Q1"))
    assert (paid.state, paid.amount, paid.payer_id) == (TradeState.SUCCEEDED, 1234, "2088000000000042")
    assert paid.paid_at is not None and paid.paid_at.utcoffset() == dt.timedelta(hours=8)
    assert paid.channel_trade_no and paid.out_trade_no == "Q1"


def test_the_app_auth_token_decides_whose_trade_it_is(alipay_adapter, alipay_merchant, alipay_config,
                                                      simulator_server):
    alipay_adapter.create_payment(order(alipay_merchant, "ISO1", "alipay.jsapi", payer_id="2088000000000001"))
    other = provision_merchant(simulator_server.base_url, app_id=alipay_config.app_id, name="Other shop")
    someone_else = SubMerchant(sub_mchid=other["sub_mchid"], app_auth_token=other["app_auth_token"])
    assert alipay_adapter.query_payment(ref(someone_else, "ISO1")).state == TradeState.NOT_FOUND
    assert alipay_adapter.query_payment(ref(alipay_merchant, "ISO1")).state == TradeState.PENDING


def test_a_token_of_another_app_is_refused(alipay_adapter, simulator_server):
    stranger = provision(simulator_server.base_url, name="stranger app")
    token = provision_merchant(simulator_server.base_url, app_id=stranger["app_id"])["app_auth_token"]
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.query_payment(ref(SubMerchant(sub_mchid="2088", app_auth_token=token), "X"))
    assert (caught.value.channel_code, caught.value.code) == ("aop.invalid-app-auth-token", "merchant_not_found")
    assert not isinstance(caught.value, ChannelUnknown)


def test_jsapi_creates_a_trade_for_the_buyer_and_returns_its_trade_no(alipay_adapter, alipay_merchant,
                                                                       simulator_server):
    created = alipay_adapter.create_payment(order(alipay_merchant, "J1", "alipay.jsapi", payer_id="2088000000000007"))
    assert created.state == TradeState.PENDING
    assert created.channel_trade_no
    assert created.pay_params == {"jsapi": {"tradeNO": created.channel_trade_no}, "trade_no": created.channel_trade_no}
    # An open_id (newer apps, §E) goes out as buyer_open_id and is accepted the same way.
    by_open_id = alipay_adapter.create_payment(order(alipay_merchant, "J2", "alipay.jsapi", payer_id="0" * 32))
    assert by_open_id.channel_trade_no
    sim(simulator_server, "/_payer/pay", {"trade_no": created.channel_trade_no})
    assert alipay_adapter.query_payment(ref(alipay_merchant, "J1")).payer_id == "2088000000000007"


def test_jsapi_without_a_payer_is_refused_before_any_call(alipay_adapter, alipay_merchant):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.create_payment(order(alipay_merchant, "J0", "alipay.jsapi"))
    assert caught.value.code == "invalid_params"


def test_an_app_order_string_is_signed_so_the_wallet_accepts_it(alipay_adapter, alipay_merchant, simulator_server):
    created = alipay_adapter.create_payment(order(alipay_merchant, "A1", "alipay.app"))
    order_string = created.pay_params["app"]["order_string"]
    assert "method=alipay.trade.app.pay" in order_string and "sign=" in order_string
    paid = sim(simulator_server, "/_payer/pay", {"order_string": order_string})
    assert paid["trade_status"] == "TRADE_SUCCESS"
    assert alipay_adapter.query_payment(ref(alipay_merchant, "A1")).state == TradeState.SUCCEEDED

    tampered = order_string.replace("12.34", "0.01")
    response = requests.post(simulator_server.base_url + "/alipay/_payer/pay", json={"order_string": tampered},
                             timeout=10)
    assert response.status_code == 400 and response.json()["sub_code"] == "isv.invalid-signature"


def test_a_wap_url_opens_the_cashier_and_a_tampered_one_is_refused(alipay_adapter, alipay_merchant):
    created = alipay_adapter.create_payment(order(alipay_merchant, "W1", "alipay.wap",
                                                  return_url="https://shop.example/back"))
    url = created.pay_params["wap_url"]
    assert parse_qs(urlsplit(url).query)["method"] == ["alipay.trade.wap.pay"]
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and "12.34" in page.text
    refused = requests.get(url.replace("12.34", "0.01"), timeout=10)
    assert '"sub_code":"isv.invalid-signature"' in refused.text


def test_a_product_of_another_kind_is_refused(alipay_adapter, alipay_merchant):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.create_payment(order(alipay_merchant, "X1", "wechat.native"))
    assert caught.value.code == "invalid_params"


# --- barcode (B.5 alipay.trade.pay, 10003) -----------------------------------------------------------------
def test_a_barcode_payment_succeeds_at_once(alipay_adapter, alipay_merchant):
    paid = alipay_adapter.create_payment(order(alipay_merchant, "B1", "alipay.barcode", auth_code=SUCCESS_CODE))
    assert (paid.state, paid.amount) == (TradeState.SUCCEEDED, 1234)
    assert paid.paid_at is not None and paid.payer_id.startswith("2088")
    # Retrying the same pay (say, after a timeout) reports the trade Alipay holds instead of failing.
    again = alipay_adapter.create_payment(order(alipay_merchant, "B1", "alipay.barcode", auth_code=SUCCESS_CODE))
    assert (again.state, again.channel_trade_no) == (TradeState.SUCCEEDED, paid.channel_trade_no)


def test_a_barcode_payment_waits_for_the_payer_then_succeeds(alipay_adapter, alipay_merchant, alipay_config,
                                                             simulator_server):
    settings_for(simulator_server, alipay_config.app_id, user_paying_seconds=0.3)
    paying = alipay_adapter.create_payment(order(alipay_merchant, "B2", "alipay.barcode",
                                                 auth_code=PAYING_THEN_SUCCESS))
    assert paying.state == TradeState.USER_PAYING and paying.channel_trade_no
    assert alipay_adapter.query_payment(ref(alipay_merchant, "B2")).state == TradeState.PENDING
    time.sleep(0.6)  # the payer enters the password in the wallet
    assert alipay_adapter.query_payment(ref(alipay_merchant, "B2")).state == TradeState.SUCCEEDED


def test_a_barcode_payment_the_payer_abandons_ends_closed(alipay_adapter, alipay_merchant, alipay_config,
                                                          simulator_server):
    settings_for(simulator_server, alipay_config.app_id, user_paying_seconds=0.3)
    paying = alipay_adapter.create_payment(order(alipay_merchant, "B3", "alipay.barcode",
                                                 auth_code=PAYING_THEN_CLOSED))
    assert paying.state == TradeState.USER_PAYING
    time.sleep(0.6)
    assert alipay_adapter.query_payment(ref(alipay_merchant, "B3")).state == TradeState.CLOSED


@pytest.mark.parametrize(("auth_code", "code", "channel_code"), [
    (NO_BALANCE, "insufficient_balance", "ACQ.BUYER_BALANCE_NOT_ENOUGH"),
    (INVALID_CODE, "auth_code_invalid", "ACQ.PAYMENT_AUTH_CODE_INVALID"),
    ("12345", "auth_code_invalid", "ACQ.PAYMENT_AUTH_CODE_INVALID"),
])
def test_a_barcode_refused_by_alipay_is_a_failed_payment(alipay_adapter, alipay_merchant, auth_code, code,
                                                         channel_code):
    failed = alipay_adapter.create_payment(order(alipay_merchant, "B4" + auth_code[-3:], "alipay.barcode",
                                                 auth_code=auth_code))
    assert (failed.state, failed.failure_code) == (TradeState.FAILED, code)
    assert failed.failure_message


# --- close / reverse ------------------------------------------------------------------------------------------
def test_closing_an_unpaid_trade_closes_it_and_closing_again_is_harmless(alipay_adapter, alipay_merchant):
    alipay_adapter.create_payment(order(alipay_merchant, "C1", "alipay.jsapi", payer_id="2088000000000001"))
    assert alipay_adapter.close_payment(ref(alipay_merchant, "C1")) is None
    assert alipay_adapter.query_payment(ref(alipay_merchant, "C1")).state == TradeState.CLOSED
    assert alipay_adapter.close_payment(ref(alipay_merchant, "C1")) is None


def test_closing_an_unscanned_precreate_stops_its_qr(alipay_adapter, alipay_merchant, simulator_server):
    created = alipay_adapter.create_payment(order(alipay_merchant, "C2"))
    alipay_adapter.close_payment(ref(alipay_merchant, "C2"))
    after = sim(simulator_server, "/_payer/pay", {"qr_code": created.pay_params["code_url"]})
    assert after["trade_status"] == "TRADE_CLOSED"
    assert alipay_adapter.query_payment(ref(alipay_merchant, "C2")).state == TradeState.CLOSED


def test_closing_a_paid_trade_is_refused_as_order_paid(alipay_adapter, alipay_merchant):
    alipay_adapter.create_payment(order(alipay_merchant, "C3", "alipay.barcode", auth_code=SUCCESS_CODE))
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.close_payment(ref(alipay_merchant, "C3"))
    assert caught.value.code == "order_paid"


def test_reversing_a_barcode_trade_closes_it_if_unpaid_and_refunds_it_if_paid(alipay_adapter, alipay_merchant):
    alipay_adapter.create_payment(order(alipay_merchant, "R1", "alipay.barcode", auth_code=PAYING_THEN_SUCCESS))
    unpaid = alipay_adapter.reverse_payment(ref(alipay_merchant, "R1"))
    assert (unpaid.state, unpaid.raw["action"]) == (TradeState.REVERSED, "close")
    assert alipay_adapter.query_payment(ref(alipay_merchant, "R1")).state == TradeState.CLOSED

    alipay_adapter.create_payment(order(alipay_merchant, "R2", "alipay.barcode", auth_code=SUCCESS_CODE))
    paid = alipay_adapter.reverse_payment(ref(alipay_merchant, "R2"))
    assert (paid.state, paid.raw["action"]) == (TradeState.REVERSED, "refund")


def test_a_cancel_alipay_asks_to_retry_is_unknown(alipay_adapter, alipay_merchant, alipay_config, simulator_server):
    alipay_adapter.create_payment(order(alipay_merchant, "R3", "alipay.barcode", auth_code=PAYING_THEN_SUCCESS))
    sim(simulator_server, "/_control/faults", {"fault": "business_error", "code": "ACQ.SYSTEM_ERROR",
                                               "extra": {"retry_flag": "Y"},
                                               "match": {"contains": alipay_config.app_id}})
    with pytest.raises(ChannelUnknown):
        alipay_adapter.reverse_payment(ref(alipay_merchant, "R3"))


@pytest.mark.parametrize(("sub_code", "rule"), [
    ("AQC.SYSTEM_ERROR", {}),  # the simulator answers a system error with retry_flag=Y by itself
    ("ACQ.REASON_TRADE_BEEN_FREEZEN", {"retry_flag": "Y"}),  # a refusal by our table, but Alipay says retry
])
def test_a_failed_cancel_alipay_asks_to_retry_is_unknown_whatever_its_sub_code(
        alipay_adapter, alipay_merchant, alipay_config, simulator_server, sub_code, rule):
    out_trade_no = "R4" + sub_code[-6:]
    alipay_adapter.create_payment(order(alipay_merchant, out_trade_no, "alipay.barcode", auth_code=SUCCESS_CODE))
    sim(simulator_server, "/_control/faults", {"fault": "business_error", "code": sub_code, **rule,
                                               "match": {"contains": "alipay.trade.cancel"}})
    with pytest.raises(ChannelUnknown) as caught:
        alipay_adapter.reverse_payment(ref(alipay_merchant, out_trade_no))
    assert caught.value.retryable and caught.value.channel_code == sub_code
    # The failed cancel moved nothing; the retry Alipay asked for goes through.
    assert alipay_adapter.query_payment(ref(alipay_merchant, out_trade_no)).state == TradeState.SUCCEEDED
    assert alipay_adapter.reverse_payment(ref(alipay_merchant, out_trade_no)).state == TradeState.REVERSED


def test_a_failed_cancel_alipay_says_not_to_retry_is_a_definite_refusal(alipay_adapter, alipay_merchant,
                                                                        simulator_server):
    alipay_adapter.create_payment(order(alipay_merchant, "R5", "alipay.barcode", auth_code=SUCCESS_CODE))
    sim(simulator_server, "/_control/faults", {"fault": "business_error", "code": "ACQ.SYSTEM_ERROR",
                                               "retry_flag": "N", "match": {"contains": "alipay.trade.cancel"}})
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.reverse_payment(ref(alipay_merchant, "R5"))
    assert not isinstance(caught.value, ChannelUnknown)
    assert caught.value.permanent and caught.value.channel_code == "ACQ.SYSTEM_ERROR"


def test_cancelling_a_trade_alipay_never_saw_is_order_not_found(alipay_adapter, alipay_merchant):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.reverse_payment(ref(alipay_merchant, "R6-never-created"))
    assert not isinstance(caught.value, ChannelUnknown)
    assert (caught.value.code, caught.value.permanent) == ("order_not_found", True)


# --- refunds ----------------------------------------------------------------------------------------------------
def paid_trade(adapter, sub, out_trade_no) -> TradeRef:
    adapter.create_payment(order(sub, out_trade_no, "alipay.barcode", auth_code=SUCCESS_CODE))
    return ref(sub, out_trade_no)


def refund_of(trade: TradeRef, out_refund_no: str, amount: int) -> RefundRequest:
    return RefundRequest(trade=trade, out_refund_no=out_refund_no, amount=amount, total_amount=1234, reason="断货")


def test_a_partial_refund_succeeds_and_repeating_it_moves_no_more_money(alipay_adapter, alipay_merchant):
    trade = paid_trade(alipay_adapter, alipay_merchant, "F1")
    done = alipay_adapter.refund(refund_of(trade, "F1-r1", 234))
    assert (done.state, done.amount, done.raw["fund_change"]) == (RefundState.SUCCEEDED, 234, "Y")
    again = alipay_adapter.refund(refund_of(trade, "F1-r1", 234))
    assert (again.state, again.amount) == (RefundState.SUCCEEDED, 234)
    queried = alipay_adapter.query_refund(trade=trade, out_refund_no="F1-r1")
    assert (queried.state, queried.amount) == (RefundState.SUCCEEDED, 234)
    assert queried.succeeded_at is not None
    assert alipay_adapter.query_payment(trade).state == TradeState.SUCCEEDED  # still refundable: 10.00 left


def test_refunds_beyond_the_paid_amount_or_reusing_a_number_differently_are_refused(alipay_adapter, alipay_merchant):
    trade = paid_trade(alipay_adapter, alipay_merchant, "F2")
    alipay_adapter.refund(refund_of(trade, "F2-r1", 1000))
    with pytest.raises(ChannelError) as too_much:
        alipay_adapter.refund(refund_of(trade, "F2-r2", 235))
    assert (too_much.value.code, too_much.value.channel_code) == ("refund_exceeds", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    with pytest.raises(ChannelError) as reused:
        alipay_adapter.refund(refund_of(trade, "F2-r1", 999))
    assert reused.value.channel_code == "ACQ.DISCORDANT_REPEAT_REQUEST"
    full = alipay_adapter.refund(refund_of(trade, "F2-r3", 234))
    assert full.state == RefundState.SUCCEEDED
    # Fully refunded: TRADE_CLOSED at Alipay, but it was paid, so it stays a success for us (B.5 table).
    assert alipay_adapter.query_payment(trade).state == TradeState.SUCCEEDED


def test_refunding_an_unpaid_trade_is_refused(alipay_adapter, alipay_merchant):
    alipay_adapter.create_payment(order(alipay_merchant, "F3", "alipay.jsapi", payer_id="2088000000000001"))
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.refund(refund_of(ref(alipay_merchant, "F3"), "F3-r1", 100))
    assert caught.value.channel_code == "ACQ.TRADE_STATUS_ERROR"


def test_an_unknown_refund_is_not_found(alipay_adapter, alipay_merchant):
    trade = paid_trade(alipay_adapter, alipay_merchant, "F4")
    assert alipay_adapter.query_refund(trade=trade, out_refund_no="nope").state == RefundState.NOT_FOUND
    assert alipay_adapter.query_refund(trade=ref(alipay_merchant, "no-trade"),
                                       out_refund_no="nope").state == RefundState.NOT_FOUND


def test_a_slow_refund_is_processing_until_alipay_finishes_it(alipay_adapter, alipay_merchant, alipay_config,
                                                              simulator_server):
    settings_for(simulator_server, alipay_config.app_id, refund_delay_seconds=0.3)
    trade = paid_trade(alipay_adapter, alipay_merchant, "F5")
    started = alipay_adapter.refund(refund_of(trade, "F5-r1", 100))
    assert (started.state, started.amount) == (RefundState.PROCESSING, 100)
    time.sleep(0.6)
    assert alipay_adapter.query_refund(trade=trade, out_refund_no="F5-r1").state == RefundState.SUCCEEDED


# --- our keys, their keys ----------------------------------------------------------------------------------------
def test_a_request_signed_with_the_wrong_key_gets_alipays_signed_refusal(alipay_config, alipay_merchant,
                                                                        simulator_server):
    other = provision(simulator_server.base_url, name="other keys")
    wrong = AlipayAdapter(replace(alipay_config, app_private_key=other["app_private_key"]),
                          base_url=simulator_server.base_url + "/alipay")
    with pytest.raises(ChannelError) as caught:
        wrong.query_payment(ref(alipay_merchant, "K1"))
    assert (caught.value.code, caught.value.channel_code) == ("invalid_signature", "isv.invalid-signature")
    assert not isinstance(caught.value, ChannelUnknown)  # Alipay said so, signed: a definite refusal


def test_an_answer_that_does_not_verify_with_the_alipay_key_is_unknown(alipay_config, alipay_merchant,
                                                                       simulator_server):
    other = provision(simulator_server.base_url, name="other alipay key")
    mistrusting = AlipayAdapter(replace(alipay_config, alipay_public_key=other["alipay_public_key"]),
                                base_url=simulator_server.base_url + "/alipay")
    with pytest.raises(ChannelUnknown) as caught:
        mistrusting.create_payment(order(alipay_merchant, "K2"))
    assert caught.value.code == "invalid_signature"


def test_an_unknown_app_gets_an_unsigned_refusal_which_is_not_trusted(alipay_config, alipay_merchant,
                                                                      simulator_server):
    ghost = AlipayAdapter(replace(alipay_config, app_id="2021999999999999"),
                          base_url=simulator_server.base_url + "/alipay")
    with pytest.raises(ChannelUnknown) as caught:
        ghost.query_payment(ref(alipay_merchant, "K3"))
    assert caught.value.code == "invalid_signature"


# --- OAuth (§E) -----------------------------------------------------------------------------------------------------
def test_oauth_auth_base_yields_the_payer_user_id_once(alipay_adapter, alipay_merchant):
    url = alipay_adapter.oauth_authorize_url(redirect_uri="https://pay.example/qr/abc?x=1", state="csrf-1")
    assert "/oauth2/publicAppAuthorize.htm?" in url and "scope=auth_base" in url
    redirect = requests.get(url + "&payer_id=2088000000000099", allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    back = parse_qs(urlsplit(redirect.headers["Location"]).query)
    assert back["state"] == ["csrf-1"] and back["x"] == ["1"]
    assert alipay_adapter.oauth_payer_id(code=back["auth_code"][0]) == "2088000000000099"
    with pytest.raises(ChannelError) as reused:
        alipay_adapter.oauth_payer_id(code=back["auth_code"][0])
    assert reused.value.channel_code == "isv.code-invalid"
    created = alipay_adapter.create_payment(order(alipay_merchant, "O1", "alipay.jsapi", payer_id="2088000000000099"))
    assert created.channel_trade_no


def test_oauth_on_the_real_platform_goes_to_openauth():
    config = AlipayConfig(app_id="2021000000000001", app_private_key="(unused)", alipay_public_key="(unused)")
    adapter = AlipayAdapter(config, base_url="https://openapi.alipay.com")
    url = adapter.oauth_authorize_url(redirect_uri="https://pay.example/cb", state="s")
    assert url.startswith("https://openauth.alipay.com/oauth2/publicAppAuthorize.htm?app_id=2021000000000001")

"""BankAdapter trade verbs against the bank simulator over real HTTP (docs/channels/bank.md §6, §7)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from channels.adapters.bank import BankAdapter
from channels.adapters.base import RefundRequest, RefundState, TradeState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.simulators.bank import provision
from tests.channels.test_bank_helpers import (
    control,
    fault,
    new_bank,
    open_merchant,
    out_no,
    pay,
    payment,
    ref,
)


@pytest.fixture(scope="module")
def bank(simulator_server) -> BankAdapter:
    """One account for the module (key generation is the slow part); each test gets its own merchant, and
    faults are scoped to that merchant's mch_no."""
    return new_bank(simulator_server)


@pytest.fixture
def merchant(bank):
    return open_merchant(bank)


# --- creating ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("product", ["wechat.native", "alipay.qr", "unionpay.qr"])
def test_it_creates_a_qr_payment_that_the_payer_can_open(bank, merchant, product):
    result = bank.create_payment(payment(merchant, product))
    assert result.state == TradeState.PENDING
    assert result.channel_trade_no.startswith("B")
    page = control(bank, "/_payer/?" + result.pay_params["code_url"].split("?", 1)[1], method="GET")
    assert page.status_code == 200 and "西湖龙井" in page.text


def test_it_returns_wechat_invoke_parameters_for_jsapi_and_mini_programs(bank, merchant):
    for product in ("wechat.jsapi", "wechat.mini"):
        result = bank.create_payment(payment(merchant, product, payer_id="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
        jsapi = result.pay_params["jsapi"]
        assert jsapi["appId"] == merchant.sub_appid
        assert jsapi["package"].startswith("prepay_id=")
        assert result.raw["trade_type"] == ("JSAPI" if product == "wechat.jsapi" else "MINIAPP")


def test_it_returns_the_alipay_bridge_argument_for_alipay_jsapi(bank, merchant):
    result = bank.create_payment(payment(merchant, "alipay.jsapi", payer_id="2088102146225135"))
    assert result.pay_params["jsapi"] == {"tradeNO": result.raw["channel_trade_no"]}
    assert result.pay_params["trade_no"] == result.raw["channel_trade_no"]


def test_a_unionpay_qr_payment_with_a_payer_id_becomes_a_unionpay_js_payment(bank, merchant):
    result = bank.create_payment(payment(merchant, "unionpay.qr", payer_id="UP1234567890"))
    assert result.raw["trade_type"] == "JSAPI"
    assert "/_payer/?code=" in result.pay_params["redirect_url"]


def test_a_retried_create_returns_the_same_trade_and_a_changed_one_is_refused(bank, merchant):
    request = payment(merchant)
    first = bank.create_payment(request)
    again = bank.create_payment(request)
    assert again.channel_trade_no == first.channel_trade_no
    assert again.pay_params == first.pay_params
    with pytest.raises(ChannelError) as refused:
        bank.create_payment(replace(request, amount=request.amount + 1))
    assert refused.value.channel_code == "OUT_TRADE_NO_USED"
    assert refused.value.code == "invalid_params"


def test_a_product_the_merchant_has_not_opened_is_refused(bank):
    merchant = open_merchant(bank, products=["WECHAT_NATIVE"])
    with pytest.raises(ChannelError) as refused:
        bank.create_payment(payment(merchant, "alipay.qr"))
    assert (refused.value.channel_code, refused.value.code) == ("NO_PERMISSION", "no_permission")


def test_a_limited_merchant_cannot_take_payments(bank, merchant):
    resp = control(bank, f"/_control/merchants/{merchant.sub_mchid}", {"org_no": bank.config.org_no,
                                                                       "state": "LIMITED"})
    assert resp.status_code == 200
    with pytest.raises(ChannelError) as refused:
        bank.create_payment(payment(merchant))
    assert (refused.value.channel_code, refused.value.code, refused.value.permanent) == \
        ("MCH_LIMITED", "merchant_limited", True)


# --- payment codes (§6.3, §13.2) --------------------------------------------------------------------------
@pytest.mark.parametrize("product,code", [("wechat.barcode", "134567890123456780"),
                                          ("alipay.barcode", "281234567890123451"),
                                          ("unionpay.barcode", "6212345678901234562")])
def test_a_payment_code_ending_0_to_4_is_paid_at_once(bank, merchant, product, code):
    result = bank.create_payment(payment(merchant, product, auth_code=code, amount=5850))
    assert result.state == TradeState.SUCCEEDED
    assert result.amount == 5850
    assert result.paid_at is not None
    assert result.sub_mchid == merchant.sub_mchid


def test_a_payment_code_ending_5_waits_for_the_payer_and_then_succeeds(bank, merchant):
    request = payment(merchant, "wechat.barcode", auth_code="134567890123456785")
    assert bank.create_payment(request).state == TradeState.USER_PAYING
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.USER_PAYING
    pay(bank, request.out_trade_no)  # the payer enters the password
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.SUCCEEDED


def test_a_payment_code_ending_5_resolves_by_itself_after_userpaying_seconds(simulator_server):
    bank = new_bank(simulator_server, userpaying_seconds=0.3)
    merchant = open_merchant(bank)
    request = payment(merchant, "alipay.barcode", auth_code="281234567890123455")
    assert bank.create_payment(request).state == TradeState.USER_PAYING
    time.sleep(0.4)
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.SUCCEEDED


def test_a_payment_code_ending_6_ends_in_failure(bank, merchant):
    request = payment(merchant, "wechat.barcode", auth_code="134567890123456786")
    assert bank.create_payment(request).state == TradeState.USER_PAYING
    pay(bank, request.out_trade_no, outcome="fail")
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.FAILED


@pytest.mark.parametrize("code,expected", [("134567890123456787", "insufficient_balance"),
                                           ("134567890123456788", "auth_code_invalid"),
                                           ("281234567890123450", "auth_code_invalid")])  # Alipay code, WeChat
def test_a_payer_refusal_is_a_failed_payment_not_an_error(bank, merchant, code, expected):
    request = payment(merchant, "wechat.barcode", auth_code=code)
    result = bank.create_payment(request)
    assert (result.state, result.failure_code) == (TradeState.FAILED, expected)
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.FAILED


def test_a_payment_code_ending_9_is_unknown_although_the_bank_charged_it(bank, merchant):
    request = payment(merchant, "unionpay.barcode", auth_code="6212345678901234569")
    with pytest.raises(ChannelUnknown) as unknown:
        bank.create_payment(request)
    assert unknown.value.channel_code == "SYSTEM_ERROR"
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.SUCCEEDED


# --- query / close / reverse ------------------------------------------------------------------------------
def test_query_reports_a_paid_trade_with_its_payer(bank, merchant):
    request = payment(merchant, attach="table 7")
    bank.create_payment(request)
    pay(bank, request.out_trade_no, payer_id="oPayer0001")
    result = bank.query_payment(ref(merchant, request.out_trade_no))
    assert (result.state, result.payer_id, result.amount, result.out_trade_no) == \
        (TradeState.SUCCEEDED, "oPayer0001", 1200, request.out_trade_no)
    assert result.raw["attach"] == "table 7"


def test_query_of_an_unknown_trade_is_not_found(bank, merchant):
    assert bank.query_payment(ref(merchant, out_no())).state == TradeState.NOT_FOUND


def test_close_closes_an_unpaid_trade_and_refuses_a_paid_one(bank, merchant):
    unpaid, paid = payment(merchant), payment(merchant)
    bank.create_payment(unpaid)
    bank.create_payment(paid)
    pay(bank, paid.out_trade_no)
    bank.close_payment(ref(merchant, unpaid.out_trade_no))
    assert bank.query_payment(ref(merchant, unpaid.out_trade_no)).state == TradeState.CLOSED
    with pytest.raises(ChannelError) as refused:
        bank.close_payment(ref(merchant, paid.out_trade_no))
    assert refused.value.code == "order_paid"
    # a closed trade can no longer be paid by the payer
    assert control(bank, "/_payer/pay", {"org_no": bank.config.org_no, "out_trade_no": unpaid.out_trade_no}) \
        .status_code == 409


def test_reverse_returns_a_paid_payment_code_trade(bank, merchant):
    request = payment(merchant, "wechat.barcode", auth_code="134567890123456781")
    bank.create_payment(request)
    result = bank.reverse_payment(ref(merchant, request.out_trade_no))
    assert result.state == TradeState.REVERSED
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.REVERSED


def test_reverse_is_refused_for_qr_trades(bank, merchant):
    request = payment(merchant)
    bank.create_payment(request)
    with pytest.raises(ChannelError) as refused:
        bank.reverse_payment(ref(merchant, request.out_trade_no))
    assert refused.value.channel_code == "REVERSE_NOT_ALLOWED"


# --- refunds (§7) -----------------------------------------------------------------------------------------
def _paid(bank, merchant, amount=1200):
    request = payment(merchant, amount=amount)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    return ref(merchant, request.out_trade_no)


def test_a_refund_is_processing_then_succeeds(bank, merchant):
    trade = _paid(bank, merchant)
    result = bank.refund(RefundRequest(trade=trade, out_refund_no=out_no("R"), amount=200, total_amount=1200))
    assert (result.state, result.amount) == (RefundState.PROCESSING, 200)
    queried = bank.query_refund(trade=trade, out_refund_no=result.out_refund_no)
    assert queried.state == RefundState.SUCCEEDED
    assert queried.succeeded_at is not None
    assert bank.query_payment(trade).raw["refunded_amount"] == 200


def test_a_repeated_refund_request_is_the_same_refund(bank, merchant):
    trade = _paid(bank, merchant)
    request = RefundRequest(trade=trade, out_refund_no=out_no("R"), amount=300, total_amount=1200)
    first, again = bank.refund(request), bank.refund(request)
    assert first.channel_refund_no == again.channel_refund_no
    assert bank.query_payment(trade).raw["refunded_amount"] == 300


def test_refunds_beyond_the_paid_amount_are_refused(bank, merchant):
    trade = _paid(bank, merchant)
    bank.refund(RefundRequest(trade=trade, out_refund_no=out_no("R"), amount=1000, total_amount=1200))
    with pytest.raises(ChannelError) as refused:
        bank.refund(RefundRequest(trade=trade, out_refund_no=out_no("R"), amount=201, total_amount=1200))
    assert (refused.value.channel_code, refused.value.code) == ("REFUND_EXCEEDED", "refund_exceeds")


def test_an_unpaid_trade_cannot_be_refunded(bank, merchant):
    request = payment(merchant)
    bank.create_payment(request)
    with pytest.raises(ChannelError) as refused:
        bank.refund(RefundRequest(trade=ref(merchant, request.out_trade_no), out_refund_no=out_no("R"), amount=1,
                                  total_amount=1200))
    assert refused.value.channel_code == "TRADE_NOT_REFUNDABLE"


def test_an_abnormal_refund_is_reported_as_abnormal(simulator_server):
    bank = new_bank(simulator_server, refund_outcome="ABNORMAL")
    merchant = open_merchant(bank)
    trade = _paid(bank, merchant)
    result = bank.refund(RefundRequest(trade=trade, out_refund_no=out_no("R"), amount=100, total_amount=1200))
    queried = bank.query_refund(trade=trade, out_refund_no=result.out_refund_no)
    assert (queried.state, queried.failure_code) == (RefundState.ABNORMAL, "ABNORMAL")
    assert queried.failure_message


def test_query_of_an_unknown_refund_is_not_found(bank, merchant):
    trade = _paid(bank, merchant)
    assert bank.query_refund(trade=trade, out_refund_no=out_no("R")).state == RefundState.NOT_FOUND


# --- faults (core.py) -------------------------------------------------------------------------------------
def test_a_timeout_is_unknown_and_comes_back_quickly(simulator_server):
    bank = new_bank(simulator_server, read_timeout=0.3)
    merchant = open_merchant(bank)
    fault(bank, "timeout", seconds=1.5)
    started = time.monotonic()
    with pytest.raises(ChannelUnknown):
        bank.create_payment(payment(merchant))
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("name", ["http_500", "http_503"])
def test_a_server_error_is_unknown(bank, merchant, name):
    fault(bank, name, scope=merchant.sub_mchid)
    with pytest.raises(ChannelUnknown) as unknown:
        bank.query_payment(ref(merchant, out_no()))
    assert unknown.value.http_status == int(name[-3:])


def test_a_wrongly_signed_answer_is_unknown_even_when_it_says_paid(bank, merchant):
    request = payment(merchant)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    fault(bank, "bad_signature", scope=merchant.sub_mchid)
    with pytest.raises(ChannelUnknown, match="signature"):
        bank.query_payment(ref(merchant, request.out_trade_no))
    assert bank.query_payment(ref(merchant, request.out_trade_no)).state == TradeState.SUCCEEDED


def test_a_business_error_is_a_channel_error_with_the_sub_code(bank, merchant):
    fault(bank, "business_error", scope=merchant.sub_mchid, code="MCH_LIMITED", message="商户已被风控限制")
    with pytest.raises(ChannelError) as refused:
        bank.create_payment(payment(merchant))
    assert not isinstance(refused.value, ChannelUnknown)
    assert (refused.value.channel_code, refused.value.channel_message, refused.value.code) == \
        ("MCH_LIMITED", "商户已被风控限制", "merchant_limited")


def test_a_system_error_business_answer_is_unknown(bank, merchant):
    fault(bank, "business_error", scope=merchant.sub_mchid, code="SYSTEM_ERROR")
    with pytest.raises(ChannelUnknown):
        bank.refund(RefundRequest(trade=ref(merchant, out_no()), out_refund_no=out_no("R"), amount=1,
                                  total_amount=1))


def test_latency_below_the_timeout_still_answers(bank, merchant):
    fault(bank, "latency", scope=merchant.sub_mchid, seconds=0.2)
    assert bank.query_payment(ref(merchant, out_no())).state == TradeState.NOT_FOUND


# --- keys and accounts (§3, §13.1) ------------------------------------------------------------------------
def test_the_bank_rejects_a_request_signed_with_another_key(simulator_server, bank, merchant):
    stranger = provision(simulator_server.base_url, name="stranger")
    forged = BankAdapter(replace(bank.config, private_key_pem=stranger["private_key_pem"]), base_url=bank.base_url)
    with pytest.raises(ChannelError) as refused:
        forged.query_payment(ref(merchant, out_no()))
    assert (refused.value.channel_code, refused.value.code) == ("SIGN_ERROR", "invalid_signature")


def test_an_answer_for_an_unknown_org_is_unsigned_and_therefore_unknown(bank, merchant):
    lost = BankAdapter(replace(bank.config, org_no="ORG0000000000"), base_url=bank.base_url)
    with pytest.raises(ChannelUnknown):
        lost.query_payment(ref(merchant, out_no()))


def test_two_bank_accounts_keep_their_trades_apart(simulator_server):
    bank_a, bank_b = new_bank(simulator_server, name="Bank A"), new_bank(simulator_server, name="Bank B")
    assert bank_a.config.org_no != bank_b.config.org_no
    assert bank_a.config.bank_public_key_pem != bank_b.config.bank_public_key_pem
    merchant_a, merchant_b = open_merchant(bank_a), open_merchant(bank_b)
    shared_no = out_no()
    a = bank_a.create_payment(payment(merchant_a, out_trade_no=shared_no, amount=100))
    b = bank_b.create_payment(payment(merchant_b, out_trade_no=shared_no, amount=999))
    assert a.channel_trade_no != b.channel_trade_no
    pay(bank_a, shared_no)
    assert bank_a.query_payment(ref(merchant_a, shared_no)).state == TradeState.SUCCEEDED
    assert bank_b.query_payment(ref(merchant_b, shared_no)).state == TradeState.PENDING
    assert bank_b.query_payment(ref(merchant_b, shared_no)).amount == 999
    # Bank A's merchant does not exist at Bank B
    with pytest.raises(ChannelError) as refused:
        bank_b.query_payment(ref(merchant_a, shared_no))
    assert refused.value.channel_code == "MCH_NOT_EXIST"
    # and Bank B's key cannot verify Bank A's answers
    crossed = BankAdapter(replace(bank_a.config, bank_public_key_pem=bank_b.config.bank_public_key_pem,
                                  bank_key_id=bank_b.config.bank_key_id), base_url=bank_a.base_url)
    with pytest.raises(ChannelUnknown):
        crossed.query_payment(ref(merchant_a, shared_no))

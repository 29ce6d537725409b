"""WeChat Pay trade bills (A.12): downloaded from the simulator (apply, signed download, SHA1, gzip) and parsed
by header name; the parser against real-format samples, encodings and line endings, and fuzzed."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.adapters.base import RefundRequest, TradeRef
from channels.adapters.errors import ChannelError, ChannelUnknown, ParseError
from channels.adapters.wechatpay_bill import parse_trade_bill
from tests.channels.test_wechatpay_faults import fault
from tests.channels.test_wechatpay_payments import SUB, otn, payment, sim

CST = dt.timezone(dt.timedelta(hours=8))

# The ALL-type sample of A.12 (a real dump, direct merchant), plus its summary.
SAMPLE = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,"
    "代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注\n"
    "`2021-01-28 17:07:11,`wx81be3101902f7cb2,`1601959334,`0,`,`4200000925202101284997714292,`S20210128170702357723,"
    "`ofyak5qR_1wYsC99CsWA6R9MJazA,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`for testing,"
    "`cipher code,`0.00000,`1.00%,`0.01,`0.00,`\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
    "`3,`0.03,`0.00,`0.00,`0.00000,`0.03,`0.00\n"
)


def test_it_parses_the_real_sample_of_a12():
    [line] = parse_trade_bill(SAMPLE.encode())
    assert (line.kind, line.out_trade_no, line.channel_trade_no, line.amount, line.fee, line.state) == (
        "payment", "S20210128170702357723", "4200000925202101284997714292", 1, 0, "SUCCESS")
    assert line.sub_mchid == "1601959334"  # direct merchant: 特约商户号 is `0, the mchid is the merchant
    assert line.trade_time == dt.datetime(2021, 1, 28, 17, 7, 11, tzinfo=CST)
    assert line.raw["商品名称"] == "for testing"


@pytest.mark.parametrize("variant", ["bom", "crlf", "bom_crlf", "cr"])
def test_it_tolerates_a_bom_and_any_line_ending(variant):
    text = SAMPLE
    if "crlf" in variant:
        text = text.replace("\n", "\r\n")
    if variant == "cr":
        text = text.replace("\n", "\r")
    if "bom" in variant:
        text = "\ufeff" + text
    assert [line.out_trade_no for line in parse_trade_bill(text.encode())] == ["S20210128170702357723"]


def test_it_maps_columns_by_header_name_not_by_position():
    header, row, *rest = SAMPLE.splitlines()
    names, values = header.split(","), row[1:].split(",`")
    order = list(reversed(range(len(names))))
    shuffled = [",".join(names[i] for i in order), ",".join("`" + values[i] for i in order), *rest]
    [line] = parse_trade_bill("\n".join(shuffled).encode())
    assert (line.out_trade_no, line.amount, line.sub_mchid) == ("S20210128170702357723", 1, "1601959334")


def test_it_keeps_a_comma_inside_a_product_name():
    text = SAMPLE.replace("`for testing", "`茶, 250g")
    assert parse_trade_bill(text.encode())[0].raw["商品名称"] == "茶, 250g"


def test_it_rounds_the_five_decimal_fee_half_up_to_the_fen():
    text = SAMPLE.replace("`0.00000,`1.00%", "`0.00500,`1.00%")
    assert parse_trade_bill(text.encode())[0].fee == 1


@pytest.mark.parametrize(("content", "message"), [
    (SAMPLE.encode("gbk"), "not UTF-8"),
    (SAMPLE.split("总交易单数")[0].encode(), "truncated"),
    (SAMPLE.replace("`NATIVE,", "NATIVE,").encode(), "fields for"),
    (SAMPLE.replace("`SUCCESS,", "`WHATEVER,").encode(), "交易状态"),
    (SAMPLE.replace("`1.00%,`0.01,", "`1.00%,`0.0x,").encode(), "not an amount"),
    (SAMPLE.replace("商户订单号,", "订单号,").encode(), "lacks 商户订单号"),
    (b"", "empty"),
])
def test_it_refuses_a_malformed_bill_with_a_clear_reason(content, message):
    with pytest.raises(ParseError, match=message):
        parse_trade_bill(content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),
    st.integers(min_value=0, max_value=len(SAMPLE.encode())).map(lambda n: SAMPLE.encode()[:n]),
    st.lists(st.text(alphabet="`,0123456789.-\r\n交易状态SUCCESREFND总单数 ", max_size=40), max_size=6).map(
        lambda parts: (SAMPLE.splitlines()[0] + "\n" + "\n".join(parts)).encode()),
))
def test_fuzzed_bills_only_raise_parse_errors(content):
    try:
        lines = parse_trade_bill(content)
    except ParseError:
        return
    assert all(line.kind in ("payment", "refund") and line.amount >= 0 for line in lines)


def _today() -> dt.date:
    return dt.datetime.now(CST).date()


def test_it_downloads_and_parses_the_bill_of_the_trades_the_simulator_saw(local_midday, simulator_server,
                                                                         fresh_wechatpay_adapter):
    adapter = fresh_wechatpay_adapter
    sim(simulator_server, "POST", f"/_control/accounts/{adapter.config.sp_mchid}/settings",
        json={"refund_delay_seconds": 0})
    paid = payment("wechat.barcode", auth_code="134567890123456781", amount=10000)
    channel_no = adapter.create_payment(paid).channel_trade_no
    unpaid = payment("wechat.native")
    adapter.create_payment(unpaid)
    out_refund_no = otn("R")
    adapter.refund(RefundRequest(trade=TradeRef(sub_merchant=SUB, out_trade_no=paid.out_trade_no),
                                 out_refund_no=out_refund_no, amount=2500, total_amount=10000))
    lines = adapter.download_bill(bill_date=_today())
    by_kind = {line.kind: line for line in lines}
    assert len(lines) == 2 and unpaid.out_trade_no not in {line.out_trade_no for line in lines}
    payment_line, refund_line = by_kind["payment"], by_kind["refund"]
    assert (payment_line.out_trade_no, payment_line.channel_trade_no, payment_line.amount, payment_line.fee,
            payment_line.sub_mchid) == (paid.out_trade_no, channel_no, 10000, 60, SUB.sub_mchid)
    assert (refund_line.out_refund_no, refund_line.amount, refund_line.fee) == (out_refund_no, 2500, -15)
    assert adapter.download_bill(bill_date=_today(), sub_mchid="1600000000") == []  # no trades: no bill


@pytest.mark.parametrize(("damage", "said"), [("bad_signature", "hash_value"), ("truncated_file", "gzip")])
def test_a_bill_file_damaged_on_the_way_is_unknown_and_can_be_asked_again(local_midday, simulator_server,
                                                                         fresh_wechatpay_adapter, damage, said):
    # A.12: the file is unsigned and hash_value of the signed answer vouches for a whole one. Bytes that miss it
    # (changed, or a gzip cut short) are a download gone wrong, not WeChat Pay's verdict on the bill — unknown, as
    # the bank's file that misses its file_sha256 (test_bank_bills). It was a permanent SignatureError.
    adapter = fresh_wechatpay_adapter
    paid = payment("wechat.barcode", auth_code="134567890123456781")
    adapter.create_payment(paid)
    fault(simulator_server, {"fault": damage, "match": {"path": "^/v3/billdownload/file$"}})
    with pytest.raises(ChannelUnknown, match=said) as caught:
        adapter.download_bill(bill_date=_today())
    assert caught.value.retryable
    assert paid.out_trade_no in {line.out_trade_no for line in adapter.download_bill(bill_date=_today())}


@pytest.mark.parametrize("status", [403, 404, 302])
def test_a_bill_download_answered_by_a_page_without_a_wechat_code_is_unknown_and_can_be_asked_again(
        local_midday, simulator_server, fresh_wechatpay_adapter, status):
    # A.6: only a WeChat Pay error code is its refusal; a proxy's page says nothing about the bill (design §5 rule 2).
    adapter = fresh_wechatpay_adapter
    paid = payment("wechat.barcode", auth_code="134567890123456781")
    adapter.create_payment(paid)
    fault(simulator_server, {"fault": "html_error", "status": status, "match": {"path": "^/v3/billdownload/file$"}})
    with pytest.raises(ChannelUnknown) as caught:
        adapter.download_bill(bill_date=_today())
    assert caught.value.retryable and caught.value.http_status == status
    assert paid.out_trade_no in {line.out_trade_no for line in adapter.download_bill(bill_date=_today())}


def test_a_bill_download_refused_with_a_wechat_code_stays_that_refusal(simulator_server, fresh_wechatpay_adapter):
    adapter = fresh_wechatpay_adapter
    adapter.create_payment(payment("wechat.barcode", auth_code="134567890123456781"))
    fault(simulator_server, {"fault": "business_error", "code": "NO_AUTH", "message": "无权下载该账单", "status": 403,
                             "match": {"path": "^/v3/billdownload/file$"}})
    with pytest.raises(ChannelError) as caught:
        adapter.download_bill(bill_date=_today())
    assert not isinstance(caught.value, ChannelUnknown)
    assert (caught.value.channel_code, caught.value.http_status) == ("NO_AUTH", 403)

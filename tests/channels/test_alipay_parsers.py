"""Fuzzing the Alipay parsers: whatever arrives, only ParseError or SignatureError escapes (issue 3)."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.adapters.alipay import AlipayAdapter, AlipayConfig
from channels.adapters.alipay_bill import parse_bill_zip, parse_detail_text
from channels.adapters.base import CallbackEvent
from channels.adapters.errors import ParseError, SignatureError
from channels.simulators import alipay_keys

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
APP_ID = "2021000000000001"
TRADE_FIELDS = ("notify_time", "notify_type", "notify_id", "trade_no", "out_trade_no", "buyer_id", "seller_id",
                "trade_status", "total_amount", "gmt_payment", "gmt_refund", "out_biz_no", "refund_fee",
                "passback_params", "msg_method", "biz_content", "sign_type")


@pytest.fixture(scope="module")
def keys():
    return alipay_keys.generate_keypair()  # (private, public): plays Alipay's key for these tests


@pytest.fixture(scope="module")
def adapter(keys):
    app_private, _app_public = alipay_keys.generate_keypair()
    config = AlipayConfig(app_id=APP_ID, app_private_key=app_private, alipay_public_key=keys[1])
    return AlipayAdapter(config, base_url="http://127.0.0.1:9/alipay")


def signed_body(private_pem: str, params: dict[str, str]) -> bytes:
    params = {k: v for k, v in params.items() if v != ""}
    return urlencode({**params, "sign": alipay_keys.sign(private_pem, alipay_keys.notify_content(params))}).encode()


def parse_or_expected_error(adapter, body: bytes) -> CallbackEvent | None:
    try:
        return adapter.parse_callback(headers={"content-type": "application/x-www-form-urlencoded"}, body=body)
    except (ParseError, SignatureError):
        return None


@FUZZ
@given(body=st.binary(max_size=600))
def test_random_bytes_never_escape_as_another_error(adapter, body):
    assert parse_or_expected_error(adapter, body) is None  # unsigned garbage never parses


@FUZZ
@given(params=st.dictionaries(st.sampled_from(TRADE_FIELDS + ("sign", "app_id")), st.text(max_size=40), max_size=12))
def test_unsigned_or_wrongly_signed_forms_are_rejected(adapter, params):
    assert parse_or_expected_error(adapter, urlencode(params).encode()) is None


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional={name: st.one_of(
    st.text(max_size=30), st.sampled_from(["TRADE_SUCCESS", "TRADE_CLOSED", "WAIT_BUYER_PAY", "1.00", "-1",
                                           "2024-05-01 12:00:00", "2024-05-01 12:00:00.123", "NaN", "Infinity", "1e999999", "{}",
                                           "trade_status_sync", "ant.merchant.expand.indirect.zft.passed",
                                           '{"order_id":"1","smid":"2088"}', "RSA", "RSA2"]))
    for name in TRADE_FIELDS}))
def test_correctly_signed_notifies_with_any_content_parse_or_fail_cleanly(adapter, keys, fields):
    # Signed with the key the adapter trusts, so the fuzz reaches the field parsing behind the signature check.
    event = parse_or_expected_error(adapter, signed_body(keys[0], {"app_id": APP_ID, **fields}))
    if event is not None:
        assert event.event_id == fields["notify_id"]


def test_a_well_formed_signed_notify_parses(adapter, keys):
    body = signed_body(keys[0], {
        "app_id": APP_ID, "notify_id": "n1", "notify_type": "trade_status_sync", "out_trade_no": "T1",
        "trade_status": "TRADE_SUCCESS", "total_amount": "1.00", "gmt_payment": "2024-05-01 12:00:00",
        "sign_type": "RSA2"})
    event = adapter.parse_callback(headers={}, body=body)
    assert (event.payment.amount, event.payment.out_trade_no) == (100, "T1")
    with pytest.raises(SignatureError):
        adapter.parse_callback(headers={}, body=body.replace(b"total_amount=1.00", b"total_amount=9.00"))


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


HEADER = "支付宝交易号,商户订单号,业务类型,完成时间,订单金额（元）,服务费（元）,退款批次号/请求号"


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_are_not_a_bill(data):
    with pytest.raises(ParseError):
        parse_bill_zip(data)


@FUZZ
@given(rows=st.lists(st.lists(st.one_of(st.text(max_size=12), st.sampled_from(
    ["交易", "退款", "1.00", "-0.01", "2024-05-01 12:00:00", "\t", '"', "#"])), max_size=8), max_size=5),
    encoding=st.sampled_from(["gbk", "utf-8", "utf-16"]))
def test_any_bill_content_parses_or_fails_cleanly(rows, encoding):
    text = "#支付宝业务明细查询\n#账号：[20880211096256330156]\n#---业务明细列表---\n" + HEADER + "\n"
    text += "\n".join(",".join(row) for row in rows)
    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        lines = parse_bill_zip(_zip({"bill.csv": content}))
    except ParseError:
        return
    assert all(line.amount >= 0 and line.kind in ("payment", "refund") for line in lines)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=2000))
def test_a_truncated_bill_zip_is_a_parse_error_or_still_whole(cut):
    text = ("#账号：[20880211096256330156]\n#业务明细列表\n" + HEADER + "\n"
            + "2024\t,T1\t,交易\t,2024-05-01 12:00:00,1.00,-0.01,\t\n")
    data = _zip({"a_业务明细.csv": text.encode("gbk")})
    try:
        lines = parse_bill_zip(data[:cut])
    except ParseError:
        return
    assert [line.out_trade_no for line in lines] == ["T1"]


@FUZZ
@given(text=st.text(max_size=300))
def test_any_detail_text_parses_or_fails_cleanly(text):
    try:
        parse_detail_text(text)
    except ParseError:
        pass

"""Hypothesis: whatever reaches the bank adapter's parsers, only ParseError or SignatureError escape."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.adapters.bank import BankAdapter, BankConfig
from channels.adapters.bank_bill import parse_bill
from channels.adapters.base import CallbackEvent
from channels.adapters.errors import ParseError, SignatureError
from channels.adapters.http import without_nul
from channels.simulators import bank_wire as sim_wire

BANK_PRIVATE, BANK_PUBLIC = sim_wire.new_key_pair()
CONFIG = BankConfig(org_no="ORG2026000001", key_id="K1", private_key_pem="", bank_key_id="BK1",
                    bank_public_key_pem=BANK_PUBLIC)
ADAPTER = BankAdapter(CONFIG, base_url="http://bank.invalid")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

leaves = st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | st.text(max_size=30)
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
FIELDS = ("notify_type", "notify_id", "trade_state", "refund_state", "apply_state", "total_amount", "refund_amount",
          "pay_time", "success_time", "mch_no", "out_trade_no", "trade_no", "user_id", "currency", "reject_reasons",
          "apply_id", "apply_no", "sign_url", "out_refund_no", "refund_no", "fail_reason", "trade_state_desc")
field_values = st.one_of(
    json_values,
    st.sampled_from(["PAY_RESULT", "REFUND_RESULT", "MERCHANT_APPLY", "SUCCESS", "NOTPAY", "PROCESSING", "REJECTED",
                     "FINISHED", "20261126103000", "2026112610300", "20261399999999", "N1"]),
)


def _signed(fields: dict) -> bytes:
    message = {**fields, "org_no": CONFIG.org_no, "key_id": CONFIG.bank_key_id, "sign_type": "RSA2"}
    message["sign"] = sim_wire.rsa2_sign(sim_wire.sign_content(message), BANK_PRIVATE)
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def _parse(body: bytes):
    try:
        return ADAPTER.parse_callback(headers={}, body=body)
    except (ParseError, SignatureError) as exc:
        return exc


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_a_notify_only_raise_parse_or_signature_errors(body):
    assert isinstance(_parse(body), ParseError | SignatureError)


# Mostly-valid envelopes and states, so the fuzz reaches the object mapping rather than stopping at notify_id.
envelopes = st.fixed_dictionaries({
    "notify_id": st.text(min_size=1, max_size=12),
    "notify_type": st.sampled_from(["PAY_RESULT", "REFUND_RESULT", "MERCHANT_APPLY"]),
}, optional={
    "trade_state": st.sampled_from(["SUCCESS", "NOTPAY", "REVOKED"]) | json_values,
    "refund_state": st.sampled_from(["SUCCESS", "PROCESSING", "ABNORMAL"]) | json_values,
    "apply_state": st.sampled_from(["FINISHED", "REJECTED", "WAIT_SIGN"]) | json_values,
})


@FUZZ
@given(envelopes, st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), field_values, max_size=10))
def test_a_correctly_signed_but_malformed_notify_is_a_parse_error_or_an_event(envelope, fields):
    fields = {**fields, **envelope}
    outcome = _parse(_signed(fields))
    assert not isinstance(outcome, SignatureError), outcome
    assert isinstance(outcome, CallbackEvent | ParseError), outcome
    if isinstance(outcome, CallbackEvent):
        # A NUL comes out as U+FFFD: the event is stored, and PostgreSQL's text holds no NUL (http.without_nul).
        assert outcome.event_id == without_nul(fields["notify_id"])


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=10), st.data())
def test_changing_one_byte_of_a_signed_notify_never_gets_through_unnoticed(fields, data):
    body = bytearray(_signed({**fields, "notify_id": "N1", "notify_type": "PAY_RESULT"}))
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    body[index] = (body[index] + data.draw(st.integers(min_value=1, max_value=255))) % 256
    outcome = _parse(bytes(body))
    # A change that leaves the signed values alone (whitespace; base64 padding bits of sign) may still verify;
    # a change to any signed value must not.
    if isinstance(outcome, CallbackEvent):
        original = json.loads(_signed({**fields, "notify_id": "N1", "notify_type": "PAY_RESULT"}))
        changed = json.loads(bytes(body))
        assert {k: v for k, v in changed.items() if k != "sign"} == {k: v for k, v in original.items() if k != "sign"}


GOOD_BILL = (
    "\ufeff#bank_bill,version=1.0,org_no=ORG1,bill_date=20261126,bill_type=TRADE,mch_no=,generated_at=20261127090000\r\n"
    "交易时间,机构号,商户号,终端号,支付渠道,交易类型,记录类型,商户订单号,银行订单号,渠道订单号,商户退款单号,银行退款单号,"
    "交易金额,手续费,结算金额,交易状态,商品名称,附加数据\r\n"
    "2026-11-26 10:35:11,ORG1,826581000000001,,WECHAT,JSAPI,PAY,A1,B1,42,,,12.00,0.03,11.97,SUCCESS,\"茶, 叶\",\r\n"
    "2026-11-26 16:20:05,ORG1,826581000000001,,WECHAT,JSAPI,REFUND,A1,B1,42,RA1,R1,-2.00,-0.01,-1.99,SUCCESS,茶,\r\n"
    "#total,rows=2,pay_count=1,pay_amount=12.00,refund_count=1,refund_amount=2.00,fee=0.02\r\n"
).encode("utf-8")


def _bill(data: bytes):
    try:
        return parse_bill(data)
    except ParseError as exc:
        return exc


def test_the_fuzz_baseline_bill_is_valid():
    assert [(line.kind, line.amount, line.fee) for line in parse_bill(GOOD_BILL)] == [("payment", 1200, 3),
                                                                                       ("refund", 200, 1)]


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_as_a_bill_only_raise_parse_errors(data):
    assert isinstance(_bill(data), list | ParseError)


@FUZZ
@given(st.integers(min_value=0, max_value=len(GOOD_BILL) - 1))
def test_a_truncated_bill_is_refused(cut):
    outcome = _bill(GOOD_BILL[:cut])
    # Cutting only the final line break leaves a complete file; anything shorter loses the footer or a row.
    if cut >= len(GOOD_BILL) - 2:
        assert isinstance(outcome, list)
    else:
        assert isinstance(outcome, ParseError)


@FUZZ
@given(st.integers(min_value=2, max_value=3), st.integers(min_value=0, max_value=17), st.text(max_size=12))
def test_a_bill_with_a_changed_cell_parses_or_is_refused_cleanly(row, column, value):
    lines = GOOD_BILL.decode("utf-8").split("\r\n")
    cells = next(csv.reader([lines[row]]))
    cells[column] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    lines[row] = out.getvalue()
    outcome = _bill("\r\n".join(lines).encode("utf-8"))
    assert isinstance(outcome, list | ParseError)
    if isinstance(outcome, list) and column in (12, 13):  # an amount that still adds up to the footer
        assert sum(line.amount for line in outcome if line.kind == "payment") == 1200


@pytest.mark.parametrize("encoding", ["gbk", "utf-16", "latin-1"])
def test_a_bill_in_another_encoding_is_refused(encoding):
    text = GOOD_BILL.decode("utf-8")
    outcome = _bill(text.encode(encoding, errors="replace"))
    assert isinstance(outcome, ParseError)

"""WeChat Pay callbacks: fired by the simulator at a loopback receiver, verified and decrypted by the adapter
(A.3, A.4, A.14, A.15), with the callback faults; and a fuzz of parse_callback."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.adapters.base import CallbackKind, RefundRequest, RefundState, TradeRef, TradeState
from channels.adapters.errors import ParseError, SignatureError
from channels.adapters.wechatpay import WechatPayAdapter, WechatPayConfig
from channels.simulators import wechatpay_crypto as sim_crypto
from tests.channels.test_wechatpay_faults import fault
from tests.channels.test_wechatpay_payments import SUB, otn, payment, sim


@pytest.fixture(autouse=True)
def no_stray_callbacks(simulator_server):
    """Cancel this test's pending callbacks: retries must not reach a later test's receiver on a reused port."""
    yield
    sim(simulator_server, "DELETE", "/_control/callbacks")


def pay_native(server, adapter, notify_url: str) -> str:
    request = payment("wechat.native", notify_url=notify_url)
    code_url = adapter.create_payment(request).pay_params["code_url"]
    assert sim(server, "POST", "/_payer/pay", json={"code_url": code_url}).status_code == 200
    return request.out_trade_no


def parse(adapter, delivery: dict):
    return adapter.parse_callback(headers=delivery["headers"], body=delivery["body"], path=delivery["path"])


def test_a_payment_callback_arrives_and_parses_into_a_succeeded_payment(simulator_server, wechatpay_adapter,
                                                                        callback_receiver):
    out_trade_no = pay_native(simulator_server, wechatpay_adapter, callback_receiver.url)
    [delivery] = callback_receiver.wait_for(1)
    assert delivery["headers"]["wechatpay-signature-type"] == "WECHATPAY2-SHA256-RSA2048"
    event = parse(wechatpay_adapter, delivery)
    assert event.kind == CallbackKind.PAYMENT and event.event_id.startswith("EV-")
    assert (event.payment.state, event.payment.out_trade_no, event.payment.amount, event.payment.sub_mchid) == (
        TradeState.SUCCEEDED, out_trade_no, 1234, SUB.sub_mchid)
    assert event.raw["event_type"] == "TRANSACTION.SUCCESS"
    assert event.payment.channel_trade_no == wechatpay_adapter.query_payment(
        TradeRef(sub_merchant=SUB, out_trade_no=out_trade_no)).channel_trade_no


def test_the_simulator_retries_until_the_callback_is_acknowledged(simulator_server, wechatpay_adapter,
                                                                  callback_receiver):
    nack = wechatpay_adapter.callback_ack(ok=False, message="busy", transient=True)
    callback_receiver.status, callback_receiver.body = nack.status, nack.body
    pay_native(simulator_server, wechatpay_adapter, callback_receiver.url)
    callback_receiver.wait_for(1)
    ack = wechatpay_adapter.callback_ack(ok=True)
    callback_receiver.status, callback_receiver.body = ack.status, ack.body
    sim(simulator_server, "POST", "/_control/flush")
    first, second = callback_receiver.wait_for(2)[:2]
    assert parse(wechatpay_adapter, first).event_id == parse(wechatpay_adapter, second).event_id
    sim(simulator_server, "POST", "/_control/flush")
    time.sleep(0.1)
    assert len(callback_receiver.requests) == 2  # acknowledged: no third try


def test_callback_acks_follow_a4(wechatpay_adapter):
    ok = wechatpay_adapter.callback_ack(ok=True)
    assert (ok.status, ok.body) == (204, b"")
    failed = wechatpay_adapter.callback_ack(ok=False, message="签名错误")
    assert failed.status == 400 and json.loads(failed.body) == {"code": "FAIL", "message": "签名错误"}
    assert wechatpay_adapter.callback_ack(ok=False, transient=True).status == 500


def test_a_duplicated_callback_parses_to_the_same_event(simulator_server, wechatpay_adapter, callback_receiver):
    request = payment("wechat.native", notify_url=callback_receiver.url)
    fault(simulator_server, {"fault": "duplicate_callback", "phase": "callback",
                             "match": {"contains": request.out_trade_no}})
    code_url = wechatpay_adapter.create_payment(request).pay_params["code_url"]
    sim(simulator_server, "POST", "/_payer/pay", json={"code_url": code_url})
    first, second = callback_receiver.wait_for(2)[:2]
    events = [parse(wechatpay_adapter, first), parse(wechatpay_adapter, second)]
    assert events[0].event_id == events[1].event_id
    assert events[0].payment.channel_trade_no == events[1].payment.channel_trade_no


@pytest.mark.parametrize(("name", "reason"), [("callback_bad_signature", "does not verify"),
                                              ("signtest", "SIGNTEST")])
def test_a_wrongly_signed_callback_is_rejected(simulator_server, wechatpay_adapter, callback_receiver, name, reason):
    request = payment("wechat.native", notify_url=callback_receiver.url)
    fault(simulator_server, {"fault": name, "phase": "callback", "match": {"contains": request.out_trade_no}})
    code_url = wechatpay_adapter.create_payment(request).pay_params["code_url"]
    sim(simulator_server, "POST", "/_payer/pay", json={"code_url": code_url})
    [delivery] = callback_receiver.wait_for(1)
    with pytest.raises(SignatureError, match=reason):
        parse(wechatpay_adapter, delivery)


def test_a_callback_changed_in_transit_is_rejected(simulator_server, wechatpay_adapter, callback_receiver):
    pay_native(simulator_server, wechatpay_adapter, callback_receiver.url)
    [delivery] = callback_receiver.wait_for(1)
    envelope = json.loads(delivery["body"])
    envelope["event_type"] = "REFUND.SUCCESS"
    with pytest.raises(SignatureError):
        wechatpay_adapter.parse_callback(headers=delivery["headers"], body=json.dumps(envelope).encode())


def test_a_callback_is_rejected_by_an_adapter_with_another_apiv3_key(simulator_server, wechatpay_adapter,
                                                                     callback_receiver):
    import dataclasses

    pay_native(simulator_server, wechatpay_adapter, callback_receiver.url)
    [delivery] = callback_receiver.wait_for(1)
    other = WechatPayAdapter(dataclasses.replace(wechatpay_adapter.config, apiv3_key="x" * 32),
                             base_url=wechatpay_adapter.base_url)
    with pytest.raises(SignatureError, match="does not decrypt"):
        parse(other, delivery)


def test_refund_callbacks_arrive_and_a_delayed_payment_callback_arrives_after_them(
        simulator_server, fresh_wechatpay_adapter, callback_receiver):
    adapter = fresh_wechatpay_adapter
    sim(simulator_server, "POST", f"/_control/accounts/{adapter.config.sp_mchid}/settings",
        json={"refund_delay_seconds": 0.1})
    request = payment("wechat.native", notify_url=callback_receiver.url, amount=500)
    fault(simulator_server, {"fault": "out_of_order_callback", "phase": "callback", "seconds": 0.8,
                             "match": {"contains": "TRANSACTION.SUCCESS\n"}})
    code_url = adapter.create_payment(request).pay_params["code_url"]
    sim(simulator_server, "POST", "/_payer/pay", json={"code_url": code_url})
    trade = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    refund = adapter.refund(RefundRequest(trade=trade, out_refund_no=otn("R"), amount=200, total_amount=500,
                                          notify_url=callback_receiver.url))
    first, second = callback_receiver.wait_for(2)[:2]
    first_event, second_event = parse(adapter, first), parse(adapter, second)
    assert (first_event.kind, second_event.kind) == (CallbackKind.REFUND, CallbackKind.PAYMENT)
    assert first_event.raw["event_type"] == "REFUND.SUCCESS"
    assert (first_event.refund.state, first_event.refund.out_refund_no, first_event.refund.amount) == (
        RefundState.SUCCEEDED, refund.out_refund_no, 200)


def test_an_abnormal_refund_is_called_back_as_abnormal(simulator_server, wechatpay_adapter, callback_receiver):
    request = payment("wechat.barcode", auth_code="134567890123456781", amount=800)
    wechatpay_adapter.create_payment(request)
    trade = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    refund = wechatpay_adapter.refund(RefundRequest(trade=trade, out_refund_no=otn("R"), amount=800,
                                                    total_amount=800, notify_url=callback_receiver.url))
    sim(simulator_server, "POST", f"/_control/refunds/{refund.out_refund_no}",
        json={"sp_mchid": wechatpay_adapter.config.sp_mchid, "status": "ABNORMAL"})
    events = [parse(wechatpay_adapter, d) for d in callback_receiver.wait_for(1)]
    assert [(e.raw["event_type"], e.refund.state) for e in events] == [("REFUND.ABNORMAL", RefundState.ABNORMAL)]


def test_complaint_and_violation_callbacks_parse(simulator_server, fresh_wechatpay_adapter, callback_receiver):
    adapter = fresh_wechatpay_adapter
    adapter.complaint_notify_url_set(url=callback_receiver.url)
    adapter.violation_notify_url_set(url=callback_receiver.url)
    created = sim(simulator_server, "POST", "/_control/complaints",
                  json={"sp_mchid": adapter.config.sp_mchid, "sub_mchid": SUB.sub_mchid}).json()
    sim(simulator_server, "POST", "/_control/violations",
        json={"sp_mchid": adapter.config.sp_mchid, "sub_mchid": SUB.sub_mchid, "event": "INTERCEPT",
              "record_id": "VR-1"})
    events = sorted((parse(adapter, d) for d in callback_receiver.wait_for(2)), key=lambda e: e.kind)
    complaint, violation = events
    assert (complaint.kind, complaint.data["complaint_id"], complaint.data["action_type"]) == (
        CallbackKind.COMPLAINT, created["complaint_id"], "CREATE_COMPLAINT")
    assert (violation.kind, violation.data["record_id"], violation.data["event_type"]) == (
        CallbackKind.VIOLATION, "VR-1", "VIOLATION.INTERCEPT")
    assert violation.data["sub_mchid"] == SUB.sub_mchid


# --------------------------------------------------------------------------------------------- fuzz
# A stand-in WeChat with a key we hold, so the fuzz reaches the parser behind a valid signature.
FUZZ_PLATFORM_KEY = sim_crypto.new_key_pem()
FUZZ_ADAPTER = WechatPayAdapter(WechatPayConfig(
    sp_mchid="1900000100", sp_appid="wx0000000000000001", private_key_pem=sim_crypto.new_key_pem(),
    serial_no="AA", apiv3_key="0123456789abcdef0123456789ABCDEF",
    wechatpay_public_key_pem=sim_crypto.public_pem(FUZZ_PLATFORM_KEY), wechatpay_public_key_id="PUB_KEY_ID_FUZZ"),
    base_url="http://127.0.0.1:9")


def signed(body: bytes) -> dict:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": "PUB_KEY_ID_FUZZ",
            "Wechatpay-Signature": sim_crypto.sign(FUZZ_PLATFORM_KEY, f"{timestamp}\n{nonce}\n".encode() + body + b"\n"),
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}


def envelope(event_type: str, resource: bytes) -> bytes:
    encrypted = sim_crypto.aes_encrypt("0123456789abcdef0123456789ABCDEF", resource, "transaction")
    return json.dumps({"id": "EV-1", "create_time": "2026-01-01T00:00:00+08:00", "resource_type": "encrypt-resource",
                       "event_type": event_type, "summary": "x",
                       "resource": {"original_type": "transaction", **encrypted}}).encode()


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(body=st.binary(max_size=300), headers=st.dictionaries(
    st.sampled_from(["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature",
                     "Wechatpay-Signature-Type"]), st.text(max_size=40)))
def test_fuzzed_unsigned_callbacks_only_raise_signature_errors(body, headers):
    with pytest.raises(SignatureError):
        FUZZ_ADAPTER.parse_callback(headers=headers, body=body)


@FUZZ
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_signed_bodies_only_raise_parse_or_signature_errors(body):
    with pytest.raises((ParseError, SignatureError)):
        FUZZ_ADAPTER.parse_callback(headers=signed(body), body=body)


@FUZZ
@given(event_type=st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "COMPLAINT.CREATE", "VIOLATION.PUNISH",
                                   "OTHER.THING"]),
       resource=json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=100),
       trade_state=st.sampled_from(["SUCCESS", "NOTPAY", "BOGUS", None]))
def test_fuzzed_decrypted_resources_parse_or_raise_parse_errors(event_type, resource, trade_state):
    if trade_state is not None and resource.startswith(b"{"):
        try:
            data = json.loads(resource)
        except ValueError:  # random bytes that merely start with "{": sent as they are
            data = None
        if isinstance(data, dict):
            resource = json.dumps({**data, "trade_state": trade_state, "refund_status": trade_state}).encode()
    body = envelope(event_type, resource)
    try:
        event = FUZZ_ADAPTER.parse_callback(headers=signed(body), body=body)
    except ParseError:
        return
    assert event.event_id == "EV-1"
    assert event.kind in (CallbackKind.PAYMENT, CallbackKind.REFUND, CallbackKind.COMPLAINT, CallbackKind.VIOLATION)


def test_a_well_formed_signed_callback_from_the_fuzz_peer_parses():
    body = envelope("TRANSACTION.SUCCESS", json.dumps({
        "out_trade_no": "T1", "trade_state": "SUCCESS", "transaction_id": "42", "sub_mchid": "16",
        "amount": {"total": 5, "currency": "CNY"}, "success_time": "2026-01-01T10:00:00+08:00"}).encode())
    event = FUZZ_ADAPTER.parse_callback(headers=signed(body), body=body)
    assert (event.payment.state, event.payment.amount, event.payment.paid_at.hour) == (TradeState.SUCCEEDED, 5, 10)
    stale = signed(body)
    stale["Wechatpay-Timestamp"] = str(int(stale["Wechatpay-Timestamp"]) - 400)
    with pytest.raises(SignatureError, match="5-minute"):
        FUZZ_ADAPTER.parse_callback(headers=stale, body=body)
    assert base64.b64decode(json.loads(body)["resource"]["ciphertext"])  # sanity: the resource is really encrypted

"""Alipay notifies fired by the simulator's payer side reach a loopback receiver and verify with the adapter (B.4)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from urllib.parse import parse_qsl, quote

import pytest
import requests

from channels.adapters.base import (
    CallbackKind,
    PaymentRequest,
    RefundRequest,
    RefundState,
    TradeRef,
    TradeState,
)
from channels.adapters.errors import SignatureError


@pytest.fixture
def receiver(callback_receiver):
    callback_receiver.body = b"success"  # B.4: Alipay stops retrying on exactly this body
    return callback_receiver


def sim(server, path: str, payload: dict | None = None) -> dict:
    response = requests.post(server.base_url + "/alipay" + path, json=payload or {}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json()


def paid_qr(adapter, sub, receiver, server, out_trade_no: str, **changes) -> TradeRef:
    created = adapter.create_payment(PaymentRequest(
        product="alipay.qr", sub_merchant=sub, out_trade_no=out_trade_no, amount=880, subject="普洱",
        notify_url=receiver.url, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10), **changes))
    sim(server, "/_payer/pay", {"qr_code": created.pay_params["code_url"], "payer_id": "2088000000000321"})
    return TradeRef(sub_merchant=sub, out_trade_no=out_trade_no)


def parse(adapter, item):
    return adapter.parse_callback(headers=item["headers"], body=item["body"], path=item["path"])


def test_a_payment_notify_reaches_us_and_verifies(alipay_adapter, alipay_merchant, alipay_config, receiver,
                                                  simulator_server):
    paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, "N1", attach="table=7&staff=李")
    [item] = receiver.wait_for(1)
    assert item["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    event = parse(alipay_adapter, item)
    assert event.kind == CallbackKind.PAYMENT
    payment = event.payment
    assert (payment.state, payment.out_trade_no, payment.amount) == (TradeState.SUCCEEDED, "N1", 880)
    assert (payment.payer_id, payment.sub_mchid) == ("2088000000000321", alipay_merchant.sub_mchid)
    assert payment.paid_at is not None and payment.channel_trade_no
    assert event.event_id == dict(parse_qsl(item["body"].decode()))["notify_id"]
    assert event.raw["auth_app_id"] and event.raw["app_id"] == alipay_config.app_id
    assert event.raw["passback_params"] == "table=7&staff=李"
    assert "sign" not in event.raw
    ack = alipay_adapter.callback_ack(ok=True)
    assert (ack.status, ack.body) == (200, b"success")
    assert alipay_adapter.callback_ack(ok=False).body == b"fail"


def test_a_notify_is_retried_until_the_answer_is_success(alipay_adapter, alipay_merchant, receiver,
                                                          simulator_server):
    receiver.body = b"SUCCESS"  # wrong case: not Alipay's ack, so it retries (B.4)
    out_trade_no = "N2-" + uuid.uuid4().hex[:12]
    needle = f"out_trade_no={out_trade_no}&"
    paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, out_trade_no)
    attempts(simulator_server, needle, 1)  # the simulator's own sender tried at once
    sim(simulator_server, "/_control/flush")
    attempts(simulator_server, needle, 2)
    receiver.body = b"success"
    sim(simulator_server, "/_control/flush")
    bodies = [r["body"] for r in receiver.requests if needle.encode() in r["body"]]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same notify (same notify_id) each time
    [state] = sim_get(simulator_server, "/_control/callbacks?contains=" + quote(needle))
    assert state["acked"] and state["attempt"] == 3
    sim(simulator_server, "/_control/flush")
    assert len([r for r in receiver.requests if needle.encode() in r["body"]]) == 3  # acknowledged: no more


def sim_get(server, path: str) -> list[dict]:
    return requests.get(server.base_url + "/alipay" + path, timeout=10).json()["callbacks"]


def attempts(server, needle: str, count: int) -> None:
    """Wait until the simulator has recorded ``count`` attempts of the notify containing ``needle``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(item["attempt"] >= count for item in sim_get(server, "/_control/callbacks?contains=" + quote(needle))):
            return
        time.sleep(0.02)
    raise AssertionError(f"the simulator did not record {count} attempts")


def test_a_duplicated_notify_parses_to_the_same_event(alipay_adapter, alipay_merchant, receiver, simulator_server):
    sim(simulator_server, "/_control/faults", {"fault": "duplicate_callback", "phase": "callback",
                                               "match": {"contains": "N3dup"}})
    paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, "N3dup")
    first, second = receiver.wait_for(2)[:2]
    one, two = parse(alipay_adapter, first), parse(alipay_adapter, second)
    assert one.event_id == two.event_id and one.payment.out_trade_no == "N3dup"


def test_a_notify_with_a_bad_signature_is_rejected(alipay_adapter, alipay_merchant, receiver, simulator_server):
    sim(simulator_server, "/_control/faults", {"fault": "callback_bad_signature", "phase": "callback",
                                               "match": {"contains": "N4bad"}})
    paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, "N4bad")
    [item] = receiver.wait_for(1)
    with pytest.raises(SignatureError):
        parse(alipay_adapter, item)


def test_a_notify_for_another_app_does_not_verify(alipay_adapter, alipay_merchant, receiver, simulator_server,
                                                  request):
    from channels.adapters.alipay import AlipayAdapter, AlipayConfig
    from channels.simulators.alipay import provision

    paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, "N5")
    [item] = receiver.wait_for(1)
    other = AlipayAdapter(AlipayConfig(**provision(simulator_server.base_url, name="other")),
                          base_url=simulator_server.base_url + "/alipay")
    with pytest.raises(SignatureError):
        parse(other, item)


def test_refunds_notify_as_trade_status_sync_with_the_refund_request_number(
        alipay_adapter, alipay_merchant, receiver, simulator_server):
    trade = paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, "N6")
    alipay_adapter.refund(RefundRequest(trade=trade, out_refund_no="N6-r1", amount=80, total_amount=880))
    alipay_adapter.refund(RefundRequest(trade=trade, out_refund_no="N6-r2", amount=800, total_amount=880))
    events = [parse(alipay_adapter, item) for item in receiver.wait_for(3)]
    assert [e.kind for e in events] == [CallbackKind.PAYMENT, CallbackKind.REFUND, CallbackKind.REFUND]
    partial, full = events[1], events[2]
    assert (partial.refund.out_refund_no, partial.refund.state) == ("N6-r1", RefundState.SUCCEEDED)
    assert partial.raw["trade_status"] == "TRADE_SUCCESS" and partial.raw["refund_fee"] == "0.80"
    assert full.raw["trade_status"] == "TRADE_CLOSED" and full.raw["refund_fee"] == "8.80"
    assert full.payment.state == TradeState.SUCCEEDED  # closed by a full refund, yet it was paid
    assert full.refund.succeeded_at is not None
    assert len({e.event_id for e in events}) == 3


def test_an_out_of_order_notify_arrives_after_the_next_one(alipay_adapter, alipay_merchant, receiver,
                                                           simulator_server):
    sim(simulator_server, "/_control/faults", {"fault": "out_of_order_callback", "phase": "callback",
                                               "match": {"contains": "out_trade_no=N7ooo&"}})
    trade = paid_qr(alipay_adapter, alipay_merchant, receiver, simulator_server, "N7ooo")
    time.sleep(0.2)
    assert not receiver.requests  # the payment notify is held back…
    alipay_adapter.refund(RefundRequest(trade=trade, out_refund_no="N7-r1", amount=80, total_amount=880))
    events = [parse(alipay_adapter, item) for item in receiver.wait_for(2)]
    # …and arrives after the refund notify: receivers must not assume payment comes first.
    assert [e.kind for e in events] == [CallbackKind.REFUND, CallbackKind.PAYMENT]


def test_a_barcode_that_settles_later_notifies_when_it_does(alipay_adapter, alipay_merchant, alipay_config,
                                                            receiver, simulator_server):
    sim(simulator_server, f"/_control/accounts/{alipay_config.app_id}/settings", {"user_paying_seconds": 0.2})
    paying = alipay_adapter.create_payment(PaymentRequest(
        product="alipay.barcode", sub_merchant=alipay_merchant, out_trade_no="N8", amount=100, subject="x",
        notify_url=receiver.url, expires_at=dt.datetime.now(dt.UTC), auth_code="281234567890123456"))
    assert paying.state == TradeState.USER_PAYING
    [item] = receiver.wait_for(1, timeout=5)  # sent by the simulator's own timer, nobody queried
    assert parse(alipay_adapter, item).payment.state == TradeState.SUCCEEDED

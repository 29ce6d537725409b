"""Bank notifies (docs/channels/bank.md §11): signed by the bank, retried until we answer SUCCESS, verified and
parsed by the adapter — including the faults a real bank shows (duplicates, reordering, bad signatures)."""

from __future__ import annotations

import json
import time

import pytest

from channels.adapters.base import CallbackKind, RefundRequest, RefundState, TradeState
from channels.adapters.errors import SignatureError
from tests.channels.test_bank_helpers import (
    control,
    fault,
    flush,
    new_bank,
    open_merchant,
    out_no,
    pay,
    payment,
    ref,
)


@pytest.fixture(scope="module")
def bank(simulator_server):
    return new_bank(simulator_server)


@pytest.fixture
def merchant(bank):
    return open_merchant(bank)


def _parse(bank, delivery):
    return bank.parse_callback(headers=delivery["headers"], body=delivery["body"], path=delivery["path"])


def test_a_payment_notify_reaches_our_url_and_verifies(bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url, amount=880)
    bank.create_payment(request)
    pay(bank, request.out_trade_no, payer_id="oPayer0002")
    [delivery] = callback_receiver.wait_for(1)
    assert delivery["headers"]["content-type"].startswith("application/json")
    event = _parse(bank, delivery)
    assert event.kind == CallbackKind.PAYMENT
    assert event.event_id.startswith("N")
    assert (event.payment.state, event.payment.amount, event.payment.out_trade_no, event.payment.payer_id) == \
        (TradeState.SUCCEEDED, 880, request.out_trade_no, "oPayer0002")
    assert event.payment.sub_mchid == merchant.sub_mchid


def test_the_bank_retries_until_it_reads_success(bank, merchant, callback_receiver):
    callback_receiver.body = b"FAIL"
    request = payment(merchant, notify_url=callback_receiver.url)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    callback_receiver.wait_for(1)
    callback_receiver.body = bank.callback_ack(ok=True).body
    flush(bank)  # the next attempt now instead of in 2 s
    deliveries = callback_receiver.wait_for(2)
    assert len(deliveries) == 2
    assert deliveries[0]["body"] == deliveries[1]["body"]  # a retry is the same notify, same notify_id
    flush(bank)
    assert len(callback_receiver.wait_for(3, timeout=0.5)) == 2  # acknowledged: no third attempt


def test_an_answer_other_than_plain_success_is_not_an_acknowledgement(bank, merchant, callback_receiver):
    callback_receiver.body = b'{"code":"SUCCESS"}'
    request = payment(merchant, notify_url=callback_receiver.url)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    callback_receiver.wait_for(1)
    flush(bank)
    assert len(callback_receiver.wait_for(2)) == 2


def test_callback_ack_speaks_the_banks_plain_text(bank):
    ok, failed = bank.callback_ack(ok=True), bank.callback_ack(ok=False)
    assert (ok.status, ok.body) == (200, b"SUCCESS")
    assert failed.body == b"FAIL" and failed.status >= 400


def test_a_duplicate_notify_parses_to_the_same_event(bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url)
    fault(bank, "duplicate_callback", phase="callback", match={"path": "PAY_RESULT", "contains": request.out_trade_no})
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    first, second = callback_receiver.wait_for(2)[:2]
    assert _parse(bank, first).event_id == _parse(bank, second).event_id


def test_a_wrongly_signed_notify_is_rejected(bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url)
    fault(bank, "callback_bad_signature", phase="callback", match={"contains": request.out_trade_no})
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    [delivery] = callback_receiver.wait_for(1)
    with pytest.raises(SignatureError):
        _parse(bank, delivery)


def test_a_notify_whose_content_was_changed_is_rejected(bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    [delivery] = callback_receiver.wait_for(1)
    forged = json.loads(delivery["body"])
    forged["total_amount"] = 1
    with pytest.raises(SignatureError):
        bank.parse_callback(headers={}, body=json.dumps(forged).encode())


def test_a_notify_for_another_bank_account_is_rejected(simulator_server, bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    [delivery] = callback_receiver.wait_for(1)
    other = new_bank(simulator_server, name="Bank B")
    with pytest.raises(SignatureError):
        _parse(other, delivery)


def test_a_held_back_payment_notify_arrives_after_the_refund_notify(bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url)
    fault(bank, "out_of_order_callback", phase="callback", seconds=0.6,
          match={"path": "PAY_RESULT", "contains": request.out_trade_no})
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    bank.refund(RefundRequest(trade=ref(merchant, request.out_trade_no), out_refund_no=out_no("R"), amount=100,
                              total_amount=request.amount, notify_url=callback_receiver.url))
    kinds = [_parse(bank, d).kind for d in callback_receiver.wait_for(2, timeout=5)]
    assert kinds == [CallbackKind.REFUND, CallbackKind.PAYMENT]


def test_a_refund_notify_reports_the_final_refund_state(bank, merchant, callback_receiver):
    request = payment(merchant)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    result = bank.refund(RefundRequest(trade=ref(merchant, request.out_trade_no), out_refund_no=out_no("R"),
                                       amount=300, total_amount=request.amount, notify_url=callback_receiver.url))
    [delivery] = callback_receiver.wait_for(1)
    event = _parse(bank, delivery)
    assert event.kind == CallbackKind.REFUND
    assert (event.refund.state, event.refund.amount, event.refund.channel_refund_no) == \
        (RefundState.SUCCEEDED, 300, result.channel_refund_no)


def test_a_payment_code_paid_after_userpaying_is_notified(simulator_server, callback_receiver):
    bank = new_bank(simulator_server, userpaying_seconds=0.2)
    merchant = open_merchant(bank)
    request = payment(merchant, "wechat.barcode", auth_code="134567890123456785", notify_url=callback_receiver.url)
    assert bank.create_payment(request).state == TradeState.USER_PAYING
    [delivery] = callback_receiver.wait_for(1, timeout=5)  # nobody queried: the simulator's timer applied it
    assert _parse(bank, delivery).payment.state == TradeState.SUCCEEDED


def test_the_outbox_shows_each_delivery_attempt(bank, merchant, callback_receiver):
    request = payment(merchant, notify_url=callback_receiver.url)
    bank.create_payment(request)
    pay(bank, request.out_trade_no)
    callback_receiver.wait_for(1)
    deadline = time.monotonic() + 3
    while True:  # the simulator records the attempt just after our receiver has answered
        items = control(bank, "/_control/notifications", method="GET").json()["notifications"]
        mine = [i for i in items if request.out_trade_no in i["body"]]
        if (mine and mine[0]["acked"]) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert mine and mine[0]["acked"] and mine[0]["log"][0]["status"] == 200

"""docs/channels/bank.md is the bank protocol: its worked examples must be true for both implementations of it."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from channels.adapters import bank_wire
from channels.adapters.bank import BankAdapter, BankConfig
from channels.adapters.bank_bill import parse_bill
from channels.adapters.base import CallbackKind, TradeState
from channels.adapters.errors import SignatureError
from channels.simulators import bank_wire as sim_wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "channels" / "bank.md"


def _block(label: str) -> str:
    match = re.search(r"^```\w+ " + re.escape(label) + r"\n(.*?)^```", DOC.read_text("utf-8"), re.M | re.S)
    assert match, f"bank.md has no ```… {label} block"
    return match.group(1).strip()


@pytest.fixture(scope="module")
def example():
    return {
        "org_pub": _block("example-org-public-key") + "\n",
        "bank_pub": _block("example-bank-public-key") + "\n",
        "request": json.loads(_block("example-request")),
        "response": json.loads(_block("example-response")),
        "notify": json.loads(_block("example-notify")),
    }


def test_it_derives_the_documented_canonical_strings_from_the_example_json(example):
    assert bank_wire.canonical_string(example["request"]) == _block("example-request-canonical")
    assert sim_wire.sign_content(example["request"]) == _block("example-request-canonical")
    assert bank_wire.canonical_string(example["response"]) == _block("example-response-canonical")
    assert sim_wire.sign_content(example["response"]) == _block("example-response-canonical")
    # §3.1: the empty attach is left out, the nested pay_info is compact sorted JSON.
    assert "attach=" not in _block("example-request-canonical")
    assert 'pay_info={"appId":' in _block("example-response-canonical")


def test_the_documented_request_signature_verifies_for_the_bank_and_for_us(example):
    assert sim_wire.rsa2_verify(example["request"], example["org_pub"])
    assert bank_wire.verify(example["request"], example["org_pub"])


def test_the_documented_response_and_notify_signatures_verify(example):
    assert bank_wire.verify(example["response"], example["bank_pub"])
    assert sim_wire.rsa2_verify(example["response"], example["bank_pub"])
    assert bank_wire.verify(example["notify"], example["bank_pub"])


def test_changing_any_signed_value_of_the_example_breaks_its_signature(example):
    tampered = {**example["request"], "total_amount": 1201}
    assert not bank_wire.verify(tampered, example["org_pub"])
    assert not sim_wire.rsa2_verify(tampered, example["org_pub"])
    nested = json.loads(json.dumps(example["response"]))
    nested["pay_info"]["package"] = "prepay_id=wxOTHER"
    assert not bank_wire.verify(nested, example["bank_pub"])
    # …but the example is still signed over values, not bytes: re-serialising it keeps it valid.
    respaced = json.loads(json.dumps(example["request"], indent=4, sort_keys=True))
    assert bank_wire.verify(respaced, example["org_pub"])


def test_the_documented_notify_parses_into_a_payment_event(example):
    config = BankConfig(org_no="ORG2026000001", key_id="K1A2B3C4", private_key_pem="", bank_key_id="BK9F8E7D6C",
                        bank_public_key_pem=example["bank_pub"])
    adapter = BankAdapter(config, base_url="http://bank.invalid")
    body = json.dumps(example["notify"], ensure_ascii=False).encode("utf-8")
    event = adapter.parse_callback(headers={}, body=body)
    assert event.kind == CallbackKind.PAYMENT
    assert event.event_id == "N4f1e2d3c4b5a69788796a5b4"
    assert event.payment.state == TradeState.SUCCEEDED
    assert event.payment.amount == 1200
    assert event.payment.out_trade_no == "AGG20261126000001"
    assert event.payment.paid_at == dt.datetime(2026, 11, 26, 2, 35, 11, tzinfo=dt.UTC)
    other = BankAdapter(BankConfig(**{**config.__dict__, "org_no": "ORG2026000002"}), base_url="http://bank.invalid")
    with pytest.raises(SignatureError):
        other.parse_callback(headers={}, body=body)


def test_the_documented_bill_parses_to_its_three_movements():
    lines = parse_bill(("\ufeff" + _block("example-bill").replace("\n", "\r\n") + "\r\n").encode("utf-8"))
    assert [(line.kind, line.amount, line.fee) for line in lines] == [
        ("payment", 1200, 3), ("payment", 5850, 15), ("refund", 200, 1),
    ]
    assert lines[1].raw["商品名称"] == "龙井, 碧螺春 套装"  # a quoted comma stays inside its cell
    assert lines[2].out_refund_no == "RAGG20261126000001"
    assert lines[0].trade_time == dt.datetime(2026, 11, 26, 10, 35, 11, tzinfo=bank_wire.CST)

"""A refund the channel failed carries our normalised failure code, as a failed order does (channels/adapters/*:
each adapter's CODES, channels.adapters.errors.NORMALISED_CODES), with the channel's own words as the message. Bug: a
refund Bank A failed had ``failure.code: "FAIL"`` — the bank's state word (docs/channels/bank.md §7.3) — in the API,
in its ``refund.failed`` event and on the trade page, where orders say ``insufficient_balance``."""

from __future__ import annotations

import json

import pytest

from channels.adapters.bank import BankAdapter
from channels.adapters.base import RefundState
from tests.trades.bank_flow import bank_refunds, paid_at_the_bank, refund, refund_in_state
from trades.models import Event, Refund
from trades.services.events import event_body

pytestmark = pytest.mark.usefixtures("quiet_channels")


def test_a_refund_the_bank_failed_has_a_normalised_code_and_the_banks_words(shop):
    order = paid_at_the_bank(shop, "RFC00001")
    # A second, so that the bank's answer to the refund is PROCESSING and its FAIL comes as a notice.
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=1)
    status, asked = refund(shop, order, "R-RFC-1", 500)
    assert status == 201 and asked["state"] == "pending", asked
    failed = refund_in_state(shop, asked["id"], "failed")

    status, _, answer = shop.client.request("GET", "/api/v1/refunds/R-RFC-1")
    assert status == 200 and answer["failure"] == {"code": "channel_error",
                                                  "message": "merchant balance insufficient"}, answer
    event = Event.objects.get(object_id=failed.pk, type="refund.failed")
    assert json.loads(event_body(event))["data"]["object"]["failure"]["code"] == "channel_error"
    assert Refund.objects.get(pk=failed.pk).failure_code == "channel_error"


@pytest.mark.parametrize(("state", "reason", "code", "message"), [
    ("FAIL", "merchant balance insufficient", "channel_error", "merchant balance insufficient"),
    ("CLOSED", "", "channel_error", "the bank answered refund_state CLOSED"),
    ("ABNORMAL", "card closed", "ABNORMAL", "card closed"),  # not a failure: pending for a person
    ("SUCCESS", "", "", ""),
])
def test_each_of_the_banks_refund_states_maps_to_a_code_and_words(state, reason, code, message):
    result = BankAdapter._refund_of({"refund_state": state, "out_refund_no": "ref_1", "refund_no": "R1",
                                     "refund_amount": 100, "fail_reason": reason or None})
    assert (result.failure_code, result.failure_message) == (code, message)
    assert result.state == {"FAIL": RefundState.FAILED, "CLOSED": RefundState.CLOSED,
                            "ABNORMAL": RefundState.ABNORMAL, "SUCCESS": RefundState.SUCCEEDED}[state]

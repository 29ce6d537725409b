"""Parsing Alipay 直付通 review messages (channel-protocols.md B.7): our business code comes back as
``external_id`` and is handed on as ``business_code``, the key the contract services look a contract up by."""

from __future__ import annotations

import json

import pytest

from channels.adapters.alipay_notify import _message_event
from channels.adapters.base import CallbackKind, OnboardingState
from channels.adapters.errors import ParseError


def test_a_zft_passed_message_carries_our_business_code():
    content = {"order_id": "20240101ORDER", "external_id": "AGG20240101ABC", "smid": "2088X"}
    event = _message_event({"msg_method": "ant.merchant.expand.indirect.zft.passed",
                            "biz_content": json.dumps(content)}, "ev1", {})

    assert event.kind == CallbackKind.ONBOARDING
    assert event.data["business_code"] == event.data["external_id"] == "AGG20240101ABC"
    assert (event.data["application_id"], event.data["state"]) == ("20240101ORDER", OnboardingState.FINISHED)


def test_a_zft_message_without_external_id_has_an_empty_business_code():
    event = _message_event({"msg_method": "ant.merchant.expand.indirect.zft.rejected",
                            "biz_content": json.dumps({"order_id": "O1", "reason": "照片模糊"})}, "ev2", {})

    assert event.data["business_code"] == ""
    assert event.data["rejections"] == [{"field": "", "reason": "照片模糊"}]


def test_a_zft_passed_message_without_a_smid_is_refused_as_malformed():
    # B.7: the passed message names the smid the merchant trades under; without it nothing can be activated (the
    # notice is answered "fail", Alipay sends it again, and the contract's poll tells the truth meanwhile).
    with pytest.raises(ParseError, match="smid"):
        _message_event({"msg_method": "ant.merchant.expand.indirect.zft.passed",
                        "biz_content": json.dumps({"order_id": "2021001", "external_id": "B1"})}, "ev3", {})

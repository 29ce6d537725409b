"""Fixtures of the tests about channel risk notices and contract limits (tests/risk, and the merchants tests of the
contract card and suspension), registered by both conftests: a WeChat Pay account with real keys, the Tea House
contracted on it, and its second way to take wechat.native through Bank A."""

from __future__ import annotations

import pytest

from tests.factories import ChannelAccountFactory
from tests.risk.violations import TEA_SUB, contract_on, wechat_account


@pytest.fixture
def wx():
    return wechat_account()


@pytest.fixture
def tea_contract(wx, tea_house):
    return contract_on(wx, tea_house, sub_mchid=TEA_SUB)


@pytest.fixture
def bank_contract(tea_house, tea_contract):
    """Tea House's second way to take wechat.native: through Bank A, created after the WeChat contract and at the
    same cost, so routing prefers the WeChat one while it is active (oldest contract wins a tie)."""
    return contract_on(ChannelAccountFactory(code="bank-a", kind="bank"), tea_house, sub_mchid="BANKM0001")

"""Fixtures of the risk tests: a WeChat Pay account with real keys and the Tea House contracted on it."""

from __future__ import annotations

import pytest

from tests.risk.violations import TEA_SUB, contract_on, wechat_account


@pytest.fixture
def wx():
    return wechat_account()


@pytest.fixture
def tea_contract(wx, tea_house):
    return contract_on(wx, tea_house, sub_mchid=TEA_SUB)

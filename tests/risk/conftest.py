"""Fixtures of the risk tests (tests/risk/fixtures.py)."""

from tests.risk.fixtures import bank_contract, tea_contract, wx  # noqa: F401 - fixtures

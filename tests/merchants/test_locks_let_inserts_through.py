"""The merchants services lock FOR NO KEY UPDATE and only the rows they mean (merchants/services/locks.py), so the
trades that keep coming in meanwhile do not wait for them. An order's INSERT takes FOR KEY SHARE on the merchant,
the channel account and the contract it references; a plain FOR UPDATE on any of them held it back until the
staff action or the channel's answer committed — every order on Bank A stalled behind an answer about any merchant's
contract on Bank A. The lockers themselves still keep each other out.

Staged on PostgreSQL connections in threads: the service runs in a transaction left open with every lock it took
while another thread inserts an order as the order service leaves it (tests/trades/ledger.py ``paid_order``),
giving up on any lock after 2 s (``SET LOCAL lock_timeout``) — with the old locks it fails with a lock timeout.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from aggpay.errors import Forbidden
from channels.adapters.base import OnboardingState
from channels.models import ChannelProduct
from channels.services.products import channel_product_set
from merchants.models import Contract, ContractRate, ContractState, MerchantState
from merchants.services.contracts import contract_set_rate
from merchants.services.merchants import merchant_freeze
from merchants.services.settlement import merchant_settlement_change
from tests.merchants.records import record
from tests.merchants.test_lock_order import _answer, _contracting, _Staged
from tests.trades.ledger import paid_order
from trades.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

# Far longer than an INSERT takes, far shorter than the thread's patience: a lock wait ends the insert in error.
LOCK_TIMEOUT = "2s"


def _order(out_trade_no: str, *, merchant, contract: Contract | None = None, account=None) -> Order:
    """An order of ``merchant`` (on ``contract``, or only on ``account``) inserted in a transaction of its own that
    waits at most LOCK_TIMEOUT for a lock."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        on = {"contract": contract, "channel_account": contract.channel_account, "sub_mchid": contract.sub_mchid} \
            if contract is not None else {"channel_account": account}
        return paid_order(merchant, out_trade_no, amount=2_000, paid_at=timezone.now(), **on)


class _HeldOpen:
    """``hold()`` in a transaction of its own thread, left open with every lock it took until ``meanwhile()`` has
    run in a second thread; then it commits. Exceptions of either are kept (``hold_errors``, ``meanwhile_errors``)."""

    def __init__(self, hold, meanwhile):
        self.hold, self.meanwhile = hold, meanwhile
        self.hold_errors, self.meanwhile_errors, self.result, self.seconds = [], [], None, None

    def run(self) -> _HeldOpen:
        holding, done = threading.Event(), threading.Event()

        def first():
            try:
                with transaction.atomic():
                    self.hold()
                    holding.set()
                    done.wait(timeout=30)
            except Exception as exc:
                self.hold_errors.append(exc)
            finally:
                holding.set()
                connection.close()

        def second():
            holding.wait(timeout=30)
            started = time.monotonic()
            try:
                self.result = self.meanwhile()
            except Exception as exc:
                self.meanwhile_errors.append(exc)
            finally:
                self.seconds = time.monotonic() - started
                done.set()
                connection.close()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a transaction never finished"
        return self


@pytest.fixture
def active_tea_house(clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts) -> Contract:
    """The Tea House active on Bank A (sub-merchant BANKA0001); its WeChat Pay contract was rejected."""
    contracts = _contracting(drafted_tea_house, clerk_wang, risk_zhao)
    _answer(contracts["bank-a"], OnboardingState.FINISHED, application_id="B-1", sub_mchid="BANKA0001")
    return Contract.objects.select_related("merchant", "channel_account").get(pk=contracts["bank-a"].pk)


def test_it_takes_the_tea_houses_orders_while_risk_freezes_it(risk_zhao, active_tea_house):
    """Zhao freezes the Tea House (``merchant_freeze`` locks the merchant) while a payer's order of it on Bank A
    comes in: the order is written at once, and the freeze commits after it."""
    contract = active_tea_house
    held = _HeldOpen(
        hold=lambda: merchant_freeze(merchant_id=contract.merchant_id, actor=risk_zhao, reason="channel complaint"),
        meanwhile=lambda: _order("T-FREEZE-1", merchant=contract.merchant, contract=contract),
    ).run()

    assert held.meanwhile_errors == [], "the order waited for the freeze's lock on the merchant"
    assert held.hold_errors == []
    assert Order.objects.get(out_trade_no="T-FREEZE-1").contract_id == contract.pk
    contract.merchant.refresh_from_db()
    assert contract.merchant.state == MerchantState.FROZEN


def test_it_takes_the_tea_houses_orders_while_its_settlement_account_change_is_recorded(clerk_wang, active_tea_house):
    """Wang asks the Tea House's channels to pay to a new account (the merchant locked, a SettlementChange recorded
    on the Bank A contract) while an order of it on that contract comes in."""
    contract = active_tea_house
    new_account = {**record()["settlement_account"], "account_number": "6222020200112233445"}
    held = _HeldOpen(
        hold=lambda: merchant_settlement_change(merchant_id=contract.merchant_id, actor=clerk_wang,
                                                account=new_account),
        meanwhile=lambda: _order("T-SETTLE-1", merchant=contract.merchant, contract=contract),
    ).run()

    assert held.meanwhile_errors == [], "the order waited for the settlement change's lock on the merchant"
    assert held.hold_errors == []
    assert Order.objects.filter(out_trade_no="T-SETTLE-1").exists()
    assert contract.settlement_changes.get().new_account.account_number == "6222020200112233445"


def test_it_takes_orders_on_bank_a_while_bank_a_opens_the_tea_house(
        clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts, tea_house):
    """Bank A's "finished" answer activates the Tea House (its application, merchant and contract locked, its
    payments app issued) while another merchant's order on Bank A comes in — and, the channel being quick, the
    Tea House's first order on the contract. Neither waits: the answer reads Bank A's account but does not lock it,
    and its locks on the Tea House's rows let inserts through."""
    contract = _contracting(drafted_tea_house, clerk_wang, risk_zhao)["bank-a"]
    bank_a = onboarding_accounts["bank_a"]

    def orders_meanwhile():
        return [_order("T-OTHER-1", merchant=tea_house, account=bank_a),
                _order("T-FIRST-1", merchant=drafted_tea_house.merchant, contract=contract)]

    held = _HeldOpen(
        hold=lambda: _answer(contract, OnboardingState.FINISHED, application_id="B-1", sub_mchid="BANKA0001"),
        meanwhile=orders_meanwhile,
    ).run()

    assert held.meanwhile_errors == [], "an order waited for the channel's answer"
    assert held.hold_errors == []
    assert set(Order.objects.filter(channel_account=bank_a).values_list("out_trade_no", flat=True)) == {
        "T-OTHER-1", "T-FIRST-1"}
    assert Contract.objects.get(pk=contract.pk).state == ContractState.ACTIVE


def test_it_takes_orders_on_bank_a_while_a_merchant_rate_is_checked_against_its_cost(clerk_wang, active_tea_house,
                                                                                    tea_house):
    """``contract_set_rate`` locks Bank A's account as well as the contract (the next test says why); another
    merchant's order on Bank A goes in meanwhile all the same."""
    contract = active_tea_house
    held = _HeldOpen(
        hold=lambda: contract_set_rate(contract_id=contract.pk, actor=clerk_wang, product="wechat.native",
                                       rate="0.0045"),
        meanwhile=lambda: _order("T-RATE-1", merchant=tea_house, account=contract.channel_account),
    ).run()

    assert held.meanwhile_errors == [], "the order waited for the rate change's lock on the account"
    assert held.hold_errors == []
    assert Order.objects.filter(out_trade_no="T-RATE-1").exists()
    assert ContractRate.objects.get(contract=contract, product="wechat.native").rate == Decimal("0.0045")


def test_it_still_makes_a_merchant_rate_wait_for_a_cost_change_on_its_account(
        clerk_wang, staff_member, active_tea_house):
    """Operations raise Bank A's WeChat cost to 0.30% while Wang lowers the Tea House's rate to 0.25% — above the
    cost he read, below the one being written. His change waits for the cost change (both lock Bank A's account)
    and is then checked against the new cost: below it only with the override he lacks. Had it not waited, the
    Tea House would trade below cost with nobody's approval."""
    contract = active_tea_house
    ops = staff_member("operations", username="li.ops")
    staged = _Staged()

    def ops_raise_the_cost():
        with transaction.atomic():
            channel_product_set(account_id=contract.channel_account_id, product="wechat.native", actor=ops,
                                reason="Bank A's new price list", cost_rate="0.0030")
            staged.pause()

    def wang_lowers_the_rate():
        contract_set_rate(contract_id=contract.pk, actor=clerk_wang, product="wechat.native", rate="0.0025")

    staged.run(ops_raise_the_cost, wang_lowers_the_rate)

    assert staged.waited, "the rate change never waited for the cost change: the race was not staged"
    assert [type(exc) for exc in staged.errors] == [Forbidden]
    assert ChannelProduct.objects.get(account=contract.channel_account, product="wechat.native").cost_rate == \
        Decimal("0.0030")
    assert ContractRate.objects.get(contract=contract, product="wechat.native").rate == Decimal("0.0038")

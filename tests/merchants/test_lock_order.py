"""Who locks what first (merchants/services/locks.py): every path takes the application, then the merchant, then the
contract — so a channel's answer that activates a contract and a clerk's action on the same merchant at the same
moment queue behind each other instead of deadlocking. PostgreSQL would abort one with "deadlock detected": the
clerk's correction lost as a 500, or the channel's answer lost as a failed task.

Staged on PostgreSQL connections in threads. The channel's answer is paused where it activates the merchant (the
real ``merchant_activate_on_contract``, reached through the real ``contract_apply_result``) until the other
transaction is waiting for a lock; it then goes on.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from channels.adapters.base import OnboardingResult, OnboardingState
from merchants.models import (
    ApplicationState,
    Contract,
    ContractState,
    Merchant,
    MerchantState,
    SettlementChange,
)
from merchants.services import activation
from merchants.services.contracts import contract_apply_result
from merchants.services.locks import lock_merchant
from merchants.services.onboarding import (
    application_approve,
    application_review_start,
    application_submit,
    merchant_record_correct,
)
from merchants.services.settlement import merchant_settlement_change
from tests.merchants.records import record

pytestmark = pytest.mark.django_db(transaction=True)


def _answer(contract: Contract, state: str, **fields) -> Contract:
    contract.refresh_from_db()
    return contract_apply_result(contract_id=contract.pk, source="channel", submitting=contract.state == "pending",
                                 result=OnboardingResult(state=state, **fields))


def _contracting(application, clerk, risk) -> dict[str, Contract]:
    """The Tea House approved (its contracts are with the channels) and WeChat Pay's contract rejected."""
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    application_approve(application_id=application.pk, actor=risk, notes="real tea house")
    contracts = {c.channel_account.code: c for c in application.contracts.all()}
    _answer(contracts["wechatpay-isv"], OnboardingState.REJECTED, application_id="2000001",
            rejections=[{"field": "merchant_shortname", "reason": "商户简称与门店招牌不符"}])
    return contracts


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # pg_stat_activity is otherwise frozen per transaction
        cursor.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
        return bool(row and row[0])


class _Staged:
    """Two transactions in threads: ``first`` runs until ``pause()`` (called inside it, with its locks held), then
    ``second`` starts; ``pause()`` returns once ``second`` waits for a lock (or after 10 s, and ``waited`` stays
    False). Exceptions of either are kept in ``errors``."""

    def __init__(self):
        self.holding, self.errors, self.waited, self.second_pid = threading.Event(), [], False, None

    def pause(self) -> None:
        self.holding.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.second_pid is not None and _waits_for_a_lock(self.second_pid):
                self.waited = True
                return
            time.sleep(0.05)

    def run(self, first, second) -> None:
        def run_first():
            try:
                first()
            except Exception as exc:  # a deadlock aborts one side
                self.errors.append(exc)
            finally:
                self.holding.set()
                connection.close()

        def run_second():
            self.holding.wait(timeout=30)
            try:
                self.second_pid = _backend_pid()
                second()
            except Exception as exc:
                self.errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a transaction never finished"


def _pausing_activation(monkeypatch, staged: _Staged) -> None:
    """The real merchant_activate_on_contract, paused first (``_Staged.pause``): the answer's transaction has then
    locked the contract and is about to complete the application."""
    real = activation.merchant_activate_on_contract

    def paused(*, contract):
        staged.pause()
        return real(contract=contract)

    monkeypatch.setattr(activation, "merchant_activate_on_contract", paused)


def test_it_lets_a_clerks_correction_wait_for_a_contract_activation_instead_of_deadlocking(
        monkeypatch, clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts):
    """Bank A opens the Tea House (its first active contract completes the application and activates the merchant)
    while Wang corrects the short name WeChat Pay rejected. The correction locks the application and its merchant;
    the activation used to lock the contract and the merchant, then the application — each held what the other
    wanted."""
    contracts = _contracting(drafted_tea_house, clerk_wang, risk_zhao)
    staged = _Staged()
    _pausing_activation(monkeypatch, staged)

    def bank_a_answers():
        _answer(contracts["bank-a"], OnboardingState.FINISHED, application_id="B-1", sub_mchid="BANKA0001")

    def wang_corrects():
        merchant_record_correct(application_id=drafted_tea_house.pk, actor=clerk_wang,
                                data=record(short_name="西湖茶馆龙井路店"))

    staged.run(bank_a_answers, wang_corrects)

    assert staged.errors == []
    assert staged.waited, "the correction never waited for the activation's locks: the race was not staged"
    drafted_tea_house.refresh_from_db()
    merchant = Merchant.objects.get(pk=drafted_tea_house.merchant_id)
    assert Contract.objects.get(pk=contracts["bank-a"].pk).state == ContractState.ACTIVE
    assert drafted_tea_house.state == ApplicationState.COMPLETED
    assert merchant.state == MerchantState.ACTIVE
    assert merchant.short_name == "西湖茶馆龙井路店"


def test_it_lets_a_channels_repeated_answer_wait_for_a_settlement_account_change_instead_of_deadlocking(
        clerk_wang, risk_zhao, drafted_tea_house, onboarding_accounts):
    """Wang asks the active Tea House's channels to pay to a new account while Bank A's "finished" notice comes
    again (a channel re-sends a notice until it is acknowledged). The change locks the merchant and then records a
    SettlementChange for each active contract; the answer used to lock the contract and then the merchant, and
    while the contract's lock was FOR UPDATE that insert waited for it. The answer now queues behind the change at
    the merchant, whose lock (FOR NO KEY UPDATE, as ``lock_merchant`` takes it) still keeps it out."""
    contracts = _contracting(drafted_tea_house, clerk_wang, risk_zhao)
    _answer(contracts["bank-a"], OnboardingState.FINISHED, application_id="B-1", sub_mchid="BANKA0001")
    merchant_id = drafted_tea_house.merchant_id
    staged = _Staged()

    def wang_changes_the_account():
        with transaction.atomic():
            lock_merchant(merchant_id)  # the change's first lock, as it takes it
            staged.pause()
            merchant_settlement_change(merchant_id=merchant_id, actor=clerk_wang, account={
                **record()["settlement_account"], "account_number": "6222020200112233445"})

    def bank_a_answers_again():
        _answer(contracts["bank-a"], OnboardingState.FINISHED, application_id="B-1", sub_mchid="BANKA0001")

    staged.run(wang_changes_the_account, bank_a_answers_again)

    assert staged.errors == []
    assert staged.waited, "the answer never waited for the change's locks: the race was not staged"
    assert Contract.objects.get(pk=contracts["bank-a"].pk).state == ContractState.ACTIVE
    change = SettlementChange.objects.get()
    assert (change.contract_id, change.new_account.account_number) == (contracts["bank-a"].pk, "6222020200112233445")

"""Celery tasks for onboarding: thin — ids in, a service call, their own retry policy (style.md §11)."""

from __future__ import annotations

from celery import shared_task

from merchants.services import contracts


@shared_task(acks_late=True, ignore_result=True)
def submit_contract(contract_id: int) -> None:
    contracts.contract_submit(contract_id=contract_id)


@shared_task(acks_late=True, ignore_result=True)
def poll_contract(contract_id: int) -> None:
    contracts.contract_poll(contract_id=contract_id)


@shared_task(acks_late=True, ignore_result=True)
def poll_due_contracts() -> int:
    """Beat, every minute: query the channels for contracts whose review state is due (no notifications, A.13)."""
    due = contracts.contracts_due_for_poll()
    for contract_id in due:
        poll_contract.delay(contract_id)
    return len(due)


@shared_task(acks_late=True, ignore_result=True)
def submit_settlement_change(change_id: int) -> None:
    from merchants.services.settlement import settlement_change_submit

    settlement_change_submit(change_id=change_id)


@shared_task(acks_late=True, ignore_result=True)
def poll_due_settlement_changes() -> int:
    from merchants.services.settlement import settlement_change_poll, settlement_changes_due

    due = settlement_changes_due()
    for change_id in due:
        settlement_change_poll(change_id=change_id)
    return len(due)


# Batch onboarding tasks live in their own module; importing it here registers them with the worker.
from merchants import tasks_batch  # noqa: E402,F401

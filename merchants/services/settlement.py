"""Changing an active merchant's settlement account at every channel it is contracted with (issue 4 "Flow").

Every channel handles this asynchronously (WeChat modify-settlement A.13, Alipay zft modify B.7, bank.md §9.6): we
record one ``SettlementChange`` per contract, submit each outside any lock, follow each by polling, and make the new
account current (the record's account) only when all of them succeeded. A refusal leaves the old account in force
at the channel that refused it and names the reason — but the channels that accepted already pay to the new one,
and nothing can take their switch back. So each channel's account is followed on its own (``settlement_by_channel``)
and the merchant page shows it, with the refusal flagged, until a new change that every channel accepts brings them
together again.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import actor_label_for, audit_log
from aggpay.errors import InvalidState
from aggpay.permissions import require_perm
from channels.adapters.errors import ChannelError, ChannelUnknown
from merchants.models import (
    Contract,
    ContractState,
    Merchant,
    MerchantState,
    SettlementAccount,
    SettlementChange,
    SettlementChangeState,
)
from merchants.services.contracts import next_poll_delay
from merchants.services.locks import lock_contract_alone, lock_merchant, lock_settlement_change
from merchants.services.record import validate_settlement_account
from merchants.validation import required_reason

logger = logging.getLogger(__name__)

OPEN_STATES = (SettlementChangeState.PENDING, SettlementChangeState.AUDITING)


def merchant_settlement_change(*, merchant_id: int, actor, account: dict) -> list[SettlementChange]:
    """Ask every active channel contract to move the merchant's settlement to ``account``."""
    require_perm(actor, "merchants.change_merchant")
    with transaction.atomic():
        merchant = lock_merchant(merchant_id)
        if merchant.state not in (MerchantState.ACTIVE, MerchantState.FROZEN):
            raise InvalidState(f"the merchant is {merchant.state}; before activation edit the application instead")
        if SettlementChange.objects.filter(merchant=merchant, state__in=OPEN_STATES).exists():
            raise InvalidState("a settlement account change is already in progress")
        clean = validate_settlement_account(account, subject_type=merchant.subject_type,
                                            legal_name=merchant.legal_name,
                                            legal_person_name=merchant.legal_person_name)
        contracts = list(merchant.contracts.filter(state__in=[ContractState.ACTIVE, ContractState.LIMITED]))
        if not contracts:
            raise InvalidState("no active contract to change the settlement account of")
        new_account = SettlementAccount.objects.create(merchant=merchant, current=False, **clean)
        changes = [
            SettlementChange.objects.create(
                merchant=merchant, contract=contract, new_account=new_account,
                request_no="SC" + timezone.localdate().strftime("%Y%m%d") + secrets.token_hex(8).upper(),
                created_by=actor_label_for(actor),
            )
            for contract in contracts
        ]
        audit_log(actor=actor, action="merchants.settlement.change_requested", target=merchant,
                  data={"contracts": [c.pk for c in contracts], "bank_name": clean["bank_name"]})
        from merchants import tasks

        for change in changes:
            tasks.submit_settlement_change.delay_on_commit(change.pk)
    return changes


def _neutral_account(change: SettlementChange) -> dict:
    account = change.new_account
    return {"type": account.account_type, "account_name": account.account_holder,
            "account_number": account.account_number, "bank_name": account.bank_name,
            "bank_branch": account.bank_branch, "bank_branch_id": account.bank_branch_code,
            "bank_address_code": "", "request_no": change.request_no}


def settlement_change_submit(*, change_id: int) -> SettlementChange:
    change = SettlementChange.objects.select_related("contract__channel_account", "new_account").get(pk=change_id)
    if change.state != SettlementChangeState.PENDING:
        return change
    adapter = change.contract.channel_account.adapter()
    try:
        result = adapter.settlement_modify(sub_mchid=change.contract.sub_mchid, account=_neutral_account(change))
    except ChannelUnknown as exc:
        return _reschedule(change_id, f"no answer, will retry: {exc.message}")
    except ChannelError as exc:
        if exc.retryable:
            # A rate limit or "busy" (design §6 ``permanent=False``) is no verdict on the new account: the change stays
            # pending and the poll (``settlement_change_poll``) submits it again after the backoff.
            return _reschedule(change_id, f"the channel asked to be tried again later "
                                          f"({exc.channel_code or exc.code}: {exc.channel_message or exc.message}); "
                                          "it is submitted again")
        return _apply(change_id, state="failed", message=exc.channel_message or exc.message)
    return _apply(change_id, state=result.state, message=result.message, application_no=result.application_no)


def settlement_change_poll(*, change_id: int) -> SettlementChange:
    change = SettlementChange.objects.select_related("contract__channel_account").get(pk=change_id)
    if change.state == SettlementChangeState.PENDING:
        return settlement_change_submit(change_id=change_id)
    if change.state != SettlementChangeState.AUDITING:
        return change
    try:
        result = change.contract.channel_account.adapter().settlement_modify_query(
            sub_mchid=change.contract.sub_mchid, application_no=change.application_no)
    except ChannelError as exc:
        return _reschedule(change_id, f"query failed, will retry: {exc.message}")
    return _apply(change_id, state=result.state, message=result.message)


def _reschedule(change_id: int, message: str) -> SettlementChange:
    with transaction.atomic():
        change = SettlementChange.objects.select_for_update(no_key=True).get(pk=change_id)
        change.poll_attempts += 1
        change.next_poll_at = timezone.now() + next_poll_delay(change.poll_attempts)
        change.message = message
        change.save()
    return change


def _apply(change_id: int, *, state: str, message: str = "", application_no: str = "") -> SettlementChange:
    with transaction.atomic():
        change = lock_settlement_change(change_id)  # after its merchant (merchants/services/locks.py)
        before = change.state
        if application_no:
            change.application_no = application_no
        method = {"auditing": change.accept, "succeeded": change.succeed, "failed": change.fail}.get(state)
        if method is None:
            logger.warning("settlement change %s: unknown channel state %r", change.pk, state)
        elif change.state != state and can_proceed(method):
            method()
        change.message = message or change.message
        if change.state in OPEN_STATES:
            change.poll_attempts = 0 if change.state != before else change.poll_attempts + 1
            change.next_poll_at = timezone.now() + next_poll_delay(change.poll_attempts)
        else:
            change.next_poll_at = None
        change.save()
        if change.state != before:
            audit_log(actor=None, action=f"merchants.settlement.{change.state}", target=change.merchant,
                      data={"change": change.pk, "contract": change.contract_id, "message": change.message})
        _promote_if_complete(change)
    return change


def _promote_if_complete(change: SettlementChange) -> None:
    """All channels accepted the new account: it becomes current (one current per merchant, by constraint)."""
    siblings = SettlementChange.objects.filter(new_account_id=change.new_account_id)
    if siblings.exclude(state=SettlementChangeState.SUCCEEDED).exists():
        return
    merchant = lock_merchant(change.merchant_id)  # held already (lock_settlement_change)
    merchant.settlement_accounts.filter(current=True).exclude(pk=change.new_account_id).update(current=False)
    SettlementAccount.objects.filter(pk=change.new_account_id).update(current=True)
    audit_log(actor=None, action="merchants.settlement.account_switched", target=merchant,
              data={"account": change.new_account_id})


# Contracts with a sub-merchant at their channel: the channel pays the merchant out (suspension is ours only).
PAYING_STATES = (ContractState.ACTIVE, ContractState.LIMITED, ContractState.SUSPENDED)


@dataclass(frozen=True)
class ChannelSettlement:
    """Where one channel pays the merchant out, and what became of the latest change asked of it."""

    contract: Contract
    account: SettlementAccount | None  # the account this channel pays to now
    on_record: bool  # it is the record's (current) account
    pending: SettlementChange | None  # the latest change, while the channel is still deciding
    refused: SettlementChange | None  # the latest change, when the channel refused it
    latest: SettlementChange | None = None  # the latest change asked of this channel, whatever its outcome

    @property
    def accepted(self) -> SettlementChange | None:
        """The latest change, when the channel accepted it (it pays to that change's new account)."""
        return self.latest if self.latest is not None and self.latest.state == SettlementChangeState.SUCCEEDED \
            else None

    @property
    def masked_number(self) -> str:
        from aggpay.masking import mask_bank_account

        return mask_bank_account(self.account.account_number) if self.account is not None else ""


def paying_account(history: list[SettlementChange], current: SettlementAccount | None) -> SettlementAccount | None:
    """The account one channel pays to, from the changes asked of it (newest first) and the record's account: the
    new account of the latest change it accepted, else the record's account, which it was onboarded with."""
    accepted = next((c for c in history if c.state == SettlementChangeState.SUCCEEDED), None)
    return accepted.new_account if accepted is not None else current


def settlement_by_channel(merchant: Merchant) -> list[ChannelSettlement]:
    """Which account each channel pays ``merchant`` to, by channel account code. Reads only.

    A channel pays to the new account of the latest change it accepted; one that never accepted a change pays to
    the record's account, which it was onboarded with (the record's account moves only when every channel asked
    accepted, ``_promote_if_complete``). Not followed: a contract that was not active or limited when a change was
    asked (``merchant_settlement_change`` asks only those) keeps the account it was onboarded with.
    """
    current = merchant.settlement_accounts.filter(current=True).first()
    changes: dict[int, list[SettlementChange]] = {}
    for change in merchant.settlement_changes.select_related("new_account").order_by("-created_at", "-id"):
        changes.setdefault(change.contract_id, []).append(change)
    contracts = (merchant.contracts.filter(pk__in=list(changes)) | merchant.contracts.filter(state__in=PAYING_STATES))
    rows = []
    for contract in contracts.distinct().select_related("channel_account").order_by("channel_account__code"):
        history = changes.get(contract.pk, [])
        account = paying_account(history, current)
        latest = history[0] if history else None
        rows.append(ChannelSettlement(
            contract=contract, account=account,
            on_record=account is not None and current is not None and account.pk == current.pk,
            pending=latest if latest is not None and latest.state in OPEN_STATES else None,
            refused=latest if latest is not None and latest.state == SettlementChangeState.FAILED else None,
            latest=latest,
        ))
    return rows


def settlement_changes_due(*, limit: int = 200) -> list[int]:
    return list(SettlementChange.objects.filter(state__in=OPEN_STATES, next_poll_at__lte=timezone.now())
                .order_by("next_poll_at").values_list("pk", flat=True)[:limit])


def contract_suspend(*, contract_id: int, actor, reason: str):
    """Stop a contract on our side (routing skips it). None of our channels offers an API to suspend a
    sub-merchant (A.13, B.7, bank.md), so this is recorded locally; the channel is told by the account manager."""
    return _contract_staff_transition(contract_id=contract_id, actor=actor, reason=reason, name="suspend")


def contract_resume(*, contract_id: int, actor, reason: str):
    """Lift our suspension: the contract goes back to the state it was suspended from (``suspended_from``). One
    suspended while limited, or limited by risk while suspended, comes back limited — the limit is risk's decision on
    a channel's risk action and only risk lifts it (merchants.services.contract_risk); a clerk's suspend and resume
    must not end it, nor make risk wait for the resume to act (design §4, §8)."""
    return _contract_staff_transition(contract_id=contract_id, actor=actor, reason=reason, name="resume")


# Risk's decision on the limit of a contract a clerk holds suspended (merchants.services.contract_risk: limited, or
# its limit lifted, while suspended) is a ``suspended → suspended`` timeline entry whose data carries this key, with
# RISK_LIMIT_SET or RISK_LIMIT_LIFTED: the suspension goes on, and the resume goes back to what the latest one says.
RISK_LIMIT_KEY = "risk_limit"
RISK_LIMIT_SET, RISK_LIMIT_LIFTED = "set", "lifted"


def suspended_from(contract: Contract) -> str:
    """The state a suspended contract goes back to when resumed: the state of its latest move to suspended on the
    timeline (every suspension writes one, ``_contract_staff_transition``) — unless risk limited it or lifted its
    limit since, while it was suspended (``RISK_LIMIT_KEY``): then the latest of those decides, limited or active.
    Active when nothing is recorded — the machine's own ``suspended → active``. Any other ``suspended → suspended``
    entry (a channel's late answer, ``contracts._event``) is a note that says nothing of where the suspension came
    from, and is passed over."""
    entry = (contract.events.filter(to_state=ContractState.SUSPENDED)
             .filter(~Q(from_state=ContractState.SUSPENDED) | Q(data__has_key=RISK_LIMIT_KEY))
             .order_by("-created_at", "-id").values_list("from_state", "data").first())
    if entry is None:
        return ContractState.ACTIVE
    from_state, data = entry
    if from_state == ContractState.SUSPENDED:
        return ContractState.LIMITED if (data or {}).get(RISK_LIMIT_KEY) == RISK_LIMIT_SET else ContractState.ACTIVE
    return from_state


def contract_terminate(*, contract_id: int, actor, reason: str):
    return _contract_staff_transition(contract_id=contract_id, actor=actor, reason=reason, name="terminate")


def _contract_staff_transition(*, contract_id: int, actor, reason: str, name: str):
    from merchants.models import ContractEvent

    require_perm(actor, "merchants.change_contract")
    reason = required_reason(reason, verb=f"{name} a contract")
    with transaction.atomic():
        contract = lock_contract_alone(contract_id)
        method = getattr(contract, name)
        if not can_proceed(method):
            raise InvalidState(f"the contract is {contract.state}; it cannot {name}")
        if name == "resume" and suspended_from(contract) == ContractState.LIMITED:
            # Read under the contract's lock: its timeline grows only with its state, which the lock holds still.
            method = contract.resume_limited
        before = contract.state
        method()
        contract.save()
        ContractEvent.objects.create(contract=contract, source="staff", from_state=before, to_state=contract.state,
                                     message=reason)
        audit_log(actor=actor, action=f"merchants.contract.{name}", target=contract, reason=reason,
                  data={"from": before, "to": contract.state})
        if contract.merchant.partner_id:
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=contract.merchant_id, type="merchant.contract_updated")
    return contract

"""Limiting a channel contract on a channel's risk action, and lifting the limit (design §4 contract machine:
``active ⇄ limited``, "channel risk action"; §1 "Risk": we react by routing away).

A limited contract takes no new orders: routing only chooses active contracts (channels.routing ``choose``), so the
merchant's traffic for the products it served goes to its other contracts, or is refused when there are none. Its
orders already placed, their refunds and callbacks go on as before. A risk officer does this from a channel risk
notice (risk.services.channel_notices), or on the merchant's page (merchants.views ``contract_limit``,
``contract_lift_limit``: there, whatever limit is in force is lifted); the permission is risk's
(``risk.limit_contract``). A clerk's suspension keeps the limit: resumed, the contract is limited again
(merchants.services.settlement ``contract_resume``).

A clerk's suspension does not stop risk either: a channel may punish a sub-merchant we hold suspended, or lift its
punishment meanwhile. Limiting a suspended contract, or lifting its limit, leaves it suspended — the suspension is the
clerk's to end — and records the decision on its timeline (``suspended → suspended``, settlement ``RISK_LIMIT_KEY``,
with who, why and the channel record as a limit from active has them); resumed, it comes back limited or active as
the latest decision says (settlement ``suspended_from``). Lifting is allowed there rather than refused: the notice
that tells us the channel lifted its limit (an appeal approved) arrives when it arrives, and is handled then; refused,
the officer could only note it, and the resume would bring back a limit the channel no longer imposes, with no notice
left to lift it from.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import actor_label_for, audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.permissions import require_perm
from merchants.models import Contract, ContractEvent, ContractState
from merchants.services.locks import lock_contract_alone
from merchants.services.settlement import RISK_LIMIT_KEY, RISK_LIMIT_LIFTED, RISK_LIMIT_SET, suspended_from
from merchants.validation import required_reason

LIMIT_PERM = "risk.limit_contract"
# The longest reason kept: what the merchant page's form allows (its textarea's maxlength), which also holds the
# notice path's "channel risk notice <record id>: <note>" (a note is at most risk.services.channel_notices
# NOTE_MAX_LENGTH, 1000). The form's limit is the browser's only: a longer one posted is refused here (design §5).
REASON_MAX_LENGTH = 2000


def contract_limit(*, contract_id: int, actor, reason: str, data: dict | None = None) -> Contract:
    """Limit an active contract (``active → limited``), or a suspended one (it stays suspended, and resumes limited:
    ``limit_while_suspended``). ``reason`` is required; ``data`` goes on the audit row and the contract's timeline
    (e.g. the channel notice it answers). Raises Forbidden, NotFound, InvalidRequest (the reason), InvalidState."""
    return _transition(contract_id=contract_id, actor=actor, reason=reason, data=data, name="limit", verb="limit")


def contract_lift_limit(*, contract_id: int, actor, reason: str, data: dict | None = None,
                        record_id: str | None = None) -> Contract:
    """Lift a contract's limit (``limited → active``): routing may choose it again. On a suspended contract whose
    resume would bring back a limit, that limit is lifted: it stays suspended, and resumes active
    (``lift_limit_while_suspended``).

    ``record_id``: lift it only if it was set for that channel record (the ``record_id`` on the timeline entry that
    limited it, as a channel risk notice's limit carries). A limit set for another punishment, or not on a notice at
    all, is another decision for another reason: an update about this record (its appeal approved) does not end it.
    Raises InvalidState naming the limit in force; checked under the contract's lock."""
    return _transition(contract_id=contract_id, actor=actor, reason=reason, data=data, name="lift_limit",
                       verb="lift the limit of", record_id=record_id)


def limit_event(contract: Contract) -> ContractEvent | None:
    """The timeline entry that put ``contract`` in its limit, or holds it for the resume (None if it never was): the
    latest ``active → limited``, or risk's limit recorded while suspended (``suspended → suspended``, settlement
    ``RISK_LIMIT_KEY`` set). A contract resumed into its limit (``suspended → limited``, settlement
    ``contract_resume``) is not limited anew: that entry does not say whose limit it is."""
    return (contract.events.filter(Q(from_state=ContractState.ACTIVE, to_state=ContractState.LIMITED)
                                   | Q(from_state=ContractState.SUSPENDED, to_state=ContractState.SUSPENDED,
                                       **{f"data__{RISK_LIMIT_KEY}": RISK_LIMIT_SET}))
            .order_by("-created_at", "-id").first())


def resumes_limited(contract: Contract) -> bool:
    """Whether ``contract`` is suspended with a limit its resume brings back (suspended from limited, or limited
    while suspended, and not lifted since)."""
    return contract.state == ContractState.SUSPENDED and suspended_from(contract) == ContractState.LIMITED


def limited_for(event: ContractEvent | None) -> str:
    """The channel record a limit was set for ("" when it was set otherwise)."""
    return str((event.data or {}).get("record_id") or "") if event is not None else ""


def _refuse_other_limit(contract: Contract, record_id: str) -> None:
    event = limit_event(contract)
    record = limited_for(event)
    if record == record_id:
        return
    when = f" by {event.data.get('by') or 'someone'} on {timezone.localtime(event.created_at):%Y-%m-%d %H:%M}" \
        if event is not None else ""
    why = f"for channel record {record}" if record else "not on a channel notice"
    raise InvalidState(f"the contract of {contract.merchant.merchant_no} on {contract.channel_account.code} was "
                       f"limited{when} {why}, not for {record_id}: lift it on a notice about that record",
                       param="action")


def _reason(reason, *, verb: str) -> str:
    text = required_reason(reason, verb=f"{verb} a contract")
    if len(text) > REASON_MAX_LENGTH:
        raise InvalidRequest(f"the reason is longer than {REASON_MAX_LENGTH} characters ({len(text)}): say it "
                             "shorter", param="reason")
    return text


# What each risk action is on a suspended contract: the suspension goes on, the timeline records the decision.
_WHILE_SUSPENDED = {"limit": ("limit_while_suspended", RISK_LIMIT_SET),
                    "lift_limit": ("lift_limit_while_suspended", RISK_LIMIT_LIFTED)}


def _transition(*, contract_id: int, actor, reason: str, data: dict | None, name: str, verb: str,
                record_id: str | None = None) -> Contract:
    require_perm(actor, LIMIT_PERM)
    reason = _reason(reason, verb=verb)
    with transaction.atomic():
        # Locked and re-checked: two officers acting on the same contract at once, or the channel's own onboarding
        # answer moving it, see each other's result rather than both moving it from the state they read. A clerk's
        # suspend or resume takes the same lock: each finds the other's outcome.
        try:
            contract = lock_contract_alone(contract_id)
        except Contract.DoesNotExist:
            raise NotFound(f"no contract {contract_id}", param="contract_id") from None
        whose = f"the contract of {contract.merchant.merchant_no} on {contract.channel_account.code}"
        extra = {}
        if contract.state == ContractState.SUSPENDED:
            method_name, decision = _WHILE_SUSPENDED[name]
            # Read under the lock: the timeline grows only under it (settlement ``suspended_from``).
            held = suspended_from(contract) == ContractState.LIMITED
            if name == "limit" and held:
                raise InvalidState(f"{whose} is suspended and already resumes limited; cannot {verb} it again")
            if name == "lift_limit" and not held:
                raise InvalidState(f"{whose} is suspended and resumes active: it has no limit to lift")
            method, extra = getattr(contract, method_name), {RISK_LIMIT_KEY: decision}
        else:
            method = getattr(contract, name)
        if not can_proceed(method):
            raise InvalidState(f"{whose} is {contract.state}; cannot {verb} it")
        if record_id is not None:
            _refuse_other_limit(contract, record_id)
        before = contract.state
        method()
        contract.save()
        ContractEvent.objects.create(contract=contract, source="staff", from_state=before, to_state=contract.state,
                                     message=reason, data={"by": actor_label_for(actor), **(data or {}), **extra})
        audit = {"from": before, "to": contract.state}
        if extra:  # what the resume now brings back
            audit["resumes"] = ContractState.LIMITED if name == "limit" else ContractState.ACTIVE
        # Named as the other staff transitions of a contract are (merchants.services.settlement).
        audit_log(actor=actor, action=f"merchants.contract.{name}", target=contract, reason=reason,
                  data={**audit, "merchant": contract.merchant.merchant_no,
                        "account": contract.channel_account.code, **(data or {})})
        if contract.merchant.partner_id and contract.state != before:
            # A partner hears of each state change of its merchants' contracts (merchant-api.md "Partner
            # onboarding"), as for a suspension; a decision recorded on a suspended one changes no state.
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=contract.merchant_id, type="merchant.contract_updated")
    return contract

"""Limiting a channel contract on a channel's risk action, and lifting the limit (design §4 contract machine:
``active ⇄ limited``, "channel risk action"; §1 "Risk": we react by routing away).

A limited contract takes no new orders: routing only chooses active contracts (channels.routing ``choose``), so the
merchant's traffic for the products it served goes to its other contracts, or is refused when there are none. Its
orders already placed, their refunds and callbacks go on as before. A risk officer does this from a channel risk
notice (risk.services.channel_notices), or on the merchant's page (merchants.views ``contract_limit``,
``contract_lift_limit``: there, whatever limit is in force is lifted); the permission is risk's
(``risk.limit_contract``). A clerk's suspension keeps the limit: resumed, the contract is limited again
(merchants.services.settlement ``contract_resume``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import actor_label_for, audit_log
from aggpay.errors import InvalidState, NotFound
from aggpay.permissions import require_perm
from merchants.models import Contract, ContractEvent, ContractState
from merchants.validation import required_reason

LIMIT_PERM = "risk.limit_contract"


def contract_limit(*, contract_id: int, actor, reason: str, data: dict | None = None) -> Contract:
    """Limit an active contract (``active → limited``). ``reason`` is required; ``data`` goes on the audit row and
    the contract's timeline (e.g. the channel notice it answers). Raises Forbidden, NotFound, InvalidState."""
    return _transition(contract_id=contract_id, actor=actor, reason=reason, data=data, name="limit", verb="limit")


def contract_lift_limit(*, contract_id: int, actor, reason: str, data: dict | None = None,
                        record_id: str | None = None) -> Contract:
    """Lift a contract's limit (``limited → active``): routing may choose it again.

    ``record_id``: lift it only if it was set for that channel record (the ``record_id`` on the timeline entry that
    limited it, as a channel risk notice's limit carries). A limit set for another punishment, or not on a notice at
    all, is another decision for another reason: an update about this record (its appeal approved) does not end it.
    Raises InvalidState naming the limit in force; checked under the contract's lock."""
    return _transition(contract_id=contract_id, actor=actor, reason=reason, data=data, name="lift_limit",
                       verb="lift the limit of", record_id=record_id)


def limit_event(contract: Contract) -> ContractEvent | None:
    """The timeline entry that put ``contract`` in its limit: the latest ``active → limited`` (None if it never was).
    A contract suspended while limited and resumed comes back to the same limit (``suspended → limited``,
    merchants.services.settlement ``contract_resume``): that entry is not a new limit and does not say whose it is."""
    return (contract.events.filter(from_state=ContractState.ACTIVE, to_state=ContractState.LIMITED)
            .order_by("-created_at", "-id").first())


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


def _transition(*, contract_id: int, actor, reason: str, data: dict | None, name: str, verb: str,
                record_id: str | None = None) -> Contract:
    require_perm(actor, LIMIT_PERM)
    reason = required_reason(reason, verb=f"{verb} a contract")
    with transaction.atomic():
        # Locked and re-checked: two officers acting on the same contract at once, or the channel's own onboarding
        # answer moving it, see each other's result rather than both moving it from the state they read.
        contract = (Contract.objects.select_for_update(of=("self",), no_key=True)
                    .select_related("merchant", "channel_account").filter(pk=contract_id).first())
        if contract is None:
            raise NotFound(f"no contract {contract_id}", param="contract_id")
        method = getattr(contract, name)
        if not can_proceed(method):
            raise InvalidState(f"the contract of {contract.merchant.merchant_no} on {contract.channel_account.code} "
                               f"is {contract.state}; cannot {verb} it")
        if record_id is not None:
            _refuse_other_limit(contract, record_id)
        before = contract.state
        method()
        contract.save()
        ContractEvent.objects.create(contract=contract, source="staff", from_state=before, to_state=contract.state,
                                     message=reason, data={"by": actor_label_for(actor), **(data or {})})
        # Named as the other staff transitions of a contract are (merchants.services.settlement).
        audit_log(actor=actor, action=f"merchants.contract.{name}", target=contract, reason=reason,
                  data={"from": before, "to": contract.state, "merchant": contract.merchant.merchant_no,
                        "account": contract.channel_account.code, **(data or {})})
        if contract.merchant.partner_id:
            # A partner hears of each state change of its merchants' contracts (merchant-api.md "Partner
            # onboarding"), as for a suspension.
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=contract.merchant_id, type="merchant.contract_updated")
    return contract

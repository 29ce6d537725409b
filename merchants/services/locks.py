"""The one order in which the merchants services lock rows, the helpers that take them in it, and how they lock.

    OnboardingApplication → Merchant → Contract → ChannelAccount → SettlementChange → MerchantApp

A path may skip any of these, but never locks one after a later one: two transactions that lock the same rows in
opposite orders can each hold what the other waits for, and PostgreSQL then aborts one with "deadlock detected" — a
clerk's action lost as a 500, a channel's answer as a failed task. The order is the one most paths already had: the
clerk's and partner's paths lock an application with its merchant in one statement (which takes the application's
row first), and a change asked of contracts is recorded under the merchant's lock. What went the other way were the
paths that start from a child row — a channel's answer about a contract (which, activating the first one, completes
the application), a settlement change's answer, an app's change; they now read the parent's id unlocked (these
foreign keys never change) and lock the parent first.

Every lock here is FOR NO KEY UPDATE (``select_for_update(no_key=True)``, as the trades services take theirs) and
names the rows it means (``of=``; a ``select_related`` table is otherwise locked too). Two lockers of one row
exclude each other just as with FOR UPDATE, but an INSERT that references the row — an order, a refund or an event
of the merchant, an order on the channel account or the contract, a settlement change of the contract — takes only
FOR KEY SHARE on it, which FOR NO KEY UPDATE lets through. Under plain FOR UPDATE every such insert waited for the
lock's transaction: each order on an account stalled behind a channel's answer about any merchant's contract on it
(the answer locked the account it only reads), each order of a merchant behind a clerk's or risk officer's action on
it. So an insert does not count as locking what it references (under FOR UPDATE it did: the SettlementChanges that
``merchant_settlement_change`` records waited for each contract's lock). Only an UPDATE that changes a column a
foreign key may point at (a unique one: a contract's ``business_code``, renewed by ``_submission_record``) or a
DELETE takes FOR UPDATE, and then for that short transaction only.

The channel account is locked by the merchants services only where a rate is checked against the account's cost, so
that it waits for a cost change (channels.services.products ``channel_product_set`` locks the account) or the change
waits for it: ``contract_set_rate`` takes the account with the contract; ``contracts_create_for_application`` and
``contract_register_existing``, which make contracts at their rates, take the accounts (in id order) after the
application and merchant, then read the costs. A channel's answer
about a contract reads its account but does not lock it. Rows the merchant owns and that nothing else locks first
(documents, settlement accounts, contract rates and events, new apps) are written under these locks; the partner's
event feed and sequence (``partner_event_emit``, trades.services.events) come after all of them, at the end of the
transaction.

The paths, by what they lock (→ = then):

* application (+ merchant): ``_locked_application`` (onboarding transitions, ``merchant_record_update`` /
  ``_correct``, ``partner_merchant_correct``, ``partner_settlement_change`` → ``merchant_settlement_change``).
* application (+ merchant) → channel accounts: ``contracts_create_for_application``.
* merchant: ``merchant_settlement_change``.
* merchant → channel account: ``contract_register_existing``.
* application → merchant → contract: a channel's answer (``contract_apply_result`` and its poll and notice callers,
  ``lock_contract``) → on activation ``merchant_activate_on_contract`` (application and merchant again, already
  held).
* merchant → settlement change: ``settlement._apply`` (``lock_settlement_change``) → the merchant again.
* merchant → app: ``apps._locked_app`` (``lock_app``).
* contract → channel account: ``contract_set_rate``.
* one row only: the merchant (``document_add``, ``merchant_freeze`` …, ``merchant_app_issue``), a contract
  (``_submission_record``, ``_note``, ``_resend_record``, ``upload_documents``, the staff and risk transitions —
  risk's after its channel notice, risk.services.channel_notices), a settlement change (``_reschedule``), an app
  (``app_secret_reveal``).
"""

from __future__ import annotations

from merchants.models import Contract, Merchant, MerchantApp, OnboardingApplication, SettlementChange


def lock_application(application_id: int) -> OnboardingApplication:
    """The application and its merchant, in one statement (application first). Raises DoesNotExist."""
    return (OnboardingApplication.objects.select_for_update(of=("self", "merchant"), no_key=True)
            .select_related("merchant").get(pk=application_id))


def lock_merchant(merchant_id: int) -> Merchant:
    """The merchant. Raises Merchant.DoesNotExist."""
    return Merchant.objects.select_for_update(no_key=True).get(pk=merchant_id)


def lock_contract(contract_id: int) -> Contract:
    """The contract, after its application and merchant (only the merchant for a contract registered without an
    application), with its merchant and channel account selected — the account not locked. For a path that may go
    on to the application, as a channel's answer does when it activates the merchant's first contract. Raises
    Contract.DoesNotExist."""
    merchant_id, application_id = Contract.objects.values_list("merchant_id", "application_id").get(pk=contract_id)
    if application_id is not None:
        lock_application(application_id)
    else:
        lock_merchant(merchant_id)
    return (Contract.objects.select_for_update(of=("self",), no_key=True)
            .select_related("merchant", "channel_account").get(pk=contract_id))


def lock_contract_with_account(contract_id: int) -> Contract:
    """The contract and its channel account, in one statement (contract first): for a change checked against the
    account's cost (``contract_set_rate``), which a cost change (channels.services.products) must wait for and
    which must wait for one. Raises Contract.DoesNotExist."""
    return (Contract.objects.select_for_update(of=("self", "channel_account"), no_key=True)
            .select_related("channel_account").get(pk=contract_id))


def lock_contract_alone(contract_id: int) -> Contract:
    """The contract alone, with its merchant and account selected (their rows are not locked). Raises
    Contract.DoesNotExist."""
    return (Contract.objects.select_for_update(of=("self",), no_key=True).select_related("merchant", "channel_account")
            .get(pk=contract_id))


def lock_settlement_change(change_id: int) -> SettlementChange:
    """The settlement change, after its merchant, with the merchant selected. Raises SettlementChange.DoesNotExist."""
    merchant_id = SettlementChange.objects.values_list("merchant_id", flat=True).get(pk=change_id)
    lock_merchant(merchant_id)
    return (SettlementChange.objects.select_for_update(of=("self",), no_key=True)
            .select_related("merchant").get(pk=change_id))


def lock_app(app_id: str) -> MerchantApp:
    """The app, after its merchant, with the merchant selected. Raises MerchantApp.DoesNotExist."""
    merchant_id = MerchantApp.objects.values_list("merchant_id", flat=True).get(app_id=app_id)
    lock_merchant(merchant_id)
    return (MerchantApp.objects.select_for_update(of=("self",), no_key=True)
            .select_related("merchant").get(app_id=app_id))

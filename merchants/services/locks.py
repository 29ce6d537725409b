"""The one order in which the merchants services lock rows, and the helpers that take them in it.

    OnboardingApplication → Merchant → Contract (with its ChannelAccount) → SettlementChange → MerchantApp

A path may skip any of these, but never locks one after a later one: two transactions that lock the same rows in
opposite orders can each hold what the other waits for, and PostgreSQL then aborts one with "deadlock detected" — a
clerk's action lost as a 500, a channel's answer as a failed task. The order is the one most paths already had: the
clerk's and partner's paths lock an application with its merchant in one statement (which takes the application's
row first), and a change asked of contracts is recorded under the merchant's lock. What went the other way were the
paths that start from a child row — a channel's answer about a contract (which, activating the first one, completes
the application), a settlement change's answer, an app's change; they now read the parent's id unlocked (these
foreign keys never change) and lock the parent first.

Inserting a row waits for any row it references that another transaction holds (FOR KEY SHARE against FOR UPDATE),
so it counts as locking that row here: ``merchant_settlement_change`` locks the merchant and then records a
SettlementChange per active contract, i.e. locks each contract after the merchant. Rows the merchant owns and that
nothing else locks first (documents, settlement accounts, contract rates and events, new apps) are written under
these locks; the partner's event feed and sequence (``partner_event_emit``, trades.services.events) come after all
of them, at the end of the transaction.

The paths, by what they lock (→ = then):

* application (+ merchant): ``_locked_application`` (onboarding transitions, ``merchant_record_update`` /
  ``_correct``, ``partner_merchant_correct``, ``partner_settlement_change`` → ``merchant_settlement_change``),
  ``contracts_create_for_application`` → new contracts.
* merchant → contract: ``merchant_settlement_change`` (SettlementChange inserts), ``contract_register_existing``.
* application → merchant → contract: a channel's answer (``contract_apply_result`` and its poll and notice callers,
  ``lock_contract``) → on activation ``merchant_activate_on_contract`` (application and merchant again, already
  held) → a new MerchantApp.
* merchant → settlement change: ``settlement._apply`` (``lock_settlement_change``) → the merchant again.
* merchant → app: ``apps._locked_app`` (``lock_app``).
* one row only: the merchant (``document_add``, ``merchant_freeze`` …, ``merchant_app_issue``), a contract
  (``_submission_record``, ``_note``, ``_resend_record``, ``upload_documents``, ``contract_set_rate``, the staff
  and risk transitions), a settlement change (``_reschedule``), an app (``app_secret_reveal``).
"""

from __future__ import annotations

from merchants.models import Contract, Merchant, MerchantApp, OnboardingApplication, SettlementChange


def lock_application(application_id: int) -> OnboardingApplication:
    """The application and its merchant, in one statement (application first). Raises DoesNotExist."""
    return OnboardingApplication.objects.select_for_update().select_related("merchant").get(pk=application_id)


def lock_merchant(merchant_id: int) -> Merchant:
    return Merchant.objects.select_for_update().get(pk=merchant_id)


def lock_contract(contract_id: int) -> Contract:
    """The contract, after its application and merchant (only the merchant for a contract registered without an
    application), with its merchant and channel account selected — and locked — with it. For a path that may go on
    to the application, as a channel's answer does when it activates the merchant's first contract. Raises
    Contract.DoesNotExist."""
    merchant_id, application_id = Contract.objects.values_list("merchant_id", "application_id").get(pk=contract_id)
    if application_id is not None:
        lock_application(application_id)
    else:
        lock_merchant(merchant_id)
    return Contract.objects.select_for_update().select_related("merchant", "channel_account").get(pk=contract_id)


def lock_settlement_change(change_id: int) -> SettlementChange:
    """The settlement change, after its merchant, with the merchant selected. Raises SettlementChange.DoesNotExist."""
    merchant_id = SettlementChange.objects.values_list("merchant_id", flat=True).get(pk=change_id)
    lock_merchant(merchant_id)
    return SettlementChange.objects.select_for_update().select_related("merchant").get(pk=change_id)


def lock_app(app_id: str) -> MerchantApp:
    """The app, after its merchant, with the merchant selected. Raises MerchantApp.DoesNotExist."""
    merchant_id = MerchantApp.objects.values_list("merchant_id", flat=True).get(app_id=app_id)
    lock_merchant(merchant_id)
    return MerchantApp.objects.select_for_update().select_related("merchant").get(app_id=app_id)

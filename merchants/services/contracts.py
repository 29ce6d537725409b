"""Channel contracts (签约): created on approval, submitted to each channel, followed to the end — design §4, issue 4.

Rule 7 of design §5 shapes every function that talks to a channel: record intent in one short transaction, call the
adapter with no row lock held, apply the answer in a second short locked transaction. A channel that does not answer
(``ChannelUnknown``) changes nothing but the next poll time; only the channel's explicit answer moves a contract.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, InvalidState, NotFound
from aggpay.money import MoneyError, parse_rate
from aggpay.permissions import require_perm
from channels.adapters.base import OnboardingResult, OnboardingState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.models import ChannelAccount, ChannelProduct
from merchants.documents import channel_refusal, latest_documents
from merchants.models import (
    ApplicationState,
    Contract,
    ContractEvent,
    ContractRate,
    ContractState,
    OnboardingApplication,
)
from merchants.services.locks import (
    lock_application,
    lock_contract,
    lock_contract_alone,
    lock_contract_with_account,
    lock_merchant,
)
from merchants.validation import required_reason

logger = logging.getLogger(__name__)

# Default merchant rates when the record names none (design §1: offline ~0.38–0.6%, online higher).
# The one definition of which products are online (paid inside an app or on a web page, away from any counter); every
# other product is offline — the payer scans or shows a code, or pays on a store code's page (一码付: wechat.jsapi,
# alipay.jsapi, unionpay.qr with a payer id, design §1) or in the shop's mini program. The demo's channel costs are
# priced by it too (channels.services.demo ``_product_terms``), so a merchant approved on the demo's accounts at these
# defaults is never below their cost: with two definitions, JSAPI cost 0.60% on the demo and defaulted to 0.38% here,
# and no merchant asking for one-code-pay could be approved.
ONLINE_PRODUCTS = frozenset({"wechat.app", "wechat.h5", "alipay.app", "alipay.wap"})
DEFAULT_OFFLINE_RATE = Decimal("0.0038")
DEFAULT_ONLINE_RATE = Decimal("0.0060")

# Polling backoff for channels that send no onboarding notification (A.13: WeChat applyment has none).
POLL_FIRST = dt.timedelta(seconds=30)
POLL_MAX = dt.timedelta(hours=1)
# A submission the channel still does not know this long after it was recorded is taken as lost — its worker died
# before the call, or the channel's front dropped the request before storing it — and is sent again, once. Far
# longer than any channel call may take, so a submission still on its way is never sent twice.
RESEND_AFTER = dt.timedelta(minutes=10)
# "No application under that business code" as each channel says it: WeChat (RESOURCE_NOT_EXISTS, A.13) and Alipay
# 直付通 (ISV.ORDER_NOT_EXIST, B.7) arrive normalised as ``order_not_found``; the bank's APPLY_NOT_EXIST (bank.md
# §9.4) as a plain channel error.
NO_APPLICATION_CODES = {"bank": frozenset({"APPLY_NOT_EXIST"})}

# Which adapter answer moves a contract through which transition (design §4 contract machine).
RESULT_TRANSITIONS = {
    OnboardingState.SUBMITTED: None,
    OnboardingState.AUDITING: "audit",
    OnboardingState.REJECTED: "reject",
    OnboardingState.TO_BE_CONFIRMED: "ask_confirmation",
    OnboardingState.TO_BE_SIGNED: "ask_signature",
    OnboardingState.FINISHED: "activate",
    # Withdrawn (作废) at the channel: WeChat APPLYMENT_STATE_CANCELED (A.13), the bank's CANCELED (bank.md §9.5). It
    # will not be reviewed, so it is no longer followed; it lands where a refused application does — ``rejected``,
    # with a reason saying it was withdrawn (``_verdict_reasons``) — because that is the state a clerk acts on (the
    # "needs action" queue, the resubmit button, the partner's rejection reasons). A state of its own would add
    # nothing the reason does not say. The bank takes a withdrawn apply back under its apply_no (§9.3); WeChat does
    # not, so the resubmission goes under a new business code (NEW_CODE_AFTER_WITHDRAWAL).
    OnboardingState.CANCELED: "reject",
}
# Channels that never take a withdrawn application's code again. WeChat: ``business_code`` names one applyment
# (A.13) — a rejected one may be overwritten under it, a cancelled (作废) one stays cancelled, and a submission under
# its code is answered with that cancelled applyment. A contract WeChat withdrew is therefore resubmitted under the
# next generation of its code (``_next_business_code``). The bank takes a CANCELED apply back under its apply_no
# (bank.md §9.3, §9.5). Alipay 直付通 has no withdrawn state (B.7: ``031``, ``99``, ``-1``; its adapter never answers
# ``canceled``) and opens a new order under the ``external_id`` of a failed one.
NEW_CODE_AFTER_WITHDRAWAL = frozenset({"wechatpay"})
# A generation of a business code after the first: the first one's code + ``_G<n>`` (``_next_business_code``).
CODE_GENERATION = re.compile(r"(?P<first>.+)_G(?P<generation>[1-9][0-9]*)")
# The channel's two verdicts that end a submission: the contract is rejected and waits for a clerk.
VERDICTS = (OnboardingState.REJECTED, OnboardingState.CANCELED)
FOLLOWED_STATES = (ContractState.SUBMITTED, ContractState.AUDITING, ContractState.TO_BE_CONFIRMED,
                   ContractState.TO_BE_SIGNED)
# An answer about the submission before a resubmission (same business code, so the same application at the channel)
# can reach us after it: a notice of the old verdict re-sent or replayed, a poll that reads the channel before the
# resubmission has reached it. Where the answer carries the time of its event (``_notice_time``) that decides. Where
# it does not — every poll answer (A.13 applyment query, B.7 zftorder query and bank.md §9.4 carry no update time) —
# the old verdict can only be recognised by being the same as the one the contract was resubmitted from, and only
# while the resubmission may still be on its way to the channel: as long as a submission is given before it is
# taken as lost (RESEND_AFTER). After that the channel has had it, and the same verdict is its verdict on it — unless
# the channel never answered the resubmission (its call went unanswered, its worker died after recording it): then
# the channel may still hold the application as it was before, with its old verdict, and will never say "no such
# application" (``_follow_missing_submission`` cannot fire). The resubmission is sent again once instead
# (``_unanswered_resubmission``); only the same verdict after that is applied, with a note asking a person to look.
STALE_VERDICT_GRACE = RESEND_AFTER


def _rate(value, *, param: str) -> Decimal:
    """``parse_rate``'s answer, its refusal (not a decimal, a float, outside [0, 1), past 6 places) as an
    InvalidRequest naming the field (design §5 rules 1 and 12): a bare ValueError reaches the caller as a 500."""
    try:
        return parse_rate(value)
    except MoneyError as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param) from exc


def is_online(product: str) -> bool:
    return product in ONLINE_PRODUCTS


def default_rate(product: str) -> Decimal:
    return DEFAULT_ONLINE_RATE if is_online(product) else DEFAULT_OFFLINE_RATE


def _percent(rate: Decimal) -> str:
    """Decimal("0.006000") → "0.60%": exact, at least two decimals (as the staff pages show rates)."""
    whole, _, frac = format((rate * 100).normalize(), "f").partition(".")
    return f"{whole}.{frac.ljust(2, '0')}%"


def _below_cost_on_approval(*, account: ChannelAccount, product: str, rate: Decimal, cost: Decimal,
                            defaulted: bool) -> str:
    """What risk reads when approval cannot contract ``product`` on ``account`` at ``rate``: what is wrong, and who
    can do what about it. Not the merchant's rates page (``merchants:rates``, operations' override): it changes a
    contract's rates, and before approval there is none. The account's product page (``channels:product_edit``:
    operations section, ``channels.change_channelproduct``) is where operations correct the cost or stop the account
    onboarding merchants for the product (``onboards_merchants``, read by ``onboarding_offers``); the clerk can take
    the product off the requested ones after risk returns the application."""
    from django.urls import NoReverseMatch, reverse

    try:
        page = reverse("channels:product_edit", args=[account.code, product])
    except NoReverseMatch:  # the channel pages are not mounted (a trimmed URLconf)
        page = "Channels, the account's products"
    which = "the default rate " if defaulted else ""
    return (f"rates.{product}: {which}{_percent(rate)} is below {account.name}'s cost {_percent(cost)}. Operations can "
            f"correct that cost, or stop {account.name} onboarding merchants for {product}, on the account's product "
            f"page ({page}); or return the application for the clerk to take {product} off the requested products. "
            f"Then approve again.")


def next_poll_delay(attempts: int) -> dt.timedelta:
    return min(POLL_FIRST * (2 ** min(attempts, 10)), POLL_MAX)


def _event(contract: Contract, *, source: str, before: str, message: str = "", data: dict | None = None) -> None:
    ContractEvent.objects.create(contract=contract, source=source, from_state=before, to_state=contract.state,
                                 message=message, data=data or {})


def onboarding_offers(products) -> QuerySet[ChannelProduct]:
    """The offers that contract a merchant asking for ``products`` at approval: enabled products of enabled accounts
    that ops set to onboard merchants (``ChannelProduct.onboards_merchants``) — what approval contracts
    (``contracts_create_for_application``) and what a submission's documents are checked against
    (merchants.services.onboarding ``unusable_documents``)."""
    return ChannelProduct.objects.filter(product__in=products or [], enabled=True, onboards_merchants=True,
                                         account__enabled=True)


def contracts_create_for_application(*, application_id: int, actor, rates: dict[str, str] | None = None
                                     ) -> list[Contract]:
    """On approval: one pending contract per channel account that onboards a requested product.

    Which accounts onboard which product is ops' configuration (``ChannelProduct.onboards_merchants``).
    Rates come from ``rates`` (product → decimal string) or the defaults; none may be below the account's cost.
    """
    rates = rates or {}
    with transaction.atomic():
        application = lock_application(application_id)
        if not can_proceed(application.start_contracting):
            raise InvalidState(f"the application is {application.state}; contracts follow approval")
        merchant = application.merchant
        offered = onboarding_offers(merchant.requested_products)
        # The costs the rates are checked against are read with their accounts locked, after the application and
        # merchant (merchants/services/locks.py): a cost change (channels.services.products) waits for this check,
        # or it for the change and then reads the new cost, as for ``contract_set_rate``.
        locked = _lock_accounts(offered.values_list("account_id", flat=True))
        offers = offered.filter(account_id__in=locked).select_related("account").order_by("account_id", "product")
        by_account: dict[int, list[ChannelProduct]] = {}
        for offer in offers:
            by_account.setdefault(offer.account_id, []).append(offer)
        if not by_account:
            raise InvalidRequest("no enabled channel account onboards the requested products; ask operations",
                                 param="requested_products")
        contracts = []
        for offers_of_account in by_account.values():
            account = offers_of_account[0].account
            products = [offer.product for offer in offers_of_account]
            sub_appid, appid_from = sub_appid_from_record(merchant=merchant, account=account, products=products)
            contract, created = Contract.objects.get_or_create(
                merchant=merchant, channel_account=account,
                defaults={"application": application, "business_code": _business_code(), "sub_appid": sub_appid},
            )
            for offer in offers_of_account:
                rate = _rate(rates.get(offer.product, default_rate(offer.product)), param=f"rates.{offer.product}")
                if rate < offer.cost_rate:
                    raise InvalidRequest(
                        _below_cost_on_approval(account=account, product=offer.product, rate=rate,
                                                cost=offer.cost_rate, defaulted=offer.product not in rates),
                        param=f"rates.{offer.product}")
                ContractRate.objects.update_or_create(contract=contract, product=offer.product,
                                                      defaults={"rate": rate})
            if created:
                named = f"; WeChat appid {sub_appid} (the record's {appid_from})" if sub_appid else ""
                _event(contract, source="system", before="", message=f"created on approval for {account.name}{named}",
                       data={"sub_appid": sub_appid} if sub_appid else None)
            contracts.append(contract)
        application.start_contracting()
        application.save()
        audit_log(actor=actor, action="merchants.contracts.created", target=application,
                  data={"accounts": [c.channel_account.code for c in contracts]})
        from merchants import tasks

        for contract in contracts:
            tasks.submit_contract.delay_on_commit(contract.pk)
    return contracts


def _lock_accounts(account_ids) -> list[int]:
    """Lock these channel accounts (FOR NO KEY UPDATE, in id order, so two lockers of several queue up rather than
    deadlock) and return the ids of those that exist. Costs read after this are the ones in force until commit."""
    return list(ChannelAccount.objects.select_for_update(no_key=True).filter(pk__in=set(account_ids))
                .order_by("pk").values_list("pk", flat=True))


def _business_code() -> str:
    return "AGG" + timezone.localdate().strftime("%Y%m%d") + secrets.token_hex(6).upper()


def _next_business_code(code: str) -> str:
    """The code of the application that follows the one under ``code`` at a channel that does not take ``code``
    again: ``AGG20261126AB12CD34EF56`` → ``…_G2`` → ``…_G3``. Derived from the code, not drawn, so working it out
    again for the same resubmission gives the same code. 27 characters at most for any likely generation: within
    every channel's alphabet and length (WeChat letters, digits and ``_``; the bank's 6–32 ``[0-9A-Za-z_-]``, §2)."""
    match = CODE_GENERATION.fullmatch(code)
    first, generation = (match["first"], int(match["generation"])) if match else (code, 1)
    return f"{first}_G{generation + 1}"


def _code_for_resubmission(contract: Contract) -> str:
    """The business code the resubmission of the locked, rejected ``contract`` goes under: its own, unless its channel
    withdrew the application and does not take a withdrawn code back (NEW_CODE_AFTER_WITHDRAWAL)."""
    withdrawn = any(isinstance(r, dict) and r.get("withdrawn") for r in contract.rejection_reasons or [])
    if withdrawn and contract.channel_account.kind in NEW_CODE_AFTER_WITHDRAWAL:
        return _next_business_code(contract.business_code)
    return contract.business_code


# --- the merchant's WeChat appid on a contract (sub_appid) ----------------------------------------------------------
# Where the channel names the merchant's own WeChat appid in a trade (the adapter's ``needs_sub_appid``; a bank's
# wechat.jsapi and wechat.mini, bank.md §6.2), the payer's openid is "under sub_appid": it belongs to the official
# account or mini program that learnt it, and routing passes over a contract without one (channels.routing ``choose``,
# "no sub_appid on the contract"). The merchant's appids are in its record as scenarios, and go to the bank at
# onboarding as scene_info.official_account_appid / mini_program_appid (bank.md §9.3;
# merchants.services.channel_application). A contract carries one sub_appid, so one is chosen, in this order:
# wechat.jsapi's is the official account's — the 公众号 page's, and at a bank one-code-pay's (一码付), whose payer's
# openid has to come from WeChat's OAuth under that official account (channel-protocols.md §E: "Use the
# sub-merchant's official account as APPID → payer.sub_openid + sub_appid"); wechat.mini's, when the contract does
# not take wechat.jsapi, the mini program's (its openid comes from the mini program's own login). A product whose
# scenario names no appid gets none — another product's appid would have routing send its orders with an openid the
# channel will not match — and the contract's page says so, for a clerk to set it (``contract_set_sub_appid``).
SUB_APPID_SOURCES = (("wechat.jsapi", "official_account"), ("wechat.mini", "mini_program"))
SCENARIO_NAMES = {"official_account": "official account", "mini_program": "mini program"}
# A WeChat appid: "wx" and 16 characters (hexadecimal as WeChat issues them; letters and digits accepted).
WECHAT_APPID = re.compile(r"wx[0-9A-Za-z]{16}")
SUB_APPID_PERM = "merchants.change_contract"  # a clerk's, with the contract's other changes (aggpay.roles)
PRODUCT_NAMES = {"wechat.jsapi": "WeChat JSAPI", "wechat.mini": "WeChat mini program"}


def sub_appid_products(contract: Contract, products=None) -> list[str]:
    """The contract's products (``products`` if the caller has read them) its channel takes only with the merchant's
    WeChat appid (``needs_sub_appid``)."""
    from channels.routing import needs_sub_appid

    needed = needs_sub_appid(contract.channel_account.kind)
    if products is None:
        products = contract.rates.values_list("product", flat=True)
    return sorted(product for product in products if product in needed)


def sub_appid_from_record(*, merchant, account: ChannelAccount, products) -> tuple[str, str]:
    """The sub_appid a new contract of ``merchant`` on ``account`` for ``products`` names (SUB_APPID_SOURCES), and
    the record's scenario it comes from; ("", "") where the account needs none or the record has none."""
    from channels.routing import needs_sub_appid

    needed = needs_sub_appid(account.kind) & set(products)
    for product, scenario in SUB_APPID_SOURCES:
        if product in needed:
            appid = next((str(s.get("appid") or "").strip() for s in merchant.scenarios or []
                          if isinstance(s, dict) and s.get("type") == scenario), "")
            # Only an appid of WeChat's shape: anything else the channel refuses on every order; a clerk sets it.
            return (appid, SCENARIO_NAMES[scenario]) if WECHAT_APPID.fullmatch(appid) else ("", "")
    return "", ""


def contract_set_sub_appid(*, contract_id: int, sub_appid: str, actor, reason: str) -> Contract:
    """Set or change the merchant's WeChat appid on a contract (SUB_APPID_PERM, with a reason; audited and on the
    contract's timeline): the appid the payer's openid belongs to (bank.md §6.2). Routing reads it on the next order."""
    require_perm(actor, SUB_APPID_PERM)
    appid = sub_appid.strip() if isinstance(sub_appid, str) else ""
    if not WECHAT_APPID.fullmatch(appid):
        raise InvalidRequest("sub_appid: a WeChat appid is wx followed by 16 letters or digits, e.g. "
                             "wx8888888888888888", param="sub_appid")
    reason = required_reason(reason, verb="set the WeChat appid")
    with transaction.atomic():
        try:
            contract = lock_contract_alone(contract_id)
        except Contract.DoesNotExist:
            raise NotFound("no such contract", param="contract_id") from None
        if contract.state == ContractState.TERMINATED:
            raise InvalidState("the contract is terminated: nothing is paid on it again")
        if not contract.rates.filter(product__startswith="wechat.").exists():
            raise InvalidRequest(f"sub_appid: the contract on {contract.channel_account.name} takes no WeChat "
                                 "product", param="sub_appid")
        before = contract.sub_appid
        if before == appid:
            return contract
        contract.sub_appid = appid
        contract.save(update_fields=["sub_appid", "updated_at"])
        # On the contract's timeline through this row, as a rate change is (merchants.workbench.contract_timeline).
        audit_log(actor=actor, action="merchants.contract.sub_appid_set", target=contract, reason=reason,
                  data={"from": before, "to": appid})
    return contract


OVERRIDE_RATE_PERM = "merchants.override_contract_rate"  # Contract.Meta.permissions


def contract_set_rate(*, contract_id: int, actor, product: str, rate: str, below_cost_reason: str = ""
                      ) -> ContractRate:
    """Change a merchant rate (``merchants.change_contract``). Below the account's cost only with the override
    permission (OVERRIDE_RATE_PERM, an operator's — issue 4 "Contract": "unless an operator overrides with a reason")
    and a reason, both audited; whoever holds the override may set the rate at or above cost too."""
    may_override = actor is None or isinstance(actor, str) or actor.has_perm(OVERRIDE_RATE_PERM)
    if not may_override:
        require_perm(actor, "merchants.change_contract")
    value = _rate(rate, param="rate")
    below_cost_reason = (below_cost_reason or "").strip()  # a blank reason is none (the audit row says why)
    with transaction.atomic():
        # With its account: a cost change (channels.services.products) waits for this check, or it for the change.
        contract = lock_contract_with_account(contract_id)
        if contract.state == ContractState.TERMINATED:
            # Terminated is final (design §4): no order is priced on it again, so a new rate would only rewrite the
            # record of what the merchant was charged.
            raise InvalidState("the contract is terminated: its rates are kept as they were")
        offer = ChannelProduct.objects.filter(account=contract.channel_account, product=product).first()
        if offer is None:
            raise InvalidRequest(f"{contract.channel_account.name} does not serve {product}", param="product")
        if value < offer.cost_rate:
            require_perm(actor, OVERRIDE_RATE_PERM)
            if not below_cost_reason:
                raise InvalidRequest("a reason is required to price below cost", param="below_cost_reason")
        old = ContractRate.objects.filter(contract=contract, product=product).first()
        obj, _ = ContractRate.objects.update_or_create(
            contract=contract, product=product,
            defaults={"rate": value, "below_cost_reason": below_cost_reason if value < offer.cost_rate else ""})
        below = {"below_cost": str(offer.cost_rate)} if value < offer.cost_rate else {}
        audit_log(actor=actor, action="merchants.contract.rate_changed", target=contract, reason=below_cost_reason,
                  data={"product": product, "from": str(old.rate) if old else None, "to": str(value), **below})
    return obj


# --- talking to the channel -----------------------------------------------------------------------------------
def contract_submit(*, contract_id: int, actor=None, resubmission: bool = False) -> Contract:
    """Submit a pending contract's application to its channel (``resubmission``: a rejected one, by a clerk).

    Rule 7: the submission is first recorded under the row lock (``submit()`` → ``submitted``), so a second
    submission — an ``acks_late`` redelivery of the task, a double-clicked "resubmit" — finds the contract already
    submitted and answers it unchanged instead of calling the channel again. Pictures are uploaded (each once per
    channel: ``media_ids``), then the application, with no lock held; the answer is applied only if the contract is
    still where this submission left it. The channel de-duplicates by ``business_code``, which a resubmission reuses
    (A.13) — except that of an application withdrawn at a channel that keeps a withdrawn code: the resubmission
    takes the code's next generation (``_code_for_resubmission``), recorded with the submission itself, so a second
    submission finds it there rather than making another.
    """
    submission = _submission_record(contract_id, actor=actor, resubmission=resubmission)
    if submission is None:
        return Contract.objects.get(pk=contract_id)
    return _send(contract_id, submission=submission, actor=actor)


def _send(contract_id: int, *, submission: int, actor) -> Contract:
    """Upload, build and send the application whose sending the ContractEvent ``submission`` recorded, with no lock
    held; then apply the channel's answer if the contract is still where that record left it."""
    from merchants.services.channel_application import build_channel_application, upload_documents

    contract = Contract.objects.select_related("channel_account", "merchant").get(pk=contract_id)
    # Checked again here, on what is sent: a document uploaded since ``contract_resubmit`` checked them — while this
    # contract was already submitted, so ``document_add`` no longer counted it as waiting — or since a submission
    # that is sent again (``_resend_record``) would otherwise reach the channel's media upload and come back as
    # another rejection (A.13). Not sent; the contract is rejected naming the document, for the clerk to replace.
    unfit = _document_the_channel_cannot_take(contract)
    if unfit is not None:
        doc_type, refusal = unfit
        result = OnboardingResult(state=OnboardingState.REJECTED, message=f"not sent: {refusal}",
                                  rejections=[{"field": doc_type, "reason": f"not sent: {refusal}, then resubmit"}])
        return contract_apply_result(contract_id=contract_id, result=result, source="system", submitting=True,
                                     actor=actor, submission=submission)
    adapter = contract.channel_account.adapter()
    try:
        media = upload_documents(contract=contract, adapter=adapter)
        application = build_channel_application(contract=contract, media=media)
        result = adapter.onboarding_submit(application=application)
    except ChannelUnknown as exc:
        # The contract stays submitted and is polled (by business_code) until the channel says what it holds.
        return _note(contract_id, source="channel", message=f"submission unanswered, will retry: {exc.message}",
                     retry=True)
    except ChannelError as exc:
        if _already_at_channel(contract.channel_account, exc):
            # Not a verdict on the application: the channel already holds it under this business_code. Follow it.
            return _note(contract_id, source="channel", retry=True,
                         message=f"the channel already holds this application ({exc.channel_code}: "
                                 f"{exc.channel_message or exc.message}); following it",
                         data={"already_at_channel": exc.channel_code})
        if exc.retryable:  # after that: the bank's APPLY_IN_REVIEW is retryable too
            # Turned away at the door (WeChat 429 FREQUENCY_LIMITED, the bank's RATE_LIMITED, Alipay's "too fast"):
            # not the channel's verdict on the merchant, and the channel stored nothing (design §6: ``permanent``
            # says whether retrying can help). The contract stays submitted and is followed like an unanswered
            # submission: the poll finds no application and sends it again (``_resend_record``).
            return _note(contract_id, source="channel", retry=True,
                         message=f"the channel asked to be tried again later ({_refusal(exc)}); not a verdict on "
                                 "the application, which is sent again on the poll schedule",
                         data={"retryable_refusal": exc.channel_code or exc.code})
        result = OnboardingResult(state=OnboardingState.REJECTED, message=exc.channel_message or exc.message,
                                  rejections=[{"field": "", "reason": f"{exc.channel_code or exc.code}: "
                                                                      f"{exc.channel_message or exc.message}"}])
    return contract_apply_result(contract_id=contract_id, result=result, source="channel", submitting=True,
                                 actor=actor, submission=submission)


def _submission_record(contract_id: int, *, actor, resubmission: bool) -> int | None:
    """The first short transaction of a submission: lock, re-check, ``submit()``. Returns the id of the
    ContractEvent that marks this submission, or None when another submission got there first."""
    with transaction.atomic():
        contract = lock_contract_alone(contract_id)
        expected = ContractState.REJECTED if resubmission else ContractState.PENDING
        if contract.state != expected or not can_proceed(contract.submit):
            if resubmission and contract.state not in FOLLOWED_STATES:
                raise InvalidState(f"the contract is {contract.state}; only rejected contracts are resubmitted")
            # A redelivered task or a second click: the contract has moved on, the channel is not asked again.
            logger.info("contract %s is already %s; the repeated submission changes nothing", contract.pk,
                        contract.state)
            return None
        before = contract.state
        code = _code_for_resubmission(contract) if resubmission else contract.business_code
        renewed = {}
        if code != contract.business_code:
            # The withdrawn application stays at the channel under its code, with its id, its sub-merchant id (if
            # it got as far as signing) and its sign link; this contract follows the new one, which has none yet.
            renewed = {"withdrawn_business_code": contract.business_code,
                       "withdrawn_application_id": contract.channel_application_id,
                       "withdrawn_sub_mchid": contract.sub_mchid}
            contract.business_code, contract.channel_application_id = code, ""
            contract.sub_mchid = contract.sign_url = ""
        contract.submit()
        # Should this submission never come back (a worker lost mid-call), the poller asks the channel later.
        contract.poll_attempts = 0
        contract.next_poll_at = timezone.now() + POLL_MAX
        contract.save()
        message = "submitting to the channel"
        if renewed:
            message += (f" under a new business code {code}: {contract.channel_account.name} keeps the application "
                        f"it withdrew under {renewed['withdrawn_business_code']} and does not take that code again")
        event = ContractEvent.objects.create(contract=contract, source="system", from_state=before,
                                             to_state=contract.state, message=message,
                                             data={"business_code": code, **renewed} if renewed else {})
        if resubmission:
            audit_log(actor=actor, action="merchants.contract.resubmit_requested", target=contract,
                      data={"business_code": code, **renewed})
    return event.pk


def _already_at_channel(account, exc: ChannelError) -> bool:
    """Whether a refused submission only means the channel already holds an application under our business_code.
    WeChat (A.13) and Alipay 直付通 answer such a repeat with the existing application; the bank refuses it with a
    code of its own (bank.md §9.3)."""
    from channels.adapters import bank_onboarding

    codes = {"bank": bank_onboarding.ALREADY_APPLIED_CODES}.get(account.kind, frozenset())
    return exc.channel_code in codes


def contract_resubmit(*, contract_id: int, actor) -> Contract:
    """A clerk resubmits a contract the channel rejected, after correcting what it named (issue 4 "Flow").
    A second click while the first resubmission is under way answers the contract as it is.

    The documents it sends are the latest of each type (channel_application ``upload_documents``), perhaps uploaded
    since the submission checked them (``unusable_documents``) as the correction the channel asked for. One its
    channel cannot take (a PDF for WeChat Pay's media upload, A.13) is refused here, naming it, with nothing sent
    and nothing changed — not sent to fail at the channel's upload and come back as another rejection."""
    require_perm(actor, "merchants.change_contract")
    contract = Contract.objects.select_related("channel_account", "merchant").get(pk=contract_id)
    if contract.state != ContractState.REJECTED:
        raise InvalidState(f"the contract is {contract.state}; only rejected contracts are resubmitted")
    unfit = _document_the_channel_cannot_take(contract)
    if unfit is not None:
        doc_type, refusal = unfit
        raise InvalidRequest(f"{refusal}, then resubmit", param=f"documents.{doc_type}")
    return contract_submit(contract_id=contract_id, actor=actor, resubmission=True)


def _document_the_channel_cannot_take(contract: Contract) -> tuple[str, str] | None:
    """(doc_type, ``channel_refusal``'s sentence) for the first latest document the contract's channel cannot take,
    or None."""
    account = contract.channel_account
    accepted = account.adapter_class.accepted_documents
    if accepted is None:  # a channel that takes every document we store
        return None
    for doc_type, document in sorted(latest_documents(contract.merchant).items()):
        refusal = channel_refusal(doc_type=doc_type, content_type=document.content_type, size=document.size,
                                  channels={account.name: accepted})
        if refusal is not None:
            return doc_type, refusal
    return None


def contract_poll(*, contract_id: int) -> Contract:
    """Ask the channel for a followed contract's review state (for channels without notifications). A submitted
    contract the channel has no application for is sent again once it is clearly lost (``_follow_missing_submission``);
    so is a resubmission the channel never answered while it still gives the verdict the contract was resubmitted
    from (``_unanswered_resubmission``).
    """
    contract = Contract.objects.select_related("channel_account").get(pk=contract_id)
    if contract.state not in FOLLOWED_STATES:
        return contract
    try:
        result = contract.channel_account.adapter().onboarding_query(
            application_id=contract.channel_application_id, business_code=contract.business_code)
    except ChannelError as exc:
        if contract.state == ContractState.SUBMITTED and _channel_has_no_application(contract.channel_account, exc):
            return _follow_missing_submission(contract_id, exc=exc)
        return _note(contract_id, source="channel", message=f"query failed, will retry: {exc.message}", retry=True)
    outcome = _apply_result(contract_id=contract_id, result=result, source="channel", submitting=False, actor=None,
                            submission=None, event_time=None, may_resend=True)
    if outcome.resend is not None:
        # The resubmission the channel never received, recorded under the lock as sent again: send it, no lock held.
        return _send(contract_id, submission=outcome.resend, actor=None)
    return outcome.contract


def _channel_has_no_application(account, exc: ChannelError) -> bool:
    if isinstance(exc, ChannelUnknown):
        return False
    return exc.code == "order_not_found" or exc.channel_code in NO_APPLICATION_CODES.get(account.kind, frozenset())


def _follow_missing_submission(contract_id: int, *, exc: ChannelError) -> Contract:
    """The channel has no application under the business code of a submitted contract. Soon after the submission
    that only means it may still be on its way; later, the submission was lost (a worker died after recording it, a
    request dropped before the channel stored it) and is sent again — once, under the same business code, which
    the channel de-duplicates by (A.13 ``business_code``, B.7 ``external_id``, bank.md §9.3 ``apply_no``), so a
    copy that did arrive after all is answered, not doubled. If the channel still has nothing after that, the
    timeline asks a person to look; polling goes on."""
    resend = _resend_record(contract_id, exc=exc)
    if resend is None:
        return Contract.objects.get(pk=contract_id)
    return _send(contract_id, submission=resend, actor=None)


def _resend_record(contract_id: int, *, exc: ChannelError) -> int | None:
    """Under the lock: decide whether to send the lost submission again and, if so, record that (the ContractEvent
    whose id is returned marks the new sending, as ``_submission_record``'s does; a second poller finds it and
    waits). None when nothing is to be sent now."""
    now = timezone.now()
    answer = f"{exc.channel_code or exc.code}: {exc.channel_message or exc.message}"
    with transaction.atomic():
        contract = lock_contract_alone(contract_id)
        if contract.state != ContractState.SUBMITTED:
            return None  # an answer got there first
        last = _last_sending(contract)
        if last is not None and last.created_at > now - RESEND_AFTER:
            _poll_later(contract, message=f"the channel has no application yet ({answer}); the submission may still "
                                          "be on its way")
            return None
        if last is not None and "resend_of" in last.data and not _turned_away(contract, last):
            logger.warning("contract %s: %s has no application %s even after it was sent again", contract.pk,
                           contract.channel_account.code, contract.business_code)
            _poll_later(contract, message=f"the channel still has no application under {contract.business_code} "
                                          f"({answer}) after it was sent again once; a person must look")
            return None
        since = f" {(now - last.created_at) // dt.timedelta(minutes=1)} min after the submission" if last else ""
        contract.poll_attempts = 0
        contract.next_poll_at = now + POLL_MAX  # should this sending be lost too, the poller comes back
        contract.save(update_fields=["poll_attempts", "next_poll_at", "updated_at"])
        event = ContractEvent.objects.create(
            contract=contract, source="system", from_state=contract.state, to_state=contract.state,
            message=f"the channel has no application under {contract.business_code} ({answer}){since}: "
                    "re-sending it once",
            data={"resend_of": last.pk if last else None, "channel_code": exc.channel_code or exc.code})
        audit_log(actor=None, action="merchants.contract.submission_resent", target=contract,
                  data={"business_code": contract.business_code, "resend_of": last.pk if last else None,
                        "channel_answer": answer})
    return event.pk


def _last_sending(contract: Contract) -> ContractEvent | None:
    """The event that recorded the latest sending of the application: the move into ``submitted``
    (``_submission_record``) or a re-sending (``_resend_record``, ``_resend_resubmission``)."""
    return (contract.events.filter(Q(to_state=ContractState.SUBMITTED) & ~Q(from_state=ContractState.SUBMITTED)
                                   | Q(data__has_key="resend_of"))
            .order_by("-id").first())


def _turned_away(contract: Contract, sending: ContractEvent) -> bool:
    """Whether the channel refused ``sending`` with a retryable refusal (``_send``): it never stored it, so sending it
    again is not sending it twice, and the once-only limit on re-sending a lost submission does not count it."""
    return contract.events.filter(pk__gt=sending.pk, data__has_key="retryable_refusal").exists()


def _refusal(exc: ChannelError) -> str:
    return f"{exc.channel_code or exc.code}: {exc.channel_message or exc.message}"


def _poll_later(contract: Contract, *, message: str, source: str = "channel", data: dict | None = None) -> None:
    """On the locked ``contract``: ask the channel again after the next backoff step, and say why."""
    contract.poll_attempts += 1
    contract.next_poll_at = timezone.now() + next_poll_delay(contract.poll_attempts)
    contract.save(update_fields=["poll_attempts", "next_poll_at", "updated_at"])
    _event(contract, source=source, before=contract.state, message=message, data=data)


def contract_refresh_by_staff(*, contract_id: int, actor) -> Contract:
    """"Refresh from channel" on the merchant page: ``contract_poll`` now instead of at the next scheduled poll.
    The channel decides any change (its ContractEvent says so); the audit row records who asked and what came of
    it (design §5 rule 9), as "Sync now" does for an order."""
    require_perm(actor, "merchants.change_contract")  # the page's button needs it; so does the service (rule 11)
    before = Contract.objects.only("state").get(pk=contract_id).state
    contract = contract_poll(contract_id=contract_id)
    with transaction.atomic():
        audit_log(actor=actor, action="merchants.contract.staff_refreshed", target=contract,
                  data={"from": before, "to": contract.state})
    return contract


def _note(contract_id: int, *, source: str, message: str, retry: bool, data: dict | None = None) -> Contract:
    with transaction.atomic():
        contract = lock_contract_alone(contract_id)
        if retry:
            _poll_later(contract, source=source, message=message, data=data)
        else:
            _event(contract, source=source, before=contract.state, message=message, data=data)
    return contract


def contract_apply_result(*, contract_id: int, result: OnboardingResult, source: str, submitting: bool = False,
                          actor=None, submission: int | None = None, event_time: dt.datetime | None = None
                          ) -> Contract:
    """Apply a channel's onboarding answer (from submit, poll or notification). Idempotent: the same answer twice
    moves nothing the second time.

    ``submitting``: the answer to a submission. ``submission`` (from ``contract_submit``) names the event that
    recorded it; the answer is applied only while the contract is still where that submission left it, otherwise it
    is ignored and the timeline says so — a poll or notification got there first, or a newer submission followed.
    Any other answer is first checked for being about the submission before a resubmission (``_earlier_answer``;
    ``event_time``: when the event it reports happened, where the channel says so); such an answer is recorded on
    the timeline and moves nothing.
    """
    return _apply_result(contract_id=contract_id, result=result, source=source, submitting=submitting, actor=actor,
                         submission=submission, event_time=event_time).contract


@dataclass(frozen=True)
class _Applied:
    contract: Contract
    not_applied: str = ""  # why the answer was not applied ("" when it was)
    resend: int | None = None  # the ContractEvent recording that the resubmission is to be sent again, now


def _apply_result(*, contract_id: int, result: OnboardingResult, source: str, submitting: bool, actor,
                  submission: int | None, event_time: dt.datetime | None, may_resend: bool = False) -> _Applied:
    """``contract_apply_result``, also saying why the answer was not applied, and whether the caller is to send the
    resubmission again (``may_resend``: the poll, which has no lock held and sends it; any other caller has the
    poller do it — ``_unanswered_resubmission``)."""
    activated = False
    unanswered = None
    with transaction.atomic():
        # After its application and merchant: activating it completes the application (merchants/services/locks.py).
        contract = lock_contract(contract_id)
        before = contract.state
        if submitting:
            moved = _moved_since_submission(contract, submission)
            if moved:
                _event(contract, source=source, before=before,
                       message=f"answer to the submission ignored: {moved}",
                       data={"channel_state": result.state, "application_id": result.application_id,
                             "ignored": True})
                return _Applied(contract, moved)
        else:
            earlier = _earlier_answer(contract, result, event_time=event_time)
            if earlier:
                _event(contract, source=source, before=before, message=f"answer not applied: {earlier.why}",
                       data={"channel_state": result.state, "rejections": result.rejections,
                             "application_id": result.application_id, "stale": True,
                             "event_time": event_time.isoformat() if event_time else None})
                if earlier.ask_again_at is not None:
                    contract.next_poll_at = earlier.ask_again_at
                    contract.save(update_fields=["next_poll_at", "updated_at"])
                return _Applied(contract, earlier.why)
            unanswered = _unanswered_resubmission(contract, result, event_time=event_time)
            if unanswered is not None and "resend_of" not in unanswered.sending.data:
                return _resend_resubmission(contract, result, unanswered, source=source, may_resend=may_resend)
        if submitting and submission is None and can_proceed(contract.submit) and (
                result.state not in VERDICTS or before == ContractState.PENDING):
            contract.submit()  # an answer applied without contract_submit's record (pending: refused at the door)
        if result.application_id:
            contract.channel_application_id = result.application_id
        if result.sub_mchid:
            contract.sub_mchid = result.sub_mchid
        if result.sign_url:
            contract.sign_url = result.sign_url
        name = RESULT_TRANSITIONS.get(result.state)
        if name is not None and contract.state != _target_of(name):
            method = getattr(contract, name)
            if can_proceed(method):
                method()
            else:
                logger.warning("contract %s: channel says %s while %s; ignored", contract.pk, result.state,
                               contract.state)
        reasons_before = contract.rejection_reasons
        if contract.state == ContractState.REJECTED and result.state in VERDICTS:
            contract.rejection_reasons = _verdict_reasons(contract.channel_account, result)
        if contract.state in FOLLOWED_STATES:
            contract.poll_attempts = 0 if contract.state != before else contract.poll_attempts + 1
            contract.next_poll_at = timezone.now() + next_poll_delay(contract.poll_attempts)
        else:
            contract.next_poll_at = None  # nothing more to follow: polling stops
        contract.save()
        changed = contract.state != before
        if changed or submitting or contract.rejection_reasons != reasons_before:
            _event(contract, source=source, before=before, message=result.message or "",
                   data={"channel_state": result.state, "rejections": result.rejections,
                         "sub_mchid": result.sub_mchid, "application_id": result.application_id})
        if changed or submitting:
            audit_log(actor=actor, action=f"merchants.contract.{contract.state}", target=contract,
                      data={"from": before, "to": contract.state, "account": contract.channel_account.code,
                            "channel_state": result.state})
        if changed and contract.merchant.partner_id:  # the partner is told (merchant-api.md "Partner onboarding")
            from aggpay.api.partner_resource import partner_event_emit

            partner_event_emit(merchant_id=contract.merchant_id, type="merchant.contract_updated")
        if unanswered is not None and changed:
            # Sent twice, answered neither time, and the channel still gives the old verdict: it is applied, since
            # the channel may simply have refused the correction for the same reason — but it may equally never
            # have had it, which only the channel can tell. A person asks.
            account = contract.channel_account
            logger.warning("contract %s: %s gives the old verdict after the resubmission was sent twice unanswered",
                           contract.pk, account.code)
            _event(contract, source="system", before=contract.state,
                   message=f"{account.name} gives the verdict the contract was resubmitted from even after the "
                           f"resubmission was sent again, and answered neither sending: it may not have received the "
                           f"correction. Before resubmitting, a person must look — ask {account.name} what it holds "
                           f"under {contract.business_code}",
                   data={"correction_unconfirmed": True, "resubmission": unanswered.resubmission.pk,
                         "resend": unanswered.sending.pk})
        activated = changed and contract.state == ContractState.ACTIVE
        if activated:
            from merchants.services.activation import merchant_activate_on_contract

            merchant_activate_on_contract(contract=contract)
    return _Applied(contract)


def _verdict_reasons(account, result: OnboardingResult) -> list[dict]:
    """What a rejected contract shows the clerk (and the partner) for the channel's verdict ``result``."""
    if result.state == OnboardingState.CANCELED:
        said = f" ({result.message})" if result.message else ""
        return [{"field": "", "withdrawn": True,
                 "reason": f"withdrawn at the channel: {account.name} cancelled the application{said} and will not "
                           "review it; find out why before resubmitting it"}, *result.rejections]
    return result.rejections or [{"field": "", "reason": result.message}]


def _same_reasons(first: list, second: list) -> bool:
    def key(reasons):
        return sorted((str(r.get("field") or ""), str(r.get("reason") or "")) if isinstance(r, dict) else ("", str(r))
                      for r in reasons or [])
    return key(first) == key(second)


@dataclass(frozen=True)
class _Earlier:
    why: str
    ask_again_at: dt.datetime | None = None  # when to ask the channel again (a poll answer not trusted yet)


def _earlier_answer(contract: Contract, result: OnboardingResult, *, event_time: dt.datetime | None
                    ) -> _Earlier | None:
    """Whether the channel's answer (not the answer to our own submit call) is about the submission before the
    locked ``contract``'s current one, a resubmission — see STALE_VERDICT_GRACE. None when it is not, or when that
    cannot be told."""
    if event_time is None and (contract.state not in FOLLOWED_STATES or result.state not in VERDICTS):
        return None  # before the resubmission the channel held a verdict; only a verdict can be that old answer
    current = _current_submission(contract)
    if current is None or current.from_state != ContractState.REJECTED:
        return None  # the first submission: no earlier one to confuse it with
    if "withdrawn_business_code" in current.data:
        return None  # resubmitted under a new business code: no answer about the earlier application names it
    submitted_at = current.created_at
    if event_time is not None:
        # The channel's event time is to the second and on its clock; ours is finer. An event in an earlier second
        # than the resubmission was recorded in happened before the channel could have had it. Should the channel's
        # clock lag ours, a quick verdict on the resubmission may be taken for an earlier one: it is only late — the
        # contract is still followed and the poll reads it (after STALE_VERDICT_GRACE at most) — whereas an old
        # verdict taken for a new one would undo the resubmission.
        if event_time < submitted_at.replace(microsecond=0):
            return _Earlier(f"it predates the current submission — the channel's event is of "
                            f"{_when(event_time)}, the resubmission was recorded at {_when(submitted_at)}")
        return None
    if not _same_reasons(_verdict_reasons(contract.channel_account, result), contract.rejection_reasons):
        return None  # a verdict for other reasons is about the resubmission
    # From the latest sending: a resubmission sent again (``_resend_resubmission``) is given the same time to arrive.
    last = _last_sending(contract)
    sent_at = max(submitted_at, last.created_at) if last is not None else submitted_at
    trusted_from = sent_at + STALE_VERDICT_GRACE
    if timezone.now() >= trusted_from:
        return None
    again = f", sent again at {_when(sent_at)}" if sent_at != submitted_at else ""
    return _Earlier(f"the channel still gives the verdict the contract was resubmitted from (resubmitted at "
                    f"{_when(submitted_at)}{again}) and may not have the resubmission yet; it is asked again from "
                    f"{_when(trusted_from)}, when the same answer is its verdict on the resubmission",
                    ask_again_at=trusted_from)


@dataclass(frozen=True)
class _Unanswered:
    resubmission: ContractEvent  # the move rejected → submitted (``_submission_record``)
    sending: ContractEvent  # its latest sending: itself, or its re-sending (``_resend_resubmission``)


def _unanswered_resubmission(contract: Contract, result: OnboardingResult, *, event_time: dt.datetime | None
                             ) -> _Unanswered | None:
    """Whether the channel's answer ``result`` — read once the resubmission of the locked ``contract`` has had time to
    arrive (``_earlier_answer`` let it through) — is still the verdict the contract was resubmitted from, while the
    channel has never answered any sending of the resubmission. The channel may then never have received it: the
    apply call timed out or was dropped before the channel stored it, or the worker died after recording it. Under
    the same business code the channel still holds the earlier application and its verdict, so it never says "no
    such application" as it would for a lost first submission (``_follow_missing_submission``); the old verdict is
    all it can say. None when the answer is not that, or the channel did answer the resubmission (then it had it,
    and the same verdict is its verdict on it)."""
    if event_time is not None or contract.state != ContractState.SUBMITTED or result.state not in VERDICTS:
        return None  # a dated notice is told by its date; a contract the channel moved on has been answered
    resubmission = _current_submission(contract)
    if resubmission is None or resubmission.from_state != ContractState.REJECTED:
        return None
    if "withdrawn_business_code" in resubmission.data:
        return None  # a new business code: the channel says "no such application" if it never got it
    if not _same_reasons(_verdict_reasons(contract.channel_account, result), contract.rejection_reasons):
        return None
    if _answered_since(contract, resubmission):
        return None
    return _Unanswered(resubmission=resubmission, sending=_last_sending(contract) or resubmission)


def _answered_since(contract: Contract, event: ContractEvent) -> bool:
    """Whether the channel has answered the contract since ``event``: an answer of its applied or ignored (it carries
    the channel's state; an answer held back as an earlier one does not count), or its refusal of a sending because
    it already holds the application. A sending left unanswered (``ChannelUnknown``) or lost with its worker leaves
    neither."""
    return (contract.events.filter(pk__gt=event.pk, source="channel").exclude(data__has_key="stale")
            .filter(Q(data__has_key="channel_state") | Q(data__has_key="already_at_channel")).exists())


def _resend_resubmission(contract: Contract, result: OnboardingResult, unanswered: _Unanswered, *, source: str,
                         may_resend: bool) -> _Applied:
    """On the locked, submitted ``contract``: the channel still gives the verdict it was resubmitted from and never
    answered the resubmission (``_unanswered_resubmission``). The answer is not applied. For the poll
    (``may_resend``), the re-sending is recorded here, under the lock, like ``_resend_record``'s — once, under the
    same business code, which the channel de-duplicates by (A.13 ``business_code``, B.7 ``external_id``, bank.md
    §9.3 ``apply_no``), so a copy that did arrive is answered, not doubled — and the poll sends it with no lock held
    (design §5 rule 7). A second poller finds the re-sending recorded and holds the old verdict back again
    (``_earlier_answer`` counts from the latest sending). Any other caller (a notice) has the poller do it now."""
    now = timezone.now()
    account = contract.channel_account
    minutes = (now - unanswered.resubmission.created_at) // dt.timedelta(minutes=1)
    said = {"channel_state": result.state, "rejections": result.rejections, "application_id": result.application_id,
            "stale": True}
    why = (f"{account.name} still gives the verdict the contract was resubmitted from, {minutes} min after the "
           f"resubmission, and never answered the resubmission: it may never have received the correction (the "
           f"call went unanswered, or its worker was lost)")
    if not may_resend:
        contract.next_poll_at = now  # the poller sends it again
        contract.save(update_fields=["next_poll_at", "updated_at"])
        _event(contract, source=source, before=contract.state,
               message=f"answer not applied: {why}; the next poll sends it again", data=said)
        return _Applied(contract, why)
    contract.poll_attempts = 0
    contract.next_poll_at = now + POLL_MAX  # should this sending be lost too, the poller comes back
    contract.save(update_fields=["poll_attempts", "next_poll_at", "updated_at"])
    event = ContractEvent.objects.create(
        contract=contract, source="system", from_state=contract.state, to_state=contract.state,
        message=f"answer not applied: {why} — re-sending it once under {contract.business_code}",
        data={**said, "resend_of": unanswered.sending.pk})
    audit_log(actor=None, action="merchants.contract.submission_resent", target=contract,
              data={"business_code": contract.business_code, "resend_of": unanswered.sending.pk,
                    "channel_answer": f"{result.state}: the verdict the contract was resubmitted from"})
    return _Applied(contract, why, resend=event.pk)


def _current_submission(contract: Contract) -> ContractEvent | None:
    """The event that recorded the current submission: the latest move into ``submitted`` (``_submission_record``;
    a re-sending of a lost one, ``_resend_record`` or ``_resend_resubmission``, is the same submission)."""
    return (contract.events.filter(to_state=ContractState.SUBMITTED).exclude(from_state=ContractState.SUBMITTED)
            .order_by("-id").first())


def _when(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _moved_since_submission(contract: Contract, submission: int | None) -> str:
    """Why a submission's answer no longer applies to the locked ``contract`` ("" when it does)."""
    if submission is None:
        if contract.state in (ContractState.PENDING, ContractState.REJECTED, ContractState.SUBMITTED):
            return ""
        return f"the contract is already {contract.state}"
    if contract.state != ContractState.SUBMITTED:
        return f"the contract is {contract.state} now"
    later = ContractEvent.objects.filter(contract=contract, pk__gt=submission).exclude(from_state=F("to_state"))
    if later.exists():
        return "a newer submission is under way"
    return ""


def _target_of(transition_name: str) -> str:
    return {"audit": ContractState.AUDITING, "reject": ContractState.REJECTED,
            "ask_confirmation": ContractState.TO_BE_CONFIRMED, "ask_signature": ContractState.TO_BE_SIGNED,
            "activate": ContractState.ACTIVE}[transition_name]


def contracts_due_for_poll(*, now: dt.datetime | None = None, limit: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(Contract.objects.filter(state__in=FOLLOWED_STATES, next_poll_at__lte=now)
                .order_by("next_poll_at").values_list("pk", flat=True)[:limit])


def application_has_active_contract(application: OnboardingApplication) -> bool:
    return application.contracts.filter(state=ContractState.ACTIVE).exists()


__all__ = [
    "ApplicationState", "contract_apply_result", "contract_poll", "contract_set_rate", "contract_set_sub_appid",
    "contract_submit",
    "contracts_create_for_application", "contracts_due_for_poll", "next_poll_delay",
]


def contract_apply_callback(*, account, event) -> str:
    """channels.callbacks handler for onboarding notifications (Alipay zft passed/rejected, bank apply result)."""
    from channels.callbacks import CallbackRejected

    result = OnboardingResult(**{k: v for k, v in event.data.items() if k in OnboardingResult.__dataclass_fields__}) \
        if not isinstance(event.data.get("result"), OnboardingResult) else event.data["result"]
    # Our business code: ``business_code`` (bank), ``external_id`` (Alipay 直付通, B.7).
    code = str(event.data.get("business_code") or event.data.get("external_id") or "")
    ours = Contract.objects.filter(channel_account_id=account.pk)
    by_application = ours.filter(channel_application_id=result.application_id).first() \
        if result.application_id else None
    by_code = ours.filter(business_code=code).first() if code else None
    if by_application and by_code and by_application.pk != by_code.pk:
        raise CallbackRejected("the application id and the business code name different contracts")
    contract = by_application or by_code
    if contract is None:
        raise CallbackRejected("no contract of ours has that application")
    before = contract.state
    if by_application is None and contract.channel_application_id and result.application_id:
        # The notice names an application we do not hold (a resubmission replaced it, or this one's answer was
        # lost): ask the channel for the business code's current application rather than trust an old verdict.
        result = account.adapter().onboarding_query(application_id="", business_code=contract.business_code)
        event_time = None  # a query's answer: the channel's state now
    else:
        event_time = _notice_time(account, event)
    outcome = _apply_result(contract_id=contract.pk, result=result, source="channel", submitting=False, actor=None,
                            submission=None, event_time=event_time)
    if outcome.not_applied:
        return f"contract {contract.pk}: {before}, answer not applied: {outcome.not_applied}"
    return f"contract {outcome.contract.pk}: {before} → {outcome.contract.state}"


def _notice_time(account, event) -> dt.datetime | None:
    """When the event an onboarding notice reports happened, where the channel says so: the bank's ``notify_time``
    (bank.md §11.1), signed, and the same on every re-sending of the notice. Alipay's 蚂蚁消息 carry only the time
    they were sent (B.4) and WeChat sends no applyment notices (A.13), so neither has one."""
    from channels.adapters.bank_wire import parse_time

    stamp = (event.raw or {}).get("notify_time") if account.kind == "bank" else None
    try:
        return parse_time(stamp) if stamp else None
    except ValueError:
        return None


def contract_register_existing(*, merchant, account, sub_mchid: str, rates: dict[str, str], actor, reason: str,
                               app_auth_token: str = "", sub_appid: str = "") -> Contract:
    """Record a contract the merchant already holds at the channel (signed outside aggpay, or migrated from another
    system): active at once with its sub-merchant id. Rates follow the same floor as on approval."""
    require_perm(actor, "merchants.add_contract")
    reason = required_reason(reason, verb="register an existing contract")
    if not sub_mchid:
        raise InvalidRequest("sub_mchid is required", param="sub_mchid")
    with transaction.atomic():
        # One contract per merchant and account (``one_contract_per_account``): asked under the merchant's lock, so
        # two registrations at once cannot both pass and the second end in an IntegrityError (a 500).
        lock_merchant(merchant.pk)
        existing = Contract.objects.filter(merchant=merchant, channel_account=account).first()
        if existing is not None:
            raise InvalidRequest(f"{merchant.merchant_no} already has a contract on {account.name} ({existing.state}"
                                 f"{', sub-merchant ' + existing.sub_mchid if existing.sub_mchid else ''}); change "
                                 "that one instead", param="account")
        _lock_accounts([account.pk])  # before its costs are read: see contracts_create_for_application
        # Unique per account (``unique_sub_mchid_per_account``), across merchants: asked under the account's lock,
        # which another merchant's registration holds until it commits, so the second of two at once is refused here
        # rather than ending in an IntegrityError (a 500).
        if Contract.objects.filter(channel_account=account, sub_mchid=sub_mchid).exists():
            raise InvalidRequest(f"sub_mchid: {sub_mchid} is another merchant's contract on {account.name}",
                                 param="sub_mchid")
        offers = {o.product: o for o in ChannelProduct.objects.filter(account=account, product__in=list(rates))}
        missing = sorted(set(rates) - set(offers))
        if missing:
            raise InvalidRequest(f"{account.name} does not serve {', '.join(missing)}", param="rates")
        contract = Contract.objects.create(merchant=merchant, channel_account=account, state=ContractState.ACTIVE,
                                           business_code=_business_code(), sub_mchid=sub_mchid,
                                           sub_appid=sub_appid, app_auth_token=app_auth_token)
        for product, rate in rates.items():
            value = _rate(rate, param=f"rates.{product}")
            if value < offers[product].cost_rate:
                raise InvalidRequest(f"rates.{product}: {value:%} is below the cost {offers[product].cost_rate:%}",
                                     param=f"rates.{product}")
            ContractRate.objects.create(contract=contract, product=product, rate=value)
        _event(contract, source="staff", before="", message=f"registered as existing: {reason}",
               data={"sub_mchid": sub_mchid})
        audit_log(actor=actor, action="merchants.contract.registered_existing", target=contract, reason=reason,
                  data={"account": account.code, "sub_mchid": sub_mchid, "rates": rates})
    return contract

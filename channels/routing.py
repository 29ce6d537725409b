"""Choosing the channel account for a payment (design §7).

This is layer 1 (eligibility) and a priority order; the routing issue adds rules, weighted splits, manual
traffic switches and health on top of this same function. Every decision is returned with the candidates seen and
why each was dropped, and trades record it on the order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from aggpay.api import credentials
from aggpay.money import format_yuan
from channels.registry import adapter_class
from channels.sql import converted_row, prepared_cursor


@dataclass(frozen=True)
class Candidate:
    contract_id: int
    account_id: int
    account_code: str
    product: str
    merchant_rate: Decimal
    cost_rate: Decimal
    rebate_rate: Decimal
    sub_mchid: str


@dataclass
class RoutingDecision:
    chosen: Candidate | None
    layer: str  # which layer decided: "priority" today; "rule", "switch", "fallback" later
    candidates: list[dict] = field(default_factory=list)  # every contract seen, with why it was kept or dropped
    # The chosen contract with its ``channel_account``, loaded with what a channel call needs (the other fields are
    # deferred): callers build the adapter from ``contract.channel_account`` without reading them again.
    contract: object | None = None
    # The other eligible candidates with their rows, next best first: the fallback list of design §7 layer 4, for a
    # create the chosen account refuses retryably (trades.services.orders). Their contracts are built only when
    # asked for (``fallbacks``): nearly every order never needs them.
    others: list[tuple[Candidate, tuple]] = field(default_factory=list)
    # The (min, max) fen of each candidate passed over only for the amount: with no candidate left, a merchant is told
    # that the amount is what stands in the way, and which amounts would be taken (trades.services.orders).
    amount_ranges: list[tuple[int, int]] = field(default_factory=list)

    def fallbacks(self) -> list[tuple[Candidate, object]]:
        """The other eligible candidates in priority order, each with its contract loaded as ``contract`` is (its
        ``channel_account`` with what a channel call needs). No query: built from the rows the choice was made on."""
        return [(candidate, _contract(row)) for candidate, row in self.others]

    def as_record(self) -> dict:
        return {"layer": self.layer, "chosen": self.chosen.account_code if self.chosen else None,
                "candidates": self.candidates}


# Every order runs this: one written-out statement (the ORM spelling with prefetch took three queries and more
# time compiling than PostgreSQL spent answering — docs/benchmarks.md "Order creation"). It also brings the columns
# the chosen contract and account need to call the channel (sub-merchant ids, the account's gateway and
# credentials), so order creation reads neither again.
_CANDIDATES_SQL = """
    SELECT c.id, c.channel_account_id, a.code, a.enabled, c.state, c.sub_mchid, r.rate,
           p.id, p.enabled, p.min_amount, p.max_amount, p.cost_rate, p.isv_rebate_rate,
           c.merchant_id, c.sub_appid, c.app_auth_token, a.kind, a.name, a.mode, a.base_url, a.config,
           p.daily_cap
      FROM merchants_contract c
      JOIN merchants_contractrate r ON r.contract_id = c.id AND r.product = %s
      JOIN channels_channelaccount a ON a.id = c.channel_account_id
      LEFT JOIN channels_channelproduct p ON p.account_id = a.id AND p.product = %s
     WHERE c.merchant_id = %s
     ORDER BY c.created_at, c.id
"""
# The model fields behind the trailing columns, in order (Model.from_db builds partly loaded instances from them).
_CONTRACT_FIELDS = ("id", "channel_account_id", "state", "sub_mchid", "merchant_id", "sub_appid", "app_auth_token")
_ACCOUNT_FIELDS = ("id", "code", "enabled", "kind", "name", "mode", "base_url", "config")
# The contract's and account's columns are row[13:_DAILY_CAP]; the product's daily cap comes last, after them.
_DAILY_CAP = 21


# The rows a routing decision is made from, per (merchant, product), kept in this process under the merchant API's
# generation token (aggpay.api.credentials): every save of a model below replaces that token, and a signed request
# reads the current one (in the same Redis round trip as its nonce) before anything else. A request whose token is
# the one the rows were read under may use them; any other re-reads. Entries are trusted at most
# credentials.MAX_AGE_SECONDS (a write that bypasses model signals, ``QuerySet.update``, is seen within that time —
# there are none on these models). Money still depends only on what the rows say: the amount limits, the contract
# state and the rates are checked on every order.
ROUTING_INPUTS = ("merchants.Contract", "merchants.ContractRate", "channels.ChannelAccount", "channels.ChannelProduct")
_remembered = credentials.Remembered()


def _candidate_rows(merchant_id: int, product: str, token: int | None) -> list[tuple]:
    key = (merchant_id, product)
    rows = _remembered.recall_current(key, token)
    if rows is None:
        with prepared_cursor(_CANDIDATES_SQL) as cursor:
            cursor.execute(_CANDIDATES_SQL, [product, product, merchant_id])
            rows = cursor.fetchall()
        if token is not None:
            _remembered.remember(key, token, rows)
    return rows


@functools.cache
def needs_sub_appid(kind: str) -> frozenset[str]:
    """The products an account of ``kind`` can take only from a contract carrying the merchant's WeChat appid."""
    try:
        return adapter_class(kind).needs_sub_appid
    except ValueError:  # an account of a kind this build does not know: nothing to say about it here
        return frozenset()


def exact_rate(value) -> Decimal:
    """A rate column read by the raw query as the database hands it: PostgreSQL gives a Decimal, SQLite (the demo)
    a float or an int. ``Decimal(0.0038)`` is 0.00379999…, which rounds a fee down where 0.0038 rounds it up
    (design §5 rule 1: never float), so a float goes through its shortest repr, which is the stored decimal."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def choose(*, merchant, product: str, amount: int, token: int | None = None,
           only_account_id: int | None = None, exclude_contract_id: int | None = None) -> RoutingDecision:
    """Eligible = an active contract of the merchant on an enabled account that serves ``product`` (enabled)
    within its per-transaction limits and its daily cap, with the merchant's rate for it. Priority: the cheapest net
    cost to us (cost less rebate), then the oldest contract (stable); each eligible candidate's record says why it
    won or lost. One query whatever the data size, none when ``token`` (the merchant API's generation token this
    request read before any database read) is the one the merchant's rows were last read under — plus one, never
    remembered, for today's collected amounts when a candidate's product has a daily cap (``_hold_daily_caps``).

    ``only_account_id`` restricts the choice to that channel account (the other contracts are recorded as dropped,
    reason "not the payer's account"): a payer id learnt through one account's OAuth is only valid there (a WeChat
    openid belongs to one appid, channel-protocols.md §E), so one-code-pay routes its orders this way. Eligibility,
    limits and rates apply as usual; the restriction is a comparison on rows already read, no query.

    ``exclude_contract_id`` chooses as if that contract could not be chosen (recorded as dropped, reason
    "excluded"): risk's preview of what limiting it moves (risk.traffic_preview, design §7 "a preview of what
    moves") asks routing itself rather than a copy of its rules. Also a comparison on the rows read, no query."""
    from merchants.models import ContractState

    rows = _candidate_rows(merchant.pk, product, token)
    seen: list[dict] = []
    amount_ranges: list[tuple[int, int]] = []
    eligible: list[tuple[Candidate, tuple, dict]] = []
    capped: list[tuple[tuple, dict]] = []  # candidates a daily cap may still drop, with their records
    for row in rows:
        (contract_id, account_id, code, account_enabled, state, sub_mchid, rate, offer_id, offer_enabled,
         min_amount, max_amount, cost_rate, rebate_rate) = row[:13]
        reason = None
        if exclude_contract_id is not None and contract_id == exclude_contract_id:
            reason = "excluded"
        elif only_account_id is not None and account_id != only_account_id:
            reason = "not the payer's account"
        elif state != ContractState.ACTIVE:
            reason = f"contract {state}"
        elif not account_enabled:
            reason = "account disabled"
        elif offer_id is None or not offer_enabled:
            reason = "product not served"
        elif not row[14] and product in needs_sub_appid(row[16]):
            # The channel would refuse every such order (a definite PARAM_ERROR: the order failed); another
            # account may take it. Ops see the reason in the order's routing record and set the contract's appid.
            # Checked before the amount: "amount outside" must mean that only the amount stands in the way, since
            # one-code-pay may log a payer in at such an account for other amounts (trades.onecode.services
            # .oauth_account) — never at one that can take no amount at all.
            reason = "no sub_appid on the contract (the channel needs the merchant's WeChat appid)"
        elif amount < min_amount or amount > max_amount:
            reason = f"amount outside {min_amount}–{max_amount} fen"
            amount_ranges.append((min_amount, max_amount))
        seen.append({"account": code, "contract": contract_id, "eligible": reason is None, "reason": reason or ""})
        if row[_DAILY_CAP] is not None and (reason is None or reason.startswith("amount outside")):
            capped.append((row, seen[-1]))
        if reason is None:
            eligible.append((Candidate(contract_id=contract_id, account_id=account_id, account_code=code,
                                       product=product, merchant_rate=exact_rate(rate), cost_rate=exact_rate(cost_rate),
                                       rebate_rate=exact_rate(rebate_rate), sub_mchid=sub_mchid), row,
                             seen[-1]))
    if capped:
        dropped = _hold_daily_caps(capped, product=product, amount=amount)
        eligible = [item for item in eligible if item[0].contract_id not in dropped]
    if not eligible:
        return RoutingDecision(chosen=None, layer="priority", candidates=seen, amount_ranges=amount_ranges)
    # Rows come oldest contract first (created_at, id: the order merchants.services.products shows rates in), and
    # the sort is stable, so a tie on net cost goes to the oldest contract — for the chosen one and the fallbacks.
    ranked = sorted(eligible, key=lambda item: item[0].cost_rate - item[0].rebate_rate)
    chosen, row, _ = ranked[0]
    _record_priority(chosen, eligible)
    contract = _contract(row)
    return RoutingDecision(chosen=chosen, layer="priority", candidates=seen, contract=contract,
                           others=[(candidate, other_row) for candidate, other_row, _seen in ranked[1:]])


def _hold_daily_caps(capped: list[tuple[tuple, dict]], *, product: str, amount: int) -> set[int]:
    """Drop the candidates whose account has collected so much of ``product`` today that ``amount`` more would pass
    the product's daily cap (design §7 layer 1, "within its limits"); their records say how much was paid. Returns
    the contract ids dropped. One query for all of them, read on every call, never remembered with the rows: every
    payment changes it. Only collected money counts (channels.services.volume): orders in flight are not reserved,
    so concurrent ones may pass the cap by what they carry; the channel enforces its own hard limit.

    A candidate already dropped as "amount outside" is checked too, against its minimum amount: when not even that
    fits today, its reason becomes the cap. "amount outside" must keep meaning that another amount would be taken
    (one-code-pay logs payers in at such accounts: trades.onecode.services.oauth_account)."""
    from channels.services.volume import account_volumes_paid, local_day

    paid = account_volumes_paid(account_ids=sorted({row[1] for row, _seen in capped}), product=product,
                                day=local_day(timezone.now()))
    dropped = set()
    for row, seen in capped:
        cap, so_far, min_amount = row[_DAILY_CAP], paid.get(row[1], 0), row[9]
        if so_far + (amount if seen["eligible"] else min_amount) <= cap:
            continue
        left = f", {format_yuan(cap - so_far)} left" if so_far < cap else ""
        seen["reason"] = f"daily cap reached: {format_yuan(so_far)} of {format_yuan(cap)} yuan paid today{left}"
        if seen["eligible"]:
            seen["eligible"] = False
            dropped.add(row[0])
    return dropped


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def _record_priority(chosen: Candidate, eligible: list[tuple[Candidate, tuple, dict]]) -> None:
    """Say in each eligible candidate's record why it won or lost (issue 5: every order records why its account
    was chosen): its net cost to us (cost − rebate) against the chosen one's, and the contract age on a tie."""
    best = chosen.cost_rate - chosen.rebate_rate
    ties = sum(1 for candidate, _row, _seen in eligible if candidate.cost_rate - candidate.rebate_rate == best)
    for candidate, _row, seen in eligible:
        net = candidate.cost_rate - candidate.rebate_rate
        if candidate is chosen:
            seen["reason"] = f"chosen: lowest net cost {_percent(net)}" + (
                ", the oldest contract at that cost" if ties > 1 else "")
        elif net == best:
            seen["reason"] = f"net cost {_percent(net)}, as the chosen one, which is an older contract"
        else:
            seen["reason"] = f"net cost {_percent(net)}, above the chosen {_percent(best)}"


def _contract(row: tuple):
    """The chosen contract with its channel account, new instances each time (callers may set attributes on them),
    built from values converted once per row (``_contract_values``)."""
    from channels.models import ChannelAccount
    from merchants.models import Contract

    (contract_names, contract_values), (account_names, account_values) = _contract_values(row)
    contract = Contract.from_db(DEFAULT_DB_ALIAS, contract_names, list(contract_values))
    # The config is the one mutable value: each account gets its own copy of the top level.
    contract.channel_account = ChannelAccount.from_db(
        DEFAULT_DB_ALIAS, account_names, [dict(v) if isinstance(v, dict) else v for v in account_values])
    return contract


@functools.lru_cache(maxsize=512)
def _contract_values(row: tuple) -> tuple[tuple[list[str], list], tuple[list[str], list]]:
    """The contract's and account's field values from a candidate row, through each field's ``from_db_value``.
    Converting meant decrypting the account's credentials (two Fernet decryptions) on every order, 4% of an order
    create's CPU (py-spy, docs/benchmarks.md). Keyed by the row itself: a changed config or token is a new row
    (the ciphertext is part of it), so nothing stale is ever served; 512 rows bound the memory."""
    from channels.models import ChannelAccount
    from merchants.models import Contract

    contract_id, account_id, code, account_enabled, state, sub_mchid = row[:6]
    merchant_id, sub_appid, app_auth_token, kind, name, mode, base_url, config = row[13:_DAILY_CAP]
    return (converted_row(Contract, _CONTRACT_FIELDS,
                          [contract_id, account_id, state, sub_mchid, merchant_id, sub_appid, app_auth_token]),
            converted_row(ChannelAccount, _ACCOUNT_FIELDS,
                          [account_id, code, account_enabled, kind, name, mode, base_url, config]))

"""Where routing sends a contract's orders once it may no longer choose that contract, and which of them the merchant
API then refuses (design §7: switching "with a preview of what moves"). Two previews share it: risk's of limiting one
contract (risk.traffic_preview), and operations' of disabling a channel account (``account_disable_preview``). A
merchant has one contract per account (merchants.models ``one_contract_per_account``), so disabling the account takes
each of its contracts out of routing exactly as limiting that contract would.

Routing itself answers (``channels.routing.choose`` with ``exclude_contract_id``), never a copy of its rules. Its
answer depends on the amount only through the accounts' per-transaction limits, so a contract's own limits for a
product are cut into bands where another account's limits begin or end, and routing is asked once per band (when
routing's rules gain amount bands, design §7 layer 2, their edges belong here too). Nothing here writes.

Routing is asked under the API's generation token (aggpay.api.credentials), so every further band of a product, and
every other contract of the same merchant, reuses the rows routing read for that merchant and product: one read per
(merchant, product), whatever the number of bands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import F, FilteredRelation, Q, QuerySet

from aggpay.api import credentials
from aggpay.money import format_yuan
from channels.routing import RoutingDecision, choose

logger = logging.getLogger(__name__)

LIMIT = "limit"  # an active contract: what taking it out of routing would move
NOW = "now"  # a limited contract: where its orders go now


@dataclass(frozen=True)
class Destination:
    """The contract routing chooses for a band of orders, and the merchant's rate on it."""

    contract_id: int
    account_code: str
    account_name: str
    merchant_rate: Decimal

    @property
    def rate(self) -> str:
        from merchants.forms import percent_text  # merchants imports channels: read when shown

        return percent_text(self.merchant_rate)


@dataclass(frozen=True)
class Band:
    """Orders of one product from ``min_amount`` to ``max_amount`` fen (None: no upper end), routed alike."""

    min_amount: int
    max_amount: int | None
    moves: bool  # LIMIT: the contract takes these orders today and would not once out of routing
    to: Destination | None  # where they go: once out of routing when they move, today otherwise; None = refused
    refused: bool  # the merchant API will refuse them because of the change (what the person must not miss)
    why_not_here: str  # LIMIT, not moving: routing's reason for not giving them to this contract today

    @property
    def amounts(self) -> str:
        low = f"¥{format_yuan(self.min_amount)}"
        return f"{low}–¥{format_yuan(self.max_amount)}" if self.max_amount is not None else f"from {low}"


@dataclass
class ContractOffers:
    """What one contract's preview is asked from, read by ``read_offers``: the merchant's rate per product on it,
    its own account's limits per product, and where any of the merchant's accounts' limits begin or end."""

    rates: dict[str, Decimal] = field(default_factory=dict)
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)  # this contract's account: product -> (min, max)
    edges: dict[str, set[int]] = field(default_factory=dict)  # product -> amounts where some account's limits change


_OFFERS = "contract__merchant__contracts__channel_account__products"


def read_offers(rates: QuerySet) -> dict[int, ContractOffers]:
    """For the contracts of the ContractRate queryset ``rates``, by contract id, in one query: each rate with every
    offer of its product on the accounts of the contract merchant's contracts (a row of NULLs for a contract whose
    account does not serve it)."""
    offers: dict[int, ContractOffers] = {}
    for contract_id, own_account_id, product, rate, account_id, low, high in (
            rates.annotate(offer=FilteredRelation(_OFFERS, condition=Q(**{f"{_OFFERS}__product": F("product")})))
            .values_list("contract_id", "contract__channel_account_id", "product", "rate", "offer__account_id",
                         "offer__min_amount", "offer__max_amount")
            .distinct().order_by("contract_id", "product")):
        seen = offers.setdefault(contract_id, ContractOffers())
        seen.rates[product] = rate
        seen.edges.setdefault(product, set())
        if account_id is None:
            continue
        if account_id == own_account_id:
            seen.limits[product] = (low, high)
        seen.edges[product].update((low, high + 1))
    return offers


def generation_token() -> int | None:
    """The API's generation token, under which routing remembers the rows it read (channels.routing): every band
    and contract after the first of a merchant's product costs no query. Without the cache the preview is still
    right, only dearer."""
    try:
        return credentials.generation_current()
    except Exception:  # the cache is down: ask routing without it
        logger.warning("traffic preview without the generation token", exc_info=True)
        return None


def contract_bands(contract, *, mode: str, product: str, offers: ContractOffers, token: int | None) -> list[Band]:
    """Routing's answer for ``contract``'s orders of ``product`` over the amounts its account takes (every amount
    when it does not serve the product), band by band, neighbouring bands routed alike merged. ``contract`` comes
    with its merchant."""
    low, high = offers.limits.get(product, (1, None))
    return _merged([_band(contract, mode, product, start, end, token)
                    for start, end in _bands(low, high, offers.edges.get(product, set()))])


def _bands(low: int, high: int | None, edges: set[int]) -> list[tuple[int, int | None]]:
    """``low``–``high`` cut at each amount where an account's limits begin (its min) or end (its max + 1)."""
    starts = sorted({low} | {edge for edge in edges if edge > low and (high is None or edge <= high)})
    return [(start, starts[i + 1] - 1 if i + 1 < len(starts) else high) for i, start in enumerate(starts)]


def _destination(decision: RoutingDecision) -> Destination | None:
    chosen = decision.chosen
    if chosen is None:
        return None
    return Destination(contract_id=chosen.contract_id, account_code=chosen.account_code,
                       account_name=decision.contract.channel_account.name, merchant_rate=chosen.merchant_rate)


def _band(contract, mode: str, product: str, low: int, high: int | None, token: int | None) -> Band:
    """Routing's answer for the band, asked at its lowest amount (any amount in it gets the same)."""
    now = choose(merchant=contract.merchant, product=product, amount=low, token=token)
    if mode == NOW:
        to = _destination(now)
        return Band(min_amount=low, max_amount=high, moves=False, to=to, refused=to is None, why_not_here="")
    if now.chosen is not None and now.chosen.contract_id == contract.pk:
        to = _destination(choose(merchant=contract.merchant, product=product, amount=low, token=token,
                                 exclude_contract_id=contract.pk))
        return Band(min_amount=low, max_amount=high, moves=True, to=to, refused=to is None, why_not_here="")
    # Not this contract's orders today: taking it out moves none of them (routing would choose as it does now).
    why = next((seen["reason"] for seen in now.candidates if seen["contract"] == contract.pk), "")
    return Band(min_amount=low, max_amount=high, moves=False, to=_destination(now), refused=False,
                why_not_here=why)


def _merged(bands: list[Band]) -> list[Band]:
    """Neighbouring bands routed alike as one."""
    merged: list[Band] = []
    for band in bands:
        last = merged[-1] if merged else None
        if last is not None and (last.moves, last.to, last.refused, last.why_not_here) == (
                band.moves, band.to, band.refused, band.why_not_here):
            merged[-1] = Band(min_amount=last.min_amount, max_amount=band.max_amount, moves=band.moves, to=band.to,
                              refused=band.refused, why_not_here=band.why_not_here)
        else:
            merged.append(band)
    return merged


# --- disabling a channel account ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stranded:
    """A contract of the account whose merchant would be refused ``bands`` of a product once the account is
    disabled: no other contract of the merchant takes those amounts (``422 product_not_available``,
    merchant-api.md "Errors")."""

    contract: object  # merchants.Contract, with its merchant
    bands: list[Band]  # the refused ones only

    @property
    def amounts(self) -> str:
        return ", ".join(band.amounts for band in self.bands)


@dataclass(frozen=True)
class AccountProductPreview:
    product: str
    moving: int  # contracts whose orders of the product routing gives this account today (at some amount)
    stranded: list[Stranded]


@dataclass(frozen=True)
class AccountPreview:
    """What disabling an enabled account refuses, product by product."""

    contracts: int  # the account's active contracts (only those take orders)
    products: list[AccountProductPreview]

    @property
    def stranded(self) -> list[tuple[str, Stranded]]:
        return [(p.product, s) for p in self.products for s in p.stranded]

    @property
    def stranded_merchants(self) -> int:
        return len({s.contract.merchant_id for _product, s in self.stranded})

    @property
    def refused_labels(self) -> list[str]:
        """One line per product and merchant refused: "unionpay.qr: Demo Tea House (M…) ¥20,000.01–¥50,000.00"."""
        return [f"{product}: {s.contract.merchant.short_name} ({s.contract.merchant.merchant_no}) {s.amounts}"
                for product, s in self.stranded]


def account_disable_preview(account) -> AccountPreview | None:
    """For an enabled account: for each product it serves (enabled), how many of its active contracts' orders routing
    would send elsewhere, and which merchants — at which amounts — no other contract of theirs would take, so that
    the merchant API would refuse them. None for a disabled account (disabling it moves nothing).

    Queries: the account's products, its active contracts with their merchants, their rates with the offers
    (``read_offers``), then routing's one read per (merchant, product) — not one per band."""
    from merchants.models import Contract, ContractRate, ContractState

    if not account.enabled:
        return None
    served = list(account.products.filter(enabled=True).order_by("product").values_list("product", flat=True))
    contracts = list(Contract.objects.filter(channel_account=account, state=ContractState.ACTIVE)
                     .select_related("merchant").order_by("merchant__merchant_no", "pk"))
    offers = read_offers(ContractRate.objects.filter(contract__channel_account=account,
                                                     contract__state=ContractState.ACTIVE, product__in=served))
    token = generation_token()
    products = []
    for product in served:
        moving, stranded = 0, []
        for contract in contracts:
            seen = offers.get(contract.pk)
            if seen is None or product not in seen.rates:  # the merchant takes no such orders here
                continue
            bands = [band for band in contract_bands(contract, mode=LIMIT, product=product, offers=seen, token=token)
                     if band.moves]
            moving += bool(bands)
            refused = [band for band in bands if band.refused]
            if refused:
                stranded.append(Stranded(contract=contract, bands=refused))
        products.append(AccountProductPreview(product=product, moving=moving, stranded=stranded))
    return AccountPreview(contracts=len(contracts), products=products)

"""What limiting a channel contract does to its merchant's orders (design §7: switching "with a preview of what
moves"). For each product the contract serves (its rates), which of the merchant's other contracts routing would
choose instead, or that none would and the merchant API will refuse the product (``422 product_not_available``,
merchant-api.md "Errors"); for a contract already limited, where its orders go now.

Routing itself answers (``channels.routing.choose`` with ``exclude_contract_id``), never a copy of its rules. Its
answer depends on the amount only through the accounts' per-transaction limits, so the contract's own limits for a
product are cut into bands where another account's limits begin or end, and routing is asked once per band (when
routing's rules gain amount bands, design §7 layer 2, their edges belong here too). Nothing here writes.

Queries: one for the contract's products with the accounts' limits, then routing's one per product — asked under the
API's generation token (aggpay.api.credentials), so every further band of that product, and every other card of the
same merchant on the page, reuses the rows routing read: at most 1 + one per product, whatever the number of
contracts (the contract's merchant is read too if the contract comes without it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, FilteredRelation, Q

from aggpay.api import credentials
from aggpay.money import format_yuan
from channels.routing import RoutingDecision, choose
from merchants.forms import percent_text
from merchants.models import Contract, ContractRate, ContractState

logger = logging.getLogger(__name__)

LIMIT = "limit"  # an active contract: what limiting it would move
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
        return percent_text(self.merchant_rate)


@dataclass(frozen=True)
class Band:
    """Orders of one product from ``min_amount`` to ``max_amount`` fen (None: no upper end), routed alike."""

    min_amount: int
    max_amount: int | None
    moves: bool  # LIMIT: the contract takes these orders today and would not once limited
    to: Destination | None  # where they go: once limited when they move, today otherwise; None = refused
    refused: bool  # the merchant API will refuse them because of the limit (what an officer must not miss)
    why_not_here: str  # LIMIT, not moving: routing's reason for not giving them to this contract today

    @property
    def amounts(self) -> str:
        low = f"¥{format_yuan(self.min_amount)}"
        return f"{low}–¥{format_yuan(self.max_amount)}" if self.max_amount is not None else f"from {low}"


@dataclass(frozen=True)
class ProductPreview:
    product: str
    rate: str  # the merchant's rate on this contract
    bands: list[Band]

    @property
    def refused(self) -> bool:
        return any(band.refused for band in self.bands)

    @property
    def refused_label(self) -> str:
        """The product, with the amounts refused unless it is refused for every amount."""
        refused = [band.amounts for band in self.bands if band.refused]
        return self.product if len(refused) == len(self.bands) else f"{self.product} {', '.join(refused)}"


@dataclass(frozen=True)
class TrafficPreview:
    contract: Contract
    mode: str  # LIMIT or NOW
    products: list[ProductPreview]

    @property
    def refused_products(self) -> list[str]:
        return [p.product for p in self.products if p.refused]

    @property
    def refused_labels(self) -> list[str]:
        return [p.refused_label for p in self.products if p.refused]


def traffic_preview(contract: Contract) -> TrafficPreview | None:
    """For an active contract, what limiting it moves; for a limited one, where its orders go now; else None (a
    contract in any other state takes no orders, and limiting it moves none)."""
    if contract.state == ContractState.ACTIVE:
        mode = LIMIT
    elif contract.state == ContractState.LIMITED:
        mode = NOW
    else:
        return None
    # One query: the contract's rates, each with every offer of the product on the accounts of the merchant's
    # contracts (a row of NULLs for a contract whose account does not serve it).
    rates: dict[str, Decimal] = {}
    limits: dict[str, tuple[int, int]] = {}  # this contract's account: product -> (min, max)
    edges: dict[str, set[int]] = {}  # product -> amounts where some account's limits begin or end
    offers = "contract__merchant__contracts__channel_account__products"
    for product, rate, account_id, low, high in (
            ContractRate.objects.filter(contract=contract)
            .annotate(offer=FilteredRelation(offers, condition=Q(**{f"{offers}__product": F("product")})))
            .values_list("product", "rate", "offer__account_id", "offer__min_amount", "offer__max_amount")
            .distinct().order_by("product")):
        rates[product] = rate
        edges.setdefault(product, set())
        if account_id is None:
            continue
        if account_id == contract.channel_account_id:
            limits[product] = (low, high)
        edges[product].update((low, high + 1))
    token = _token()
    return TrafficPreview(contract=contract, mode=mode, products=[
        ProductPreview(product=product, rate=percent_text(rate),
                       bands=_merged([_band(contract, mode, product, low, high, token)
                                      for low, high in _bands(*limits.get(product, (1, None)), edges[product])]))
        for product, rate in rates.items()])


def _token() -> int | None:
    """The API's generation token, under which routing remembers the rows it read (channels.routing): every band
    and card after the first of a product costs no query. Without the cache the preview is still right, only dearer."""
    try:
        return credentials.generation_current()
    except Exception:  # the cache is down: ask routing without it
        logger.warning("traffic preview without the generation token", exc_info=True)
        return None


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


def _band(contract: Contract, mode: str, product: str, low: int, high: int | None, token: int | None) -> Band:
    """Routing's answer for the band, asked at its lowest amount (any amount in it gets the same)."""
    now = choose(merchant=contract.merchant, product=product, amount=low, token=token)
    if mode == NOW:
        to = _destination(now)
        return Band(min_amount=low, max_amount=high, moves=False, to=to, refused=to is None, why_not_here="")
    if now.chosen is not None and now.chosen.contract_id == contract.pk:
        to = _destination(choose(merchant=contract.merchant, product=product, amount=low, token=token,
                                 exclude_contract_id=contract.pk))
        return Band(min_amount=low, max_amount=high, moves=True, to=to, refused=to is None, why_not_here="")
    # Not this contract's orders today: limiting it moves none of them (routing would choose as it does now).
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

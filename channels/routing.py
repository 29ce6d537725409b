"""Choosing the channel account for a payment (design §7).

This is layer 1 (eligibility) and a priority order; the routing issue adds rules, weighted splits, manual
traffic switches and health on top of this same function. Every decision is returned with the candidates seen and
why each was dropped, and trades record it on the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from channels.models import ChannelProduct


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

    def as_record(self) -> dict:
        return {"layer": self.layer, "chosen": self.chosen.account_code if self.chosen else None,
                "candidates": self.candidates}


def choose(*, merchant, product: str, amount: int) -> RoutingDecision:
    """Eligible = an active contract of the merchant on an enabled account that serves ``product`` (enabled)
    within its per-transaction limits, with the merchant's rate for it. Priority: the cheapest cost to us, then the
    oldest contract (stable). Two queries whatever the data size."""
    from merchants.models import ContractState

    contracts = list(merchant.contracts.filter(rates__product=product).select_related("channel_account")
                     .prefetch_related("rates").order_by("created_at", "id"))
    offers = {o.account_id: o for o in ChannelProduct.objects.filter(
        account_id__in=[c.channel_account_id for c in contracts], product=product)}
    seen: list[dict] = []
    eligible: list[Candidate] = []
    for contract in contracts:
        account = contract.channel_account
        offer = offers.get(account.pk)
        reason = None
        if contract.state != ContractState.ACTIVE:
            reason = f"contract {contract.state}"
        elif not account.enabled:
            reason = "account disabled"
        elif offer is None or not offer.enabled:
            reason = "product not served"
        elif amount < offer.min_amount or amount > offer.max_amount:
            reason = f"amount outside {offer.min_amount}–{offer.max_amount} fen"
        seen.append({"account": account.code, "contract": contract.pk, "eligible": reason is None,
                     "reason": reason or ""})
        if reason is None:
            rate = next(r.rate for r in contract.rates.all() if r.product == product)
            eligible.append(Candidate(contract_id=contract.pk, account_id=account.pk, account_code=account.code,
                                      product=product, merchant_rate=rate, cost_rate=offer.cost_rate,
                                      rebate_rate=offer.isv_rebate_rate, sub_mchid=contract.sub_mchid))
    eligible.sort(key=lambda c: (c.cost_rate - c.rebate_rate, c.contract_id))
    return RoutingDecision(chosen=eligible[0] if eligible else None, layer="priority", candidates=seen)

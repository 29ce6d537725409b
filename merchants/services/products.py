"""What a merchant can sell right now (merchant-api.md "The merchant": products with an active contract).

A product is usable when an ACTIVE contract (not limited, suspended…) on an enabled channel account offers it and
the account serves it (enabled). When several contracts offer one product, the rate shown is the one of the
contract routing would pick first, so what the merchant reads is what it pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, OuterRef, Subquery

from merchants.models import Merchant


@dataclass(frozen=True)
class AvailableProduct:
    product: str  # e.g. "wechat.native" (merchant-api.md "Orders", field `product`)
    rate: Decimal  # the merchant's fee rate for it, e.g. Decimal("0.0060")


def merchant_available_products(merchant: Merchant) -> list[AvailableProduct]:
    """Products with an active contract on an enabled account serving them, sorted by product, with the rate of
    the contract routing would choose first (channels.routing: cheapest cost to us, then the oldest contract).
    One query."""
    from channels.models import ChannelProduct
    from merchants.models import ContractRate, ContractState

    rows = (ContractRate.objects
            .filter(contract__merchant=merchant, contract__state=ContractState.ACTIVE,
                    contract__channel_account__enabled=True)
            .annotate(cost=Subquery(ChannelProduct.objects.filter(
                account_id=OuterRef("contract__channel_account_id"), product=OuterRef("product"), enabled=True)
                .annotate(net=F("cost_rate") - F("isv_rebate_rate")).values("net")[:1]))
            .filter(cost__isnull=False)
            .order_by("product", "cost", "contract__created_at", "contract_id")
            .values_list("product", "rate"))
    chosen: dict[str, Decimal] = {}
    for product, rate in rows:
        chosen.setdefault(product, rate)
    return [AvailableProduct(product=p, rate=r) for p, r in sorted(chosen.items())]

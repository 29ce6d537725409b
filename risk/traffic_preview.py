"""What limiting a channel contract does to its merchant's orders (design §7: switching "with a preview of what
moves"). For each product the contract serves (its rates), which of the merchant's other contracts routing would
choose instead, or that none would and the merchant API will refuse the product (``422 product_not_available``,
merchant-api.md "Errors"); for a contract already limited, where its orders go now.

Routing itself answers, band by band of amounts: channels.traffic_preview, which operations' preview of disabling a
channel account shares. Nothing here writes.

Queries: one for the contract's products with the accounts' limits, then routing's one per product — asked under the
API's generation token (aggpay.api.credentials), so every further band of that product, and every other card of the
same merchant on the page, reuses the rows routing read: at most 1 + one per product, whatever the number of
contracts (the contract's merchant is read too if the contract comes without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.traffic_preview import (  # noqa: F401 - Band and Destination are this preview's too
    LIMIT,
    NOW,
    Band,
    ContractOffers,
    Destination,
    contract_bands,
    generation_token,
    read_offers,
)
from merchants.forms import percent_text
from merchants.models import Contract, ContractRate, ContractState


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
    offers = read_offers(ContractRate.objects.filter(contract=contract)).get(contract.pk, ContractOffers())
    token = generation_token()
    return TrafficPreview(contract=contract, mode=mode, products=[
        ProductPreview(product=product, rate=percent_text(rate),
                       bands=contract_bands(contract, mode=mode, product=product, offers=offers, token=token))
        for product, rate in sorted(offers.rates.items())])

"""What a merchant can sell right now (merchant-api.md "The merchant": products with an active contract).

Channel contracts (签约) and their per-product rates belong to the onboarding work (merchants/models/contracts.py,
issue 4). Which contracts make a product usable (active only, or limited too; the channel account enabled and
supporting the product) and which rate to show when several contracts offer one product are its decisions, so
until it fills in this function no product is reported. It is the one hook ``GET /api/v1/merchant`` (and later
order creation) reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from merchants.models import Merchant


@dataclass(frozen=True)
class AvailableProduct:
    product: str  # e.g. "wechat.native" (merchant-api.md "Orders", field `product`)
    rate: Decimal  # the merchant's fee rate for it, e.g. Decimal("0.0060")


def merchant_available_products(merchant: Merchant) -> list[AvailableProduct]:
    """Products with an active contract and the merchant's rate for each, sorted by product.

    Returns [] until the onboarding issue replaces this body with its query over active contracts and their
    ``ContractRate`` rows.
    """
    return []

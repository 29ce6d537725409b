"""What a merchant can sell right now (merchant-api.md "The merchant": products with an active contract).

A product is usable when an ACTIVE contract (not limited, suspended…) on an enabled channel account offers it and
the account serves it (enabled) — and, for the products some accounts take only with the merchant's WeChat appid on
the contract (a bank's WeChat JSAPI, bank.md §6.2), when the contract has it, as routing decides
(channels.routing.needs_sub_appid). When several contracts offer one product, the rate shown is the one of the
contract routing would pick first, so what the merchant reads is what it pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from merchants.models import Merchant


@dataclass(frozen=True)
class AvailableProduct:
    product: str  # e.g. "wechat.native" (merchant-api.md "Orders", field `product`)
    rate: Decimal  # the merchant's fee rate for it, e.g. Decimal("0.0060")


# One statement, written out: the ORM spelling (annotate + Subquery + order_by) cost more to compile than to run,
# and GET /api/v1/merchant reads this on every call (docs/benchmarks.md).
_AVAILABLE_SQL = """
    SELECT r.product, r.rate, c.sub_appid, a.kind
      FROM merchants_contractrate r
      JOIN merchants_contract c ON c.id = r.contract_id
      JOIN channels_channelaccount a ON a.id = c.channel_account_id
      JOIN channels_channelproduct p ON p.account_id = a.id AND p.product = r.product
     WHERE c.merchant_id = %s AND c.state = %s AND a.enabled AND p.enabled
     ORDER BY r.product, (p.cost_rate - p.isv_rebate_rate), c.created_at, c.id
"""


def merchant_available_products(merchant: Merchant) -> list[AvailableProduct]:
    """Products with an active contract on an enabled account serving them, sorted by product, with the rate of
    the contract routing would choose first (channels.routing: cheapest cost to us, then the oldest contract).
    One query."""
    from merchants.models import ContractState

    with connection.cursor() as cursor:
        cursor.execute(_AVAILABLE_SQL, [merchant.pk, ContractState.ACTIVE])
        rows = cursor.fetchall()
    from channels.routing import needs_sub_appid

    chosen: dict[str, Decimal] = {}
    for product, rate, sub_appid, kind in rows:
        if not sub_appid and product in needs_sub_appid(kind):
            continue  # routing passes it over: every such order would be refused (channels.routing.choose)
        chosen.setdefault(product, Decimal(rate))
    return [AvailableProduct(product=p, rate=r) for p, r in sorted(chosen.items())]

"""Product codes of the merchant API and how ``barcode`` and ``cashier`` resolve (merchant-api.md "Orders")."""

from __future__ import annotations

import re

from aggpay.errors import InvalidRequest
from channels.adapters.base import BARCODE_PRODUCTS, PRODUCTS
from merchants.services.products import AvailableProduct, merchant_available_products

API_PRODUCTS = PRODUCTS + ("barcode", "cashier")
JSAPI_PRODUCTS = {"wechat.jsapi", "wechat.mini", "alipay.jsapi"}

# Payment codes (付款码) by wallet — issue 5: WeChat 18 digits starting 10–15; Alipay 16–24 digits starting 25–30;
# UnionPay 19 digits starting 62. ASCII digits: \d would also take full-width or Arabic-Indic ones, which no wallet
# prints, and the code would reach the channel (a failed order) instead of a 400 naming auth_code (design §5 rule 12).
_WALLET_CODES = (
    ("wechat.barcode", re.compile(r"^1[0-5][0-9]{16}$")),
    ("alipay.barcode", re.compile(r"^(2[5-9]|30)[0-9]{14,22}$")),
    ("unionpay.barcode", re.compile(r"^62[0-9]{17}$")),
)


def barcode_product(auth_code: str) -> str:
    """The wallet's barcode product for a payment code, or InvalidRequest naming ``auth_code``."""
    code = (auth_code or "").strip()
    for product, pattern in _WALLET_CODES:
        if pattern.match(code):
            return product
    raise InvalidRequest("auth_code is not a WeChat, Alipay or UnionPay payment code", param="auth_code")


def wallet_of(product: str) -> str:
    return product.split(".", 1)[0]


# The products of merchant-api.md "Orders" that no channel serves as such: order_create resolves each to a wallet's
# own product when the order is made (trades.services.orders), so it can be ordered exactly when one of those can —
# ``barcode`` to the wallet's payment-code product read from ``auth_code`` (trades.products.barcode_product),
# ``cashier`` to the product the payer's wallet pays the hosted page with (trades.services.cashier).
def _resolved_products() -> dict[str, tuple[str, ...]]:
    # Late: the cashier service imports the order services, which import this module.
    from trades.services.cashier import WALLET_PRODUCTS

    return {"barcode": BARCODE_PRODUCTS, "cashier": tuple(WALLET_PRODUCTS.values())}


def merchant_orderable_products(merchant) -> list[AvailableProduct]:
    """What ``merchant`` can order now, sorted by product: the products of its active contracts
    (merchants.services.products.merchant_available_products, one query), and ``barcode`` / ``cashier`` when one
    of the wallet products they resolve to is among them. The merchant's rate for a resolved product is that of the wallet product the payer's wallet picks, so
    the one shown is the highest among those it can resolve to: what such an order costs at most (each of them is
    listed with its own rate too)."""
    available = merchant_available_products(merchant)
    rates = {p.product: p.rate for p in available}
    resolved = [AvailableProduct(product=code, rate=max(rates[p] for p in via if p in rates))
                for code, via in _resolved_products().items() if any(p in rates for p in via)]
    return sorted([*available, *resolved], key=lambda p: p.product)

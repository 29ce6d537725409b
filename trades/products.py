"""Product codes of the merchant API and how ``barcode`` and ``cashier`` resolve (merchant-api.md "Orders")."""

from __future__ import annotations

import re

from aggpay.errors import InvalidRequest
from channels.adapters.base import PRODUCTS

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

"""Pre-trade checks (design §2: the first step of order_create). The risk issue adds lists (white/black), limits
and scenario checks on this same hook; today it enforces what must hold for any payment."""

from __future__ import annotations

from aggpay.errors import Forbidden
from merchants.models import MerchantState


def check_trade(*, merchant, product: str, amount: int, payer: dict) -> None:
    """Raise Forbidden or RiskRejected to deny the trade; return None to let it through."""
    if merchant.state != MerchantState.ACTIVE:
        raise Forbidden(f"merchant {merchant.merchant_no} is {merchant.state}; it cannot take payments")

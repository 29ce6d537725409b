"""Alipay's error codes mapped to our normalised codes (channels.adapters.errors.NORMALISED_CODES).

Alipay answers ``code`` (gateway class: 10000 ok, 20000 unavailable, 20001 auth, 40001 missing, 40002 invalid,
40004 business, 40006 permission) and ``sub_code`` (the precise reason) — channel-protocols.md B.3. We map the
``sub_code`` first and fall back on the ``code`` class. Each entry: (our code, permanent). ``channel_unknown``
entries are raised as ChannelUnknown: the call may have happened, query before deciding (design §5 rule 2).
"""

from __future__ import annotations

# sub_code → (normalised code, permanent)
CODES: dict[str, tuple[str, bool]] = {
    # gateway / platform (B.3 common codes)
    "isp.unknow-error": ("channel_unknown", False),
    "aop.unknow-error": ("channel_unknown", False),
    "isv.invalid-signature": ("invalid_signature", True),
    "isv.invalid-signature-type": ("invalid_params", True),
    "isv.invalid-app-id": ("invalid_params", True),
    "isv.invalid-timestamp": ("invalid_params", True),
    "isv.invalid-method": ("invalid_params", True),
    "isv.invalid-parameter": ("invalid_params", True),
    "isv.missing-method": ("invalid_params", True),
    "isv.missing-signature": ("invalid_params", True),
    "isv.missing-signature-type": ("invalid_params", True),
    "isv.missing-app-id": ("invalid_params", True),
    "isv.missing-timestamp": ("invalid_params", True),
    "isv.missing-version": ("invalid_params", True),
    "isv.code-invalid": ("invalid_params", True),  # OAuth auth_code used or expired (§E)
    "isv.insufficient-isv-permissions": ("no_permission", True),
    "aop.invalid-auth-token": ("no_permission", True),
    "aop.auth-token-time-out": ("no_permission", True),
    "aop.invalid-app-auth-token": ("merchant_not_found", True),
    "aop.invalid-app-auth-token-no-api": ("no_permission", True),
    "aop.app-auth-token-time-out": ("no_permission", True),
    "aop.no-product-reg-by-partner": ("no_permission", True),
    "isp.bill_not_exist": ("channel_error", False),  # B.8: daily bills appear T+1; ask again later
    # trades (B.3 frequent ACQ sub_codes, B.5)
    "ACQ.SYSTEM_ERROR": ("channel_unknown", False),
    "ACQ.TRADE_NOT_EXIST": ("order_not_found", True),
    "ACQ.TRADE_HAS_SUCCESS": ("order_paid", True),
    "ACQ.TRADE_HAS_CLOSE": ("order_closed", True),
    "ACQ.TRADE_HAS_FINISHED": ("order_closed", True),
    "ACQ.TRADE_STATUS_ERROR": ("channel_error", True),
    "ACQ.INVALID_PARAMETER": ("invalid_params", True),
    "ACQ.CONTEXT_INCONSISTENT": ("invalid_params", True),
    "ACQ.DISCORDANT_REPEAT_REQUEST": ("invalid_params", True),
    "ACQ.TOTAL_FEE_EXCEED": ("invalid_params", True),
    "ACQ.EXIST_FORBIDDEN_WORD": ("invalid_params", True),
    "ACQ.PAYMENT_AUTH_CODE_INVALID": ("auth_code_invalid", True),
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": ("insufficient_balance", True),
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH": ("insufficient_balance", True),
    "ACQ.BUYER_ENABLE_STATUS_FORBID": ("risk_rejected", True),
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR": ("risk_rejected", True),
    "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT": ("risk_rejected", True),
    "ACQ.REASON_TRADE_BEEN_FREEZEN": ("merchant_limited", True),
    "ACQ.SELLER_BEEN_BLOCKED": ("merchant_limited", True),
    "ACQ.ACCESS_FORBIDDEN": ("no_permission", True),
    "ACQ.PARTNER_ERROR": ("merchant_not_found", True),
    "ACQ.SUB_MERCHANT_NOT_EXIST": ("merchant_not_found", True),
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": ("refund_exceeds", True),  # 退款金额超限
    "ACQ.TRADE_NOT_ALLOW_REFUND": ("channel_error", True),
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": ("channel_error", False),  # merchant's balance; retry after top-up
    "ACQ.REQUEST_TOO_FAST": ("rate_limited", False),
    # 直付通 onboarding (B.7)
    "ISV.ORDER_NOT_EXIST": ("order_not_found", True),
    "ISV.SMID_NOT_EXIST": ("merchant_not_found", True),
}

# Fallback per gateway ``code`` when the sub_code is not in the table (B.3).
CODE_CLASSES: dict[str, tuple[str, bool]] = {
    "20000": ("channel_unknown", False),
    "20001": ("no_permission", True),
    "40001": ("invalid_params", True),
    "40002": ("invalid_params", True),
    "40004": ("channel_error", True),
    "40006": ("no_permission", True),
}


def classify(code: str, sub_code: str) -> tuple[str, bool]:
    """(normalised code, permanent) for an Alipay ``code``/``sub_code`` pair.

    A ``code`` outside B.3's classes with a ``sub_code`` we do not know either is an answer we cannot read: unknown
    (design §5 rule 2), not a refusal that would fail the order or the refund."""
    if sub_code in CODES:
        return CODES[sub_code]
    return CODE_CLASSES.get(code, ("channel_unknown", False))

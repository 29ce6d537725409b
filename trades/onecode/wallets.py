"""Which wallet opened the page, from its User-Agent — channel-protocols.md §E.

Order matters (§E "Recommended dispatch"): ``UnionPay/`` first, then ``AlipayClient``, then ``wxwork`` (WeCom
also says MicroMessenger but cannot pay by JSAPI), then ``MicroMessenger``. Tokens are case-sensitive.
"""

from __future__ import annotations

WECHAT, ALIPAY, UNIONPAY, WECOM = "wechat", "alipay", "unionpay", "wecom"


def detect_wallet(user_agent: str) -> str | None:
    """``wechat`` / ``alipay`` / ``unionpay``, ``wecom`` (unsupported) or None (an ordinary browser)."""
    ua = user_agent or ""
    if "UnionPay/" in ua:
        return UNIONPAY
    if "AlipayClient" in ua:
        return ALIPAY
    if "wxwork" in ua:
        return WECOM
    if "MicroMessenger" in ua:
        return WECHAT
    return None

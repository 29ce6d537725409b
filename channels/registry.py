"""kind → adapter class (style.md §2). Model choices derive from this; adapters are imported lazily."""

from __future__ import annotations

from django.utils.module_loading import import_string

ADAPTERS: dict[str, str] = {
    "wechatpay": "channels.adapters.wechatpay.WechatPayAdapter",
    "alipay": "channels.adapters.alipay.AlipayAdapter",
    "bank": "channels.adapters.bank.BankAdapter",
}

KIND_LABELS: dict[str, str] = {
    "wechatpay": "WeChat Pay (ISV, API v3)",
    "alipay": "Alipay (ISV, open platform)",
    "bank": "Bank acquirer (indirect)",
}

KIND_CHOICES = [(kind, KIND_LABELS[kind]) for kind in ADAPTERS]


def adapter_class(kind: str):
    try:
        return import_string(ADAPTERS[kind])
    except KeyError:
        raise ValueError(f"unknown channel kind {kind!r}; known: {sorted(ADAPTERS)}") from None

"""Products of a channel account: which product codes it serves, at which cost and rebate rate, within which limits.

Issue 3 "Products per account". Rates are Decimals in [0, 1) with at most 6 places (aggpay.money.parse_rate);
amounts are integer fen (design §5 rule 1). Every change keeps history (design §5 rule 9: rates are configuration).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from aggpay.errors import InvalidRequest, NotFound
from aggpay.money import MAX_FEN, RATE_QUANTUM, MoneyError, format_yuan, parse_rate, to_fen
from channels.adapters.base import PRODUCTS
from channels.models import ChannelAccount, ChannelConfigInvalid, ChannelProduct
from channels.services.history import UNSET, diff, record_change

PRODUCT_FIELDS = ("cost_rate", "isv_rebate_rate", "min_amount", "max_amount", "daily_cap", "enabled",
                  "onboards_merchants")


def _rate(value, *, param: str) -> Decimal:
    try:
        # Quantized to the column's 6 places so history shows "0.002300" → "0.002500", as stored. abs(): "-0" is
        # not below 0, so parse_rate takes it, and the history read "-0.000000" where 0 is stored.
        return abs(parse_rate(value).quantize(RATE_QUANTUM))
    except MoneyError as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param)


def _fen(value, *, param: str, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    try:
        fen = to_fen(value)
    except MoneyError as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param)
    if fen < 1:
        raise InvalidRequest(f"{param} must be at least 1 fen", param=param)
    if fen > MAX_FEN:
        # The column is a bigint: beyond it PostgreSQL refused the INSERT (a DataError, a 500), not the field.
        raise InvalidRequest(f"{param} must be at most {format_yuan(MAX_FEN)} yuan", param=param)
    return fen


def account_products(account: ChannelAccount) -> tuple[str, ...]:
    """The product codes the account's adapter supports (all codes if its adapter is not installed yet)."""
    try:
        return tuple(account.adapter_class.products) or PRODUCTS
    except ChannelConfigInvalid:
        return PRODUCTS


def _snapshot(product: ChannelProduct) -> dict:
    return {field: getattr(product, field) for field in PRODUCT_FIELDS}


def channel_product_prepare(
    *,
    account: ChannelAccount,
    product: str,
    existing: ChannelProduct | None,
    reason: str = "",
    **fields,
) -> tuple[ChannelProduct, set[str]]:
    """Validate a create/change without writing: the (unsaved) row with the values applied, and what changed.

    Used by ``channel_product_set`` under its lock, and by forms (the admin) to show errors before saving.
    """
    unknown = set(fields) - set(PRODUCT_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown product field {sorted(unknown)[0]}", param=sorted(unknown)[0])
    values = {}
    for name in ("cost_rate", "isv_rebate_rate"):
        if name in fields:
            values[name] = _rate(fields[name], param=name)
    for name in ("min_amount", "max_amount", "daily_cap"):
        if name in fields:
            values[name] = _fen(fields[name], param=name, nullable=name == "daily_cap")
    for name in ("enabled", "onboards_merchants"):
        if name in fields:
            if not isinstance(fields[name], bool):
                raise InvalidRequest(f"{name} must be true or false", param=name)
            values[name] = fields[name]
    if product not in account_products(account):
        raise InvalidRequest(f"{product!r} is not a product of {account.kind} accounts", param="product")
    if existing is None:
        for required in ("cost_rate", "max_amount"):
            if required not in values:
                raise InvalidRequest(f"{required} is required for a new product", param=required)
        row = ChannelProduct(account=account, product=product)
    else:
        if not reason or not reason.strip():
            raise InvalidRequest("a reason is required to change a product or its rates", param="reason")
        row = ChannelProduct.objects.get(pk=existing.pk)  # a fresh copy: the caller's instance stays untouched
    changed = {name for name, value in values.items() if existing is None or getattr(row, name) != value}
    for name, value in values.items():
        setattr(row, name, value)
    _check_consistent(row, changed=changed)
    return row, changed


def channel_product_set(
    *,
    account_id: int,
    product: str,
    actor,
    reason: str = "",
    cost_rate=UNSET,
    isv_rebate_rate=UNSET,
    min_amount=UNSET,
    max_amount=UNSET,
    daily_cap=UNSET,
    enabled=UNSET,
    onboards_merchants=UNSET,
) -> ChannelProduct:
    """Create the account's product or change the given fields of it (unpassed fields keep their value).

    Creating needs ``cost_rate`` and ``max_amount``; changing an existing product needs a ``reason``.
    ``daily_cap=None`` means no daily cap. Rates are strings or Decimals ("0.0023" = 0.23%), never floats.
    """
    passed = {name: value for name, value in (
        ("cost_rate", cost_rate), ("isv_rebate_rate", isv_rebate_rate), ("min_amount", min_amount),
        ("max_amount", max_amount), ("daily_cap", daily_cap), ("enabled", enabled),
        ("onboards_merchants", onboards_merchants),
    ) if value is not UNSET}
    with transaction.atomic():
        try:
            # The account, FOR NO KEY UPDATE: one change of its products at a time, and a merchant rate checked
            # against its cost (merchants.services.contracts ``contract_set_rate`` locks the account too) waits for
            # this change or this change for it — while orders on the account are inserted meanwhile.
            account = ChannelAccount.objects.select_for_update(no_key=True).get(pk=account_id)
        except ChannelAccount.DoesNotExist:
            raise NotFound(f"no channel account {account_id}", param="account_id")
        existing = ChannelProduct.objects.filter(account=account, product=product).first()
        row, _ = channel_product_prepare(account=account, product=product, existing=existing, reason=reason, **passed)
        creating = existing is None
        changes = diff({} if creating else _snapshot(existing), _snapshot(row))
        if not creating and not changes:
            return existing
        row.save()
        record_change(actor=actor, account=account, target=row, target_type="product",
                      action="product.created" if creating else "product.updated", changes=changes, reason=reason)
    return row


def _check_consistent(row: ChannelProduct, *, changed: set[str]) -> None:
    if row.min_amount > row.max_amount:
        raise InvalidRequest("max_amount must not be below min_amount", param="max_amount")
    if row.daily_cap is not None and row.daily_cap < row.min_amount:
        raise InvalidRequest("daily_cap must not be below min_amount", param="daily_cap")
    if row.isv_rebate_rate > row.cost_rate:
        # A rebate is a share of what the channel charges; above the cost the channel would pay us to trade.
        param = "cost_rate" if "isv_rebate_rate" not in changed else "isv_rebate_rate"
        raise InvalidRequest("isv_rebate_rate must not exceed cost_rate", param=param)

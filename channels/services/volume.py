"""What each channel account collected per product and local day, held against its daily cap (design §7 layer 1:
eligible only "within its limits"; ``ChannelProduct.daily_cap``).

The count is of money collected at the channel: a payment adds to the day of its ``paid_at`` (the local calendar day,
settings.TIME_ZONE, as statements and the fee report date money: trades.services.statements), in the transaction
that records the payment, so a payment is counted once or not at all. Refunds and reversals do not take anything
off: a channel's daily limit counts what it collected that day, not what stayed collected. Pending orders are not
counted, nor reserved: orders in flight together may take an account past its cap by what they carry (routing reads
only what was collected) — the channel itself enforces its hard limit and refuses what goes past it.
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from aggpay.money import to_fen
from channels.models import AccountDayVolume
from channels.sql import prepared_cursor


def local_day(moment: dt.datetime) -> dt.date:
    """The calendar day of ``moment`` in the project's time zone (Asia/Shanghai), whatever zone is active."""
    return timezone.localdate(moment, timezone.get_default_timezone())


@functools.cache
def _add_sql() -> str:
    """One UPSERT, the same text on PostgreSQL and SQLite (the demo): the day's row is made by its first payment,
    and each later one adds to it in place, so concurrent payments never lose one another's amount."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    table = quote(AccountDayVolume._meta.db_table)
    return (f"INSERT INTO {table} (account_id, product, day, paid_amount, paid_count) VALUES (%s, %s, %s, %s, 1) "
            f"ON CONFLICT (account_id, product, day) DO UPDATE SET "
            f"paid_amount = {table}.paid_amount + EXCLUDED.paid_amount, "
            f"paid_count = {table}.paid_count + EXCLUDED.paid_count")


def account_volume_add(*, account_id: int, product: str, amount: int, paid_at: dt.datetime) -> None:
    """Count a payment of ``amount`` fen, collected at ``paid_at``, on the account's ``product``. Call it in the
    transaction that records the payment (trades.services.orders): the payment and its count commit together."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("account_volume_add runs in the transaction that records the payment")
    if to_fen(amount) <= 0:
        raise ValueError(f"a payment's amount is positive, got {amount} fen")
    db = connections[DEFAULT_DB_ALIAS]
    sql = _add_sql()
    with prepared_cursor(sql) as cursor:
        cursor.execute(sql, [account_id, product, db.ops.adapt_datefield_value(local_day(paid_at)), amount])


@functools.cache
def _paid_sql(accounts: int) -> str:
    """The day's amounts of ``accounts`` accounts for one product; one text per number of accounts, so each is
    prepared once per connection (channels.sql)."""
    table = connections[DEFAULT_DB_ALIAS].ops.quote_name(AccountDayVolume._meta.db_table)
    marks = ", ".join(["%s"] * accounts)
    return (f"SELECT account_id, paid_amount FROM {table} "
            f"WHERE account_id IN ({marks}) AND product = %s AND day = %s")


def account_volumes_paid(*, account_ids: list[int], product: str, day: dt.date) -> dict[int, int]:
    """Fen collected on ``day`` per account of ``account_ids`` for ``product`` (absent: nothing yet). One query,
    never cached: every payment changes it."""
    if not account_ids:
        return {}
    db = connections[DEFAULT_DB_ALIAS]
    sql = _paid_sql(len(account_ids))
    with prepared_cursor(sql) as cursor:
        cursor.execute(sql, [*account_ids, product, db.ops.adapt_datefield_value(day)])
        return dict(cursor.fetchall())


def account_products_paid(*, account_id: int, day: dt.date) -> dict[str, int]:
    """Fen collected on ``day`` per product of one account (the account's staff page): one query."""
    return dict(AccountDayVolume.objects.filter(account_id=account_id, day=day)
                .values_list("product", "paid_amount"))

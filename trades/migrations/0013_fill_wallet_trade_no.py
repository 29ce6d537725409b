"""Fill the wallet's number (Order.wallet_trade_no, migration 0010) on the orders paid before it was kept.

* WeChat Pay / Alipay: the channel's own trade number is the wallet's (WeChat 交易单号 ``transaction_id``, Alipay 交易号
  ``trade_no``; channels.adapters.base.PaymentResult.wallet_trade_no): it is copied from the order's
  channel_trade_no, or for a closed order paid late, from its late payment's (trades.services.orders._late_payment
  puts the wallet's number on such an order now).
* Bank: the wallet's number is the bank's ``channel_trade_no`` beside its own ``trade_no`` (docs/channels/bank.md §2,
  §6.5). It is read from the bank's trade objects stored, as they were verified when they came, in the order's
  channel calls (ChannelCall.answer: the JSON the adapter returned as ``raw``, redacted — the redaction leaves trade
  numbers alone) — the create answer of a payment code, queries, a close or reverse. Only an answer about this
  trade is taken (its out_trade_no is our order id, its trade_no the order's channel_trade_no), the latest one
  that names a number; an answer cut short by the redaction's length limit is not read. Orders the bank's PAY_RESULT
  notice alone told paid keep it empty: that notice is stored only encrypted (ChannelCallback.body), and a migration
  does not decrypt. Support still finds them by the bank's number, our order id or the merchant's out_trade_no.

Only orders whose wallet_trade_no is empty are written (re-running fills nothing twice, and never overwrites a
number the live code has set meanwhile), in batches of ``BATCH`` by primary key, each committed on its own, so the
orders table is never locked as a whole. Nothing to undo: the reverse leaves the numbers.
"""

from __future__ import annotations

import json

from django.db import DEFAULT_DB_ALIAS, migrations, transaction
from django.db.models import F

BATCH = 500
DIRECT = ("wechatpay", "alipay")  # the channel's own trade number is the wallet's
BANK = "bank"
# The calls about an order whose answer is the bank's trade object (§6.5); refunds' answers are refund objects (§7.3).
TRADE_VERBS = ("create", "query", "close", "reverse")
MAX_LENGTH = 64  # Order.wallet_trade_no


def fill_wallet_trade_no(apps, schema_editor=None, *, batch: int = BATCH) -> int:
    """Fill wallet_trade_no where it is empty on WeChat Pay, Alipay and bank orders, as the module says. Returns how
    many orders were filled."""
    order_model = apps.get_model("trades", "Order")
    alias = schema_editor.connection.alias if schema_editor is not None else DEFAULT_DB_ALIAS
    orders = order_model.objects.using(alias).filter(wallet_trade_no="", channel_account__kind__in=(*DIRECT, BANK))
    filled, last = 0, ""
    while True:
        rows = list(orders.filter(pk__gt=last).order_by("pk")
                    .values_list("pk", "channel_account__kind", "channel_trade_no")[:batch])
        if not rows:
            return filled
        last = rows[-1][0]
        with transaction.atomic(using=alias):
            filled += _fill_direct(apps, alias, [row for row in rows if row[1] in DIRECT])
            filled += _fill_bank(apps, alias, {pk: channel_no for pk, kind, channel_no in rows if kind == BANK})


def _fill_direct(apps, alias: str, rows: list[tuple[str, str, str]]) -> int:
    order_model = apps.get_model("trades", "Order")
    late_model = apps.get_model("trades", "LatePayment")
    if not rows:
        return 0
    unfilled = order_model.objects.using(alias).filter(wallet_trade_no="")
    filled = (unfilled.filter(pk__in=[pk for pk, _, channel_no in rows if channel_no])
              .update(wallet_trade_no=F("channel_trade_no")))
    # A closed order paid late does not know the channel's number; its late payment does.
    late = (late_model.objects.using(alias).filter(order_id__in=[pk for pk, _, channel_no in rows if not channel_no])
            .exclude(channel_trade_no="").values_list("order_id", "channel_trade_no"))
    for order_id, number in late:
        if len(number) <= MAX_LENGTH:
            filled += unfilled.filter(pk=order_id).update(wallet_trade_no=number)
    return filled


def _fill_bank(apps, alias: str, orders: dict[str, str]) -> int:
    """``orders``: order id → the bank's trade_no (the order's channel_trade_no, empty if it never got one)."""
    call_model = apps.get_model("trades", "ChannelCall")
    order_model = apps.get_model("trades", "Order")
    if not orders:
        return 0
    numbers: dict[str, str] = {}
    answers = (call_model.objects.using(alias)
               .filter(order_id__in=list(orders), verb__in=TRADE_VERBS, answer__contains='"channel_trade_no"')
               .order_by("created_at", "pk").values_list("order_id", "answer"))
    for order_id, answer in answers:  # oldest first: the latest answer naming a number wins
        number = wallet_number_in_bank_answer(answer, order_id=order_id, trade_no=orders[order_id])
        if number:
            numbers[order_id] = number
    unfilled = order_model.objects.using(alias).filter(wallet_trade_no="")
    return sum(unfilled.filter(pk=order_id).update(wallet_trade_no=number) for order_id, number in numbers.items())


def wallet_number_in_bank_answer(answer: str, *, order_id: str, trade_no: str) -> str:
    """The wallet's number in a stored bank trade object about our order ``order_id`` (and, when the order has one,
    the bank's ``trade_no``), else ""."""
    try:
        data = json.loads(answer)
    except ValueError:  # cut short by the redaction's length limit, or not JSON at all
        return ""
    if not isinstance(data, dict) or data.get("out_trade_no") != order_id:
        return ""
    if trade_no and data.get("trade_no") != trade_no:
        return ""
    number = data.get("channel_trade_no")
    if not isinstance(number, str) or not number.strip() or number == "***" or len(number) > MAX_LENGTH:
        return ""
    return number.strip()


class Migration(migrations.Migration):

    # Each batch commits on its own (fill_wallet_trade_no): no transaction around the whole table.
    atomic = False

    dependencies = [
        ('trades', '0012_late_payment_channel_refund_no'),
    ]

    operations = [
        migrations.RunPython(fill_wallet_trade_no, migrations.RunPython.noop, elidable=True),
    ]

"""EarlierRefundNumber: the channel's own refund numbers of earlier refund attempts, which support searches by
(trades.workbench.search_orders; issue 5 "search trades by any number").

Filled for the refunds retried before it existed from their audit rows, which are append-only and kept them:

* ``trades.refund.retried`` (trades.services.refunds.refund_create): ``failed_channel_refund_no``, the number of the
  attempt before the retry's (``attempt`` - 1);
* ``trades.refund.earlier_attempt_succeeded`` and ``trades.late_payment.earlier_attempt_succeeded``: the number the
  channel named for an earlier attempt that succeeded after the retry (``channel_refund_no``, ``attempt``).

Read in batches of ``BATCH`` audit rows by primary key (through the index on ``action``), each batch committed on
its own; rows already kept are skipped (ON CONFLICT DO NOTHING), so running it again adds nothing. Nothing to undo:
the reverse leaves the rows to the table's removal.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import DEFAULT_DB_ALIAS, migrations, models, transaction

BATCH = 500
RETRIED = "trades.refund.retried"
EARLIER_SUCCEEDED = ("trades.refund.earlier_attempt_succeeded", "trades.late_payment.earlier_attempt_succeeded")
MAX_LENGTH = 64  # EarlierRefundNumber.channel_refund_no


def keep_earlier_refund_numbers(apps, schema_editor=None, *, batch: int = BATCH) -> int:
    """Keep the numbers the audit rows name, as the module says. Returns how many rows were offered."""
    audit_model = apps.get_model("aggpay", "AuditLog")
    alias = schema_editor.connection.alias if schema_editor is not None else DEFAULT_DB_ALIAS
    rows = audit_model.objects.using(alias).filter(action__in=(RETRIED, *EARLIER_SUCCEEDED))
    offered, last = 0, 0
    while True:
        chunk = list(rows.filter(pk__gt=last).order_by("pk")
                     .values_list("pk", "action", "target_type", "target_id", "data")[:batch])
        if not chunk:
            return offered
        last = chunk[-1][0]
        with transaction.atomic(using=alias):
            offered += _keep(apps, alias, chunk)


def _number_and_attempt(action: str, data) -> tuple[str, int | None]:
    if not isinstance(data, dict):
        return "", None
    number = data.get("failed_channel_refund_no" if action == RETRIED else "channel_refund_no")
    attempt = data.get("attempt")
    if not isinstance(number, str) or not number.strip() or len(number.strip()) > MAX_LENGTH:
        return "", None
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        return "", None
    attempt = attempt - 1 if action == RETRIED else attempt
    return (number.strip(), attempt) if attempt >= 0 else ("", None)


def _keep(apps, alias: str, chunk: list) -> int:
    refund_model = apps.get_model("trades", "Refund")
    order_model = apps.get_model("trades", "Order")
    kept_model = apps.get_model("trades", "EarlierRefundNumber")
    wanted = []  # (order id or None, refund id or None, attempt, number)
    for _pk, action, target_type, target_id, data in chunk:
        number, attempt = _number_and_attempt(action, data)
        if not number:
            continue
        if target_type == "trades.refund":
            wanted.append((None, target_id, attempt, number))
        elif target_type == "trades.order":  # a late payment's refund: the audit row is on the order
            wanted.append((target_id, None, attempt, number))
    refunds = dict(refund_model.objects.using(alias).filter(pk__in=[r for _, r, _, _ in wanted if r])
                   .values_list("pk", "order_id"))
    orders = set(order_model.objects.using(alias).filter(pk__in=[o for o, _, _, _ in wanted if o])
                 .values_list("pk", flat=True))
    objects = []
    for order_id, refund_id, attempt, number in wanted:
        order_id = refunds.get(refund_id) if refund_id else (order_id if order_id in orders else None)
        if order_id:
            objects.append(kept_model(order_id=order_id, refund_id=refund_id, attempt=attempt,
                                      channel_refund_no=number))
    kept_model.objects.using(alias).bulk_create(objects, ignore_conflicts=True)
    return len(objects)


class Migration(migrations.Migration):

    # Each batch of the fill commits on its own (keep_earlier_refund_numbers).
    atomic = False

    dependencies = [
        ('aggpay', '0001_initial'),  # AuditLog
        ('trades', '0013_fill_wallet_trade_no'),
    ]

    operations = [
        migrations.CreateModel(
            name='EarlierRefundNumber',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempt', models.PositiveIntegerField(help_text='the refund attempt the channel gave this number to (0: the first)')),
                ('channel_refund_no', models.CharField(help_text="the channel's own number of that attempt", max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('order', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='trades.order')),
                ('refund', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='trades.refund')),
            ],
            options={
                'indexes': [models.Index(fields=['channel_refund_no'], name='earlierrefundnumber_no')],
                'constraints': [models.UniqueConstraint(fields=('order', 'channel_refund_no'), name='earlierrefundnumber_unique')],
            },
        ),
        migrations.RunPython(keep_earlier_refund_numbers, migrations.RunPython.noop, elidable=True),
    ]

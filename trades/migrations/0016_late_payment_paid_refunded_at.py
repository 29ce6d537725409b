"""A late payment (design §5 rule 3) is dated like any money movement: ``paid_at``, when the payer paid at the channel,
and ``refunded_at``, when the money went back (empty while it is with the merchant, kept or not yet refunded), so the
merchant's statement and finance's fee report show it (trades.services.statements, .finance). Late payments recorded
before kept neither; this fills them from the best facts the row has. Running it again changes nothing it filled.
Nothing to undo: the columns are dropped with the fields."""

from __future__ import annotations

import datetime as dt
import re

import django.utils.timezone
from django.db import migrations, models

# A resolution note: "<YYYY-MM-DD HH:MM> <what happened>", the time in UTC (trades.services.late._append formats
# timezone.now(), which is UTC). The notes that say the money went back, and the one that says it stayed.
NOTE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) (.*)$")
MONEY_BACK = ("refund succeeded at the channel", "settled by hand: refunded outside aggpay")
KEPT = "settled by hand: kept by the merchant"


def refunded_at_of(resolution: str, *, fallback: dt.datetime) -> dt.datetime | None:
    """When a resolved late payment's money went back, from its notes: the first note saying so (to the minute — a
    minute never straddles midnight, so the day is right). None if a person said the merchant kept it (and no refund
    succeeded first). A resolved one with neither note (resolved by an older version, whose only way to resolve was
    the channel's refund) falls back to ``fallback`` (its ``detected_at``: the refund followed it within moments)."""
    kept = False
    for line in (resolution or "").splitlines():
        match = NOTE.match(line.strip())
        if not match:
            continue
        when, what = match.groups()
        if what.startswith(MONEY_BACK):
            return dt.datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
        kept = kept or what.startswith(KEPT)
    return None if kept else fallback


def fill_late_payment_times(apps, schema_editor=None) -> int:
    """Date the late payments recorded before the fields existed. Returns how many were filled.

    ``paid_at``: the channel's payment time was never stored, and the success's raw words are kept only encrypted
    (channels.ChannelCallback) or redacted per channel format (ChannelCall) — so ``detected_at``, when the success
    reached us, is the fallback: the channel notifies (or answers our query) moments after the payer pays.
    ``refunded_at``: resolved ones only (refunded_at_of); open and refunding ones still have the money."""
    late_model = apps.get_model("trades", "LatePayment")
    manager = late_model.objects if schema_editor is None else late_model.objects.using(
        schema_editor.connection.alias)
    filled = 0
    for late in manager.filter(paid_at__isnull=True).only("pk", "detected_at", "state", "resolution").iterator():
        late.paid_at = late.detected_at
        late.refunded_at = (refunded_at_of(late.resolution, fallback=late.detected_at) if late.state == "resolved"
                            else None)
        late.save(update_fields=["paid_at", "refunded_at"])
        filled += 1
    return filled


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0015_reversed_orders_refunded'),
    ]

    operations = [
        migrations.AddField(
            model_name='latepayment',
            name='paid_at',
            field=models.DateTimeField(null=True, help_text='when the payer paid, as the channel says'),
        ),
        migrations.AddField(
            model_name='latepayment',
            name='refunded_at',
            field=models.DateTimeField(blank=True, help_text='when the money went back to the payer', null=True),
        ),
        migrations.RunPython(fill_late_payment_times, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name='latepayment',
            name='paid_at',
            field=models.DateTimeField(default=django.utils.timezone.now,
                                       help_text='when the payer paid, as the channel says'),
        ),
        migrations.AddIndex(
            model_name='latepayment',
            index=models.Index(fields=['paid_at'], name='latepayment_paid_at'),
        ),
        migrations.AddIndex(
            model_name='latepayment',
            index=models.Index(condition=models.Q(('refunded_at__isnull', False)), fields=['refunded_at'],
                               name='latepayment_refunded_at'),
        ),
    ]

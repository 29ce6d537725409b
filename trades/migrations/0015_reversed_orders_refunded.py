"""A paid order reversed (撤销) says it gave the whole payment back: ``refunded_amount`` = ``refund_reserved`` = its
amount and ``refund_state`` full (trades.services.orders._reversal_refunded; merchant-api.md "Orders": reverse
"refunds it if paid"). Orders reversed before the fix kept 0; this fills them in. One UPDATE; running it again
changes nothing. Nothing to undo: the old figures were wrong."""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import F


def fill_reversed_refunds(apps, schema_editor=None) -> int:
    """Set the refund aggregates of paid reversed orders that still say nothing went back. Returns how many."""
    order_model = apps.get_model("trades", "Order")
    manager = order_model.objects if schema_editor is None else order_model.objects.using(
        schema_editor.connection.alias)
    return (manager.filter(state="reversed", paid_at__isnull=False).exclude(refunded_amount=F("amount"))
            .update(refund_reserved=F("amount"), refunded_amount=F("amount"), refund_state="full"))


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0014_earlier_refund_numbers'),
    ]

    operations = [
        migrations.AlterField(
            model_name='order',
            name='refunded_amount',
            field=models.BigIntegerField(default=0, help_text='sum of succeeded refunds (or the reversal), fen'),
        ),
        migrations.AlterField(
            model_name='order',
            name='refund_reserved',
            field=models.BigIntegerField(default=0, help_text='sum of non-failed refunds (or the reversal), fen (design §5 rule 6)'),
        ),
        migrations.RunPython(fill_reversed_refunds, migrations.RunPython.noop, elidable=True),
    ]

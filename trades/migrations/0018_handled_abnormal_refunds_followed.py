"""Pending refunds a person marked handled while the channel kept calling them ABNORMAL were left off the query
ladder and out of every queue (trades.services.refunds.refund_apply_result before the fix): pending for ever, their
amount held, nobody following them. Now such a refund stays on the ladder and comes back to the abnormal queue when
it runs out; this puts the ones already lost back on it, asked at the next sweep — the channel's answer then settles
them, or (still ABNORMAL, their ladder long over) flags them for a person to close or keep asking.

They are the only pending refunds with nothing queued and no flag: every other pending refund has a next query, is
in the manual queue (``sync_state`` manual) or is flagged (``abnormal``). One UPDATE; running it again changes
nothing once they have been asked. Nothing to undo."""

from __future__ import annotations

from django.db import migrations
from django.utils import timezone


def requeue_lost_refunds(apps, schema_editor=None) -> int:
    """Put the pending refunds nothing follows back on the query ladder, due now. Returns how many."""
    refund_model = apps.get_model("trades", "Refund")
    manager = refund_model.objects if schema_editor is None else refund_model.objects.using(
        schema_editor.connection.alias)
    return (manager.filter(state="pending", abnormal=False, sync_state="ok", next_query_at__isnull=True)
            .update(next_query_at=timezone.now()))


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0017_channel_call_request'),
    ]

    operations = [
        migrations.RunPython(requeue_lost_refunds, migrations.RunPython.noop, elidable=True),
    ]

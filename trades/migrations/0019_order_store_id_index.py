"""Support finds a till's orders by the store it sent (``store_id``, e.g. "HZ-WESTLAKE-01") and by the merchant's
store a store name or number names (trades.workbench.store_orders): an index on it, partial so that only an order
naming a store is written into it (an order's create writes every index of the table, docs/benchmarks.md)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0018_handled_abnormal_refunds_followed'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='order',
            index=models.Index(condition=models.Q(('store_id', ''), _negated=True), fields=['store_id'],
                               name='order_store_id'),
        ),
    ]

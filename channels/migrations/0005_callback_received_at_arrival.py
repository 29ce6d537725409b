"""A channel callback's received_at is set by channels.callbacks when the notice came in (no longer auto_now_add,
which dated it when its row was written, after handling). No change in the database."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channels', '0004_channelcallback_review'),
    ]

    operations = [
        migrations.AlterField(
            model_name='channelcallback',
            name='received_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
    ]

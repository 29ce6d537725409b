"""Create the six staff groups and their section permissions (design.md §8, aggpay/roles.py).

On an empty database the apps' model permissions do not exist yet while migrations run (Django creates them
in post_migrate), so this attaches what exists; aggpay.roles.roles_sync_after_migrate attaches the rest after
every migrate, including permissions of apps whose migrations come later (channels, trades, risk).
"""

from django.db import migrations


def forwards(apps, schema_editor):
    from aggpay.roles import roles_sync

    roles_sync(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("aggpay", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("merchants", "0001_initial"),
    ]

    # Reversing keeps the groups: deleting them would silently drop every user's role membership.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

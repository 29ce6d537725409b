"""Fill ``Merchant.legal_person_id_digest`` for the merchants saved before it existed.

The ID numbers are decrypted here (the historical model's EncryptedTextField reads plaintext) and digested by the
same function ``Merchant.save`` uses. In batches of ``BATCH`` rows, each committed on its own (``atomic = False``): a
large table is not held in one transaction, and a run that stops half-way carries on where it stopped, since only
rows still without a digest are read. Running it again after a lookup key change means clearing the digests first.
"""

from django.db import migrations

BATCH = 500


def fill_digests(apps, schema_editor):
    from merchants.models.merchant import id_number_digest

    Merchant = apps.get_model("merchants", "Merchant")
    last_pk = 0
    while True:
        batch = list(Merchant.objects.filter(pk__gt=last_pk, legal_person_id_digest="")
                     .exclude(legal_person_id_number="").order_by("pk")
                     .only("pk", "legal_person_id_number")[:BATCH])
        if not batch:
            return
        for merchant in batch:
            merchant.legal_person_id_digest = id_number_digest(merchant.legal_person_id_number)
        Merchant.objects.bulk_update(batch, ["legal_person_id_digest"])
        last_pk = batch[-1].pk


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("merchants", "0008_legal_person_id_digest"),
    ]

    operations = [
        migrations.RunPython(fill_digests, migrations.RunPython.noop, elidable=True),
    ]

"""Every model change ships with its migration: a field, index or permission added without one works in the test
database (built from the models) and fails on a real deployment (built from the migrations)."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits 1 when a migration is missing
        pytest.fail(f"a model change has no migration (run manage.py makemigrations):\n{out.getvalue()}"
                    if exc.code else out.getvalue())

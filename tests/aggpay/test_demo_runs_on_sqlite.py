"""The demo runs on SQLite (README "Two commands": embedded defaults), the tests on PostgreSQL: a PostgreSQL-only
construct passes every test and breaks the demo's page. The store-code page's ArrayAgg did (a 500 once the demo shop
had a code). Raw SQL that needs PostgreSQL says so and keeps a portable path (channels/sql.py); the ORM's
``django.contrib.postgres`` has none, so product code does not import it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("aggpay", "merchants", "channels", "trades", "risk")


@pytest.mark.parametrize("package", PRODUCT)
def test_no_product_module_imports_django_contrib_postgres(package):
    offenders = [str(path.relative_to(REPO)) for path in (REPO / package).rglob("*.py")
                 if "migrations" not in path.parts and "django.contrib.postgres" in path.read_text(encoding="utf-8")]
    assert offenders == []

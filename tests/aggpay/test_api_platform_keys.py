"""aggpay's platform signing key (aggpay/platform_keys.py)."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives import serialization
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from aggpay import platform_keys
from aggpay.api import signing
from aggpay.models import PlatformKey
from aggpay.platform_keys import loaded_platform_key, platform_key, platform_key_cache_clear


@pytest.fixture(autouse=True)
def _fresh(fresh_platform_key):
    pass


@pytest.mark.django_db
def test_it_generates_an_rsa_2048_key_once_and_reuses_it():
    first = platform_key()
    platform_key_cache_clear()
    assert platform_key().pk == first.pk
    assert PlatformKey.objects.count() == 1
    public = serialization.load_pem_public_key(first.public_key_pem.encode())
    assert public.key_size == 2048


@pytest.mark.django_db
def test_its_private_half_is_encrypted_at_rest():
    key = platform_key()
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM aggpay_platformkey WHERE id = %s", [key.pk])
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored
    assert PlatformKey.objects.get(pk=key.pk).private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.django_db
def test_the_loaded_key_signs_what_the_public_key_verifies():
    loaded = loaded_platform_key()
    signature = signing.rsa_sign(loaded.private_key, b"hello")
    assert signing.rsa_verify(loaded.public_key_pem, b"hello", signature)


@pytest.mark.django_db
def test_the_newest_active_key_signs_after_a_rotation():
    old = platform_key()
    PlatformKey.objects.filter(pk=old.pk).update(active=False)
    platform_key_cache_clear()
    new = platform_key()
    assert new.pk != old.pk
    assert new.key_id == "pk_0002"
    assert PlatformKey.objects.filter(active=True).get() == new


@pytest.mark.django_db
def test_the_key_is_cached_in_process_once_it_is_surely_stored():
    created = platform_key()  # inside this test's transaction, which could still roll back: not cached yet
    with CaptureQueriesContext(connection) as queries:
        assert platform_key() == created
    assert len(queries) > 0
    with CaptureQueriesContext(connection) as queries:
        platform_key()
    assert len(queries) == 0


@pytest.mark.django_db(transaction=True)
def test_processes_racing_on_first_use_create_exactly_one_key():
    """Each thread plays a separate web process on a fresh database (below the in-process lock and cache)."""
    racers = 4
    barrier = threading.Barrier(racers)
    results, failures = [], []

    def first_use():
        try:
            barrier.wait(timeout=10)
            results.append(platform_keys._active_or_create()[0].key_id)
        except Exception as exc:  # a thread's exception would otherwise vanish
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_use) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert PlatformKey.objects.count() == 1
    assert results == [PlatformKey.objects.get().key_id] * racers

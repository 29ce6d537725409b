"""aggpay.crypto and aggpay.fields: secrets are Fernet ciphertext at rest, a wrong key raises, keys rotate.

EncryptedTextField is exercised through a real model column, MerchantApp.secret, read back raw with a cursor.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings

from aggpay.crypto import DecryptionError, decrypt_text, encrypt_text, rotate_text
from aggpay.fields import EncryptedJSONField
from merchants.models import MerchantApp
from tests.factories import MerchantAppFactory

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def _raw_secret_column(app_pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {MerchantApp._meta.db_table} WHERE id = %s", [app_pk])
        return cursor.fetchone()[0]


def test_it_decrypts_what_it_encrypted():
    token = encrypt_text("商户密钥 secret ✓")
    assert token != "商户密钥 secret ✓"
    assert decrypt_text(token) == "商户密钥 secret ✓"


def test_it_encrypts_the_same_text_differently_each_time():
    # Fernet uses a random IV: equal secrets must not be recognisable as equal in the database.
    assert encrypt_text("same") != encrypt_text("same")


def test_a_wrong_key_raises_instead_of_returning_ciphertext():
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[OLD_KEY]):
        token = encrypt_text("the secret")
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY]), pytest.raises(DecryptionError):
        decrypt_text(token)


def test_garbage_in_the_column_raises_a_decryption_error():
    with pytest.raises(DecryptionError):
        decrypt_text("not-a-fernet-token")


def test_a_value_encrypted_under_the_old_key_still_opens_when_the_new_key_is_put_first():
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[OLD_KEY]):
        old_token = encrypt_text("rotate me")
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        assert decrypt_text(old_token) == "rotate me"
        rotated = rotate_text(old_token)
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY]):
        assert decrypt_text(rotated) == "rotate me"
        with pytest.raises(DecryptionError):
            decrypt_text(old_token)


def test_new_values_are_encrypted_with_the_newest_key():
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        token = encrypt_text("fresh")
    assert Fernet(NEW_KEY.encode()).decrypt(token.encode()) == b"fresh"


def test_it_fails_loudly_without_keys():
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[]), pytest.raises(ImproperlyConfigured, match="not set"):
        encrypt_text("x")


def test_it_fails_loudly_on_a_malformed_key():
    with override_settings(AGGPAY_ENCRYPTION_KEYS=["too-short"]), pytest.raises(ImproperlyConfigured, match="malformed"):
        encrypt_text("x")


@pytest.mark.django_db
def test_the_app_secret_is_stored_as_ciphertext_in_the_database():
    app = MerchantAppFactory(secret="plain-hmac-secret-0123456789")
    raw = _raw_secret_column(app.pk)
    assert "plain-hmac-secret" not in raw
    assert decrypt_text(raw) == "plain-hmac-secret-0123456789"
    assert MerchantApp.objects.get(pk=app.pk).secret == "plain-hmac-secret-0123456789"


@pytest.mark.django_db
def test_reading_the_app_secret_with_a_wrong_key_raises():
    app = MerchantAppFactory(secret="plain-hmac-secret-0123456789")
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY]), pytest.raises(DecryptionError):
        MerchantApp.objects.get(pk=app.pk)


@pytest.mark.django_db
def test_an_app_secret_survives_a_key_rotation():
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[OLD_KEY]):
        app = MerchantAppFactory(secret="rotating-secret-0123456789")
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        loaded = MerchantApp.objects.get(pk=app.pk)
        assert loaded.secret == "rotating-secret-0123456789"
        loaded.save(update_fields=["secret"])  # re-encrypts under the newest key
    with override_settings(AGGPAY_ENCRYPTION_KEYS=[NEW_KEY]):
        assert MerchantApp.objects.get(pk=app.pk).secret == "rotating-secret-0123456789"


@pytest.mark.django_db
def test_an_empty_secret_stays_empty_rather_than_becoming_ciphertext():
    # RSA apps have no HMAC secret; the column must say "none", not hold an encrypted empty string.
    app = MerchantAppFactory(secret="", sign_type="rsa")
    assert _raw_secret_column(app.pk) == ""
    assert MerchantApp.objects.get(pk=app.pk).secret == ""


def test_the_json_field_round_trips_an_object_through_ciphertext():
    field = EncryptedJSONField()
    stored = field.get_prep_value({"api_v3_key": "k" * 32, "serial": "5157F09E"})
    assert "api_v3_key" not in stored
    assert field.from_db_value(stored, None, connection) == {"api_v3_key": "k" * 32, "serial": "5157F09E"}
    assert field.from_db_value("", None, connection) == {}
    assert field.get_prep_value(None) is None

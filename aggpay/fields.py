"""Model fields for secrets and PII, encrypted at rest (design §5 rule 10)."""

from __future__ import annotations

import json

from django.db import models

from aggpay.crypto import decrypt_text, encrypt_text


class EncryptedTextField(models.TextField):
    """A text column that stores Fernet ciphertext and gives back plaintext.

    Not searchable and not orderable by its plaintext: store a separate hash column when lookups are needed
    (e.g. a licence number's digest). A wrong key raises ``DecryptionError`` on read.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        return encrypt_text(self.plaintext_for(value))

    def plaintext_for(self, value) -> str:
        return str(value)


class EncryptedJSONField(EncryptedTextField):
    """A JSON object encrypted at rest as one ciphertext (typed channel credentials, for instance)."""

    description = "JSON encrypted at rest"

    def from_db_value(self, value, expression, connection):
        plaintext = super().from_db_value(value, expression, connection)
        if plaintext is None or plaintext == "":
            return {}
        return json.loads(plaintext)

    def to_python(self, value):
        if isinstance(value, dict | list) or value is None:
            return value
        return json.loads(value)

    def get_prep_value(self, value):
        if value is None:
            return None
        # Encrypt the JSON text directly: TextField.get_prep_value would run to_python() on it, turning the JSON
        # back into a dict whose str() (a Python repr) is not JSON.
        return encrypt_text(json.dumps(value, sort_keys=True, ensure_ascii=False))

    def value_to_string(self, obj):
        return json.dumps(self.value_from_object(obj))

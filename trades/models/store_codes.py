"""Store codes (码牌) for one-code-pay (一码付) — issue 5 "One-code-pay", merchant-api.md "Payer-facing pages".

A store code is the static QR printed at a till: it names a store, never an amount. Its ``code`` is the only thing
the payer's phone sees, so it is random (≈95 bits) rather than a sequence: nobody can walk other stores' codes.
"""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models

_ALPHABET = string.ascii_letters + string.digits


def new_store_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


class StoreCode(models.Model):
    code = models.CharField(max_length=24, unique=True, default=new_store_code, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="store_codes")
    store = models.ForeignKey("merchants.Store", on_delete=models.PROTECT, related_name="codes")
    active = models.BooleanField(default=True)
    batch = models.CharField(max_length=24, db_index=True, help_text="codes generated together print on one sheet")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("generate_storecode", "Can generate and print one-code-pay store codes")]

    def __str__(self) -> str:
        return f"{self.code} ({self.store})"

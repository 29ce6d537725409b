"""Merchants and their API apps. The onboarding issue extends Merchant with the full onboarding record."""

from __future__ import annotations

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from aggpay.fields import EncryptedTextField


class MerchantState(models.TextChoices):
    ONBOARDING = "onboarding", "Onboarding"  # application in progress, cannot trade
    ACTIVE = "active", "Active"  # at least one contract active; may trade
    FROZEN = "frozen", "Frozen"  # risk froze it; may not trade, may refund
    CLOSED = "closed", "Closed"  # terminal


class Merchant(FSMModelMixin, models.Model):
    merchant_no = models.CharField(max_length=32, unique=True)
    legal_name = models.CharField(max_length=128)
    short_name = models.CharField(max_length=64)
    state = FSMField(default=MerchantState.ONBOARDING, choices=MerchantState.choices, protected=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.merchant_no} {self.short_name}"

    @transition(field=state, source=MerchantState.ONBOARDING, target=MerchantState.ACTIVE)
    def activate(self) -> None:
        """First contract active (design §4)."""

    @transition(field=state, source=MerchantState.ACTIVE, target=MerchantState.FROZEN)
    def freeze(self) -> None:
        """Risk stops trading."""

    @transition(field=state, source=MerchantState.FROZEN, target=MerchantState.ACTIVE)
    def unfreeze(self) -> None:
        """Risk lifts a freeze."""

    @transition(field=state, source=[MerchantState.ONBOARDING, MerchantState.ACTIVE, MerchantState.FROZEN],
                target=MerchantState.CLOSED)
    def close(self) -> None:
        """Terminal."""


class AppScope(models.TextChoices):
    PAYMENTS = "payments", "Payments"
    ONBOARDING = "onboarding", "Partner onboarding"


class SignType(models.TextChoices):
    HMAC = "hmac", "AGGPAY-HMAC-SHA256"
    RSA = "rsa", "AGGPAY-SHA256-RSA2048"


class MerchantApp(models.Model):
    """An API credential of a merchant (or partner): merchant-api.md "Authentication and signing"."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="apps")
    app_id = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=64, default="default")
    scopes = models.JSONField(default=list, help_text="subset of: payments, onboarding")
    sign_type = models.CharField(max_length=8, choices=SignType.choices, default=SignType.HMAC)
    secret = EncryptedTextField(blank=True, help_text="HMAC secret, encrypted at rest; shown once on creation")
    public_key_pem = models.TextField(blank=True, help_text="merchant's RSA public key (RSA apps)")
    notify_url = models.URLField(max_length=512, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.app_id

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])

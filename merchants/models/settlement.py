"""Settlement account changes after activation: asynchronous at every channel (A.13 modify-settlement, B.7 zft
modify, bank.md §9.6), so each contract's change is followed on its own and the new account becomes current only
when every channel has accepted it."""

from __future__ import annotations

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition


class SettlementChangeState(models.TextChoices):
    PENDING = "pending", "Pending"  # recorded, not yet sent
    AUDITING = "auditing", "Auditing"  # the channel accepted the request and is verifying
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SettlementChange(FSMModelMixin, models.Model):
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="settlement_changes")
    contract = models.ForeignKey("merchants.Contract", on_delete=models.PROTECT, related_name="settlement_changes")
    new_account = models.ForeignKey("merchants.SettlementAccount", on_delete=models.PROTECT, related_name="changes")
    state = FSMField(default=SettlementChangeState.PENDING, choices=SettlementChangeState.choices, protected=True)
    request_no = models.CharField(max_length=40, unique=True, help_text="ours; reused to retry idempotently")
    application_no = models.CharField(max_length=64, blank=True, help_text="the channel's id of the change")
    message = models.TextField(blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    poll_attempts = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"settlement change {self.request_no} ({self.state})"

    @transition(field=state, source=SettlementChangeState.PENDING, target=SettlementChangeState.AUDITING)
    def accept(self) -> None:
        """The channel took the request."""

    @transition(field=state, source=[SettlementChangeState.PENDING, SettlementChangeState.AUDITING],
                target=SettlementChangeState.SUCCEEDED)
    def succeed(self) -> None:
        """The channel verified the new account."""

    @transition(field=state, source=[SettlementChangeState.PENDING, SettlementChangeState.AUDITING],
                target=SettlementChangeState.FAILED)
    def fail(self) -> None:
        """The channel refused the new account (its reason is in ``message``)."""

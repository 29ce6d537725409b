"""The onboarding application (进件) state machine — design §4."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition


class ApplicationState(models.TextChoices):
    DRAFT = "draft", "Draft"  # clerk or partner editing
    SUBMITTED = "submitted", "Submitted"  # complete, waiting for a risk officer
    RISK_REVIEW = "risk_review", "Risk review"  # a risk officer has it
    RETURNED = "returned", "Returned"  # needs correction; edits reopen it as draft
    REJECTED = "rejected", "Rejected"  # terminal
    APPROVED = "approved", "Approved"  # contracts about to be created
    CONTRACTING = "contracting", "Contracting"  # contracts submitted to channels
    COMPLETED = "completed", "Completed"  # at least one contract active


class OnboardingApplication(FSMModelMixin, models.Model):
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="applications")
    state = FSMField(default=ApplicationState.DRAFT, choices=ApplicationState.choices, protected=True)
    created_by = models.CharField(max_length=150, help_text="clerk user name or api:<app_id>")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    review_notes = models.TextField(blank=True)
    returned_reasons = models.JSONField(default=list, blank=True, help_text="[{field, reason}] for the clerk")
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("review_application", "Can approve, return or reject onboarding applications")]
        constraints = [
            # One open application per merchant; finished ones stay as history.
            models.UniqueConstraint(
                fields=["merchant"],
                condition=~models.Q(state__in=["rejected", "completed"]),
                name="one_open_application_per_merchant",
            ),
        ]

    def __str__(self) -> str:
        # The audit rows' target label (target_repr, stored as written): staff know a merchant by its number, not by
        # our row id. Rows written before keep "of <merchant pk>".
        merchant_no = self.merchant.merchant_no if self.merchant_id else "?"
        return f"application #{self.pk} of merchant {merchant_no} ({self.state})"

    @transition(field=state, source=ApplicationState.DRAFT, target=ApplicationState.SUBMITTED)
    def submit(self) -> None:
        """The record is complete (services validate before calling)."""

    @transition(field=state, source=ApplicationState.SUBMITTED, target=ApplicationState.RISK_REVIEW)
    def start_review(self) -> None:
        """A risk officer takes it."""

    @transition(field=state, source=ApplicationState.RISK_REVIEW, target=ApplicationState.APPROVED)
    def approve(self) -> None:
        """Risk approves: contracts get created."""

    @transition(field=state, source=ApplicationState.RISK_REVIEW, target=ApplicationState.RETURNED)
    def return_for_correction(self) -> None:
        """Risk asks for corrections."""

    @transition(field=state, source=ApplicationState.RISK_REVIEW, target=ApplicationState.REJECTED)
    def reject(self) -> None:
        """Terminal refusal."""

    @transition(field=state, source=ApplicationState.RETURNED, target=ApplicationState.DRAFT)
    def reopen(self) -> None:
        """The clerk corrects a returned application."""

    @transition(field=state, source=ApplicationState.APPROVED, target=ApplicationState.CONTRACTING)
    def start_contracting(self) -> None:
        """Contracts have been queued for submission to their channels."""

    @transition(field=state, source=ApplicationState.CONTRACTING, target=ApplicationState.COMPLETED)
    def complete(self) -> None:
        """At least one contract is active (others may still be pending) — design §4."""

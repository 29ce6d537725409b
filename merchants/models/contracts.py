"""Channel contracts (签约): one per merchant × channel account — design §4.

Mirrors WeChat applyment states (channel-protocols.md A.13) and Alipay zft (B.7: 031 auditing, 99 done, -1 failed).
"""

from __future__ import annotations

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from aggpay.fields import EncryptedTextField


class ContractState(models.TextChoices):
    PENDING = "pending", "Pending"  # created on approval, not yet sent
    SUBMITTED = "submitted", "Submitted"  # the channel accepted the application
    AUDITING = "auditing", "Auditing"  # the channel is reviewing
    REJECTED = "rejected", "Rejected"  # the channel refused; correct and resubmit
    TO_BE_CONFIRMED = "to_be_confirmed", "Account verification"  # merchant must verify its account
    TO_BE_SIGNED = "to_be_signed", "To be signed"  # merchant must sign (sign URL/QR)
    ACTIVE = "active", "Active"  # sub-merchant id usable
    LIMITED = "limited", "Limited"  # channel risk action
    SUSPENDED = "suspended", "Suspended"  # we or the channel stopped it
    TERMINATED = "terminated", "Terminated"  # terminal


class Contract(FSMModelMixin, models.Model):
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="contracts")
    channel_account = models.ForeignKey("channels.ChannelAccount", on_delete=models.PROTECT, related_name="contracts")
    application = models.ForeignKey("merchants.OnboardingApplication", null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="contracts")
    state = FSMField(default=ContractState.PENDING, choices=ContractState.choices, protected=True)
    business_code = models.CharField(max_length=64, unique=True,
                                     help_text="our id of the application at the channel: kept when a rejected application is "
                                               "resubmitted; WeChat gets a new generation (…_G2) after it withdrew one")
    channel_application_id = models.CharField(max_length=64, blank=True)
    sub_mchid = models.CharField("sub-merchant id", max_length=64, blank=True)
    sub_appid = models.CharField(max_length=64, blank=True)
    app_auth_token = EncryptedTextField(blank=True, help_text="Alipay ISV token (B.6)")
    rejection_reasons = models.JSONField(default=list, blank=True)
    sign_url = models.URLField(max_length=1024, blank=True)
    media_ids = models.JSONField(default=dict, blank=True,
                                 help_text="document sha256 → the channel's media id, so pictures upload once")
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    poll_attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "channel_account"], name="one_contract_per_account"),
            models.UniqueConstraint(fields=["channel_account", "sub_mchid"], condition=~models.Q(sub_mchid=""),
                                    name="unique_sub_mchid_per_account"),
        ]
        # Pricing a merchant below the account's cost is an operator's override with a reason (issue 4 "Contract";
        # merchants.services.contracts ``contract_set_rate``), not a clerk's rate change.
        permissions = [("override_contract_rate", "Can set a contract rate below the channel account's cost")]

    def __str__(self) -> str:
        # What staff read wherever a contract is named, the audit log's target label first (aggpay.audit stores it
        # when the row is written, so the audit pages read no contract): the merchant and the account by the names
        # the pages use, not their ids. Reads them if the contract came without them.
        merchant = self.merchant.short_name if self.merchant_id is not None else "no merchant"
        account = self.channel_account.code if self.channel_account_id is not None else "no account"
        return f"{merchant} on {account} (contract {self.pk or 'not saved'})"

    @transition(field=state, source=[ContractState.PENDING, ContractState.REJECTED], target=ContractState.SUBMITTED)
    def submit(self) -> None:
        """The channel accepted the (re)submission."""

    @transition(field=state, source=[ContractState.SUBMITTED, ContractState.AUDITING], target=ContractState.AUDITING)
    def audit(self) -> None:
        """The channel reports it is reviewing."""

    @transition(field=state, source=[ContractState.SUBMITTED, ContractState.AUDITING, ContractState.TO_BE_CONFIRMED,
                                     ContractState.TO_BE_SIGNED], target=ContractState.REJECTED)
    def reject(self) -> None:
        """The channel refused; reasons are stored by the service."""

    @transition(field=state, source=[ContractState.SUBMITTED, ContractState.AUDITING],
                target=ContractState.TO_BE_CONFIRMED)
    def ask_confirmation(self) -> None:
        """The merchant must verify its account (WeChat TO_BE_CONFIRMED)."""

    @transition(field=state, source=[ContractState.SUBMITTED, ContractState.AUDITING, ContractState.TO_BE_CONFIRMED],
                target=ContractState.TO_BE_SIGNED)
    def ask_signature(self) -> None:
        """The merchant must sign (sign URL/QR)."""

    @transition(field=state, source=[ContractState.SUBMITTED, ContractState.AUDITING, ContractState.TO_BE_CONFIRMED,
                                     ContractState.TO_BE_SIGNED], target=ContractState.ACTIVE)
    def activate(self) -> None:
        """FINISHED / 99: the sub-merchant id is usable."""

    @transition(field=state, source=ContractState.ACTIVE, target=ContractState.LIMITED)
    def limit(self) -> None:
        """Channel risk action limits the merchant."""

    @transition(field=state, source=ContractState.LIMITED, target=ContractState.ACTIVE)
    def lift_limit(self) -> None:
        """The channel lifted its limit."""

    @transition(field=state, source=ContractState.SUSPENDED, target=ContractState.SUSPENDED)
    def limit_while_suspended(self) -> None:
        """Channel risk action on a contract we hold suspended: it stays suspended (the clerk's suspension is not
        ended by risk), and the limit is recorded on its timeline for the resume to bring back (``resume_limited``).
        No state changes; the service writes the timeline entry the resume reads
        (merchants.services.contract_risk, settlement ``suspended_from``)."""

    @transition(field=state, source=ContractState.SUSPENDED, target=ContractState.SUSPENDED)
    def lift_limit_while_suspended(self) -> None:
        """The channel lifted its limit while we hold the contract suspended: it stays suspended, and resumed it
        goes back active. No state changes; recorded on the timeline as ``limit_while_suspended`` is."""

    @transition(field=state, source=[ContractState.ACTIVE, ContractState.LIMITED], target=ContractState.SUSPENDED)
    def suspend(self) -> None:
        """Stopped by us or the channel."""

    @transition(field=state, source=ContractState.SUSPENDED, target=ContractState.ACTIVE)
    def resume(self) -> None:
        """Suspension lifted, of a contract suspended while active."""

    @transition(field=state, source=ContractState.SUSPENDED, target=ContractState.LIMITED)
    def resume_limited(self) -> None:
        """Suspension lifted, of a contract suspended while limited, or limited by risk while suspended
        (``limit_while_suspended``): it goes back to its limit, which only risk lifts (``lift_limit``) — a suspension
        must not launder a channel risk action (design §4, §8). The service picks this or ``resume`` from what the
        timeline says the suspension holds (settlement ``suspended_from``)."""

    @transition(field=state, source=ContractState.SUSPENDED, target=ContractState.TERMINATED)
    def terminate(self) -> None:
        """Terminal."""


class ContractRate(models.Model):
    """The merchant's rate for one product on one contract. Must be ≥ the account's cost rate unless an operator
    overrides it with a reason (issue 4)."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="rates")
    product = models.CharField(max_length=24)
    rate = models.DecimalField(max_digits=8, decimal_places=6)
    below_cost_reason = models.CharField(max_length=256, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["contract", "product"]
        constraints = [models.UniqueConstraint(fields=["contract", "product"], name="one_rate_per_contract_product")]

    def __str__(self) -> str:
        return f"{self.product} {self.rate:%}"


class ContractEvent(models.Model):
    """Append-only timeline of a contract: every state change and every answer of the channel."""

    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=16, help_text="staff, channel, system or api")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.from_state}→{self.to_state} {self.message[:60]}"

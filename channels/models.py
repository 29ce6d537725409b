"""Channel configuration: accounts at the payment channels, the products they serve, their evaluation, history.

Design §2 (what ``channels/`` owns) and §6 (adapters); issue 3 "Channel configuration". Rows here are changed only
through ``channels.services`` so that every change is audited and kept in ``ChannelConfigChange``.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from aggpay.errors import InvalidRequest
from aggpay.fields import EncryptedJSONField, EncryptedTextField
from channels.adapters.base import PRODUCTS
from channels.registry import KIND_CHOICES, adapter_class


class ChannelConfigInvalid(InvalidRequest):
    """A channel account's stored or submitted config cannot build its adapter's typed config."""


class ChannelMode(models.TextChoices):
    ISV = "isv", "ISV (direct, 服务商)"  # we are the channel's service provider; sub-merchants under our ISV id
    BANK = "bank", "Bank (indirect, 间连)"  # a bank/acquirer holds the merchant contracts; we connect through it


# Design §6: WeChat Pay and Alipay are reached as their ISV; the bank kind is an indirect acquirer.
DEFAULT_MODE = {"wechatpay": ChannelMode.ISV, "alipay": ChannelMode.ISV, "bank": ChannelMode.BANK}

PRODUCT_CHOICES = [(code, code) for code in PRODUCTS]


class ChannelAccount(models.Model):
    """One account at a payment channel: our ISV account at WeChat Pay / Alipay, or our contract with a bank.

    ``config`` holds ``dataclasses.asdict`` of the kind's adapter ``config_class`` (ids, keys, secrets), encrypted
    at rest (design §5 rule 10). It is never displayed: pages show ``channels.services.accounts.config_display``.
    """

    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    code = models.SlugField(max_length=40, unique=True, help_text="short stable id, e.g. bank-a")
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=8, choices=ChannelMode.choices)
    base_url = models.URLField(
        max_length=255, help_text="the channel's gateway root, e.g. http://127.0.0.1:8100/bank for the simulators"
    )
    config = EncryptedJSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=False)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    def save(self, *args, **kwargs):
        if not self.mode:
            self.mode = DEFAULT_MODE.get(self.kind, ChannelMode.ISV)
        super().save(*args, **kwargs)

    @property
    def adapter_class(self):
        """The kind's adapter class; a clear error if that module is not installed (yet)."""
        try:
            return adapter_class(self.kind)
        except ImportError as exc:
            raise ChannelConfigInvalid(
                f"the {self.kind} adapter is not available ({exc}); cannot use channel account {self.code}",
                param="kind",
            ) from exc
        except ValueError as exc:
            raise ChannelConfigInvalid(str(exc), param="kind") from exc

    @property
    def typed_config(self):
        """The stored config as the adapter's frozen dataclass."""
        config_class = self.adapter_class.config_class
        try:
            return config_class(**(self.config or {}))
        except (TypeError, ValueError) as exc:
            raise ChannelConfigInvalid(
                f"channel account {self.code}: stored config does not fit {config_class.__name__}: {exc}",
                param="config",
            ) from exc

    def adapter(self):
        """An adapter bound to this account (registry → class(config, base_url=...)); design §6."""
        return self.adapter_class(self.typed_config, base_url=self.base_url)

    def config_field_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.adapter_class.config_class)]


class ChannelProduct(models.Model):
    """A product code (merchant-api.md "Orders") an account serves, at a cost, within limits."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.PROTECT, related_name="products")
    product = models.CharField(max_length=24, choices=PRODUCT_CHOICES)
    cost_rate = models.DecimalField(max_digits=8, decimal_places=6, help_text="what the channel charges, 0.0038 = 0.38%")
    isv_rebate_rate = models.DecimalField(
        max_digits=8, decimal_places=6, default=Decimal("0"), help_text="what the channel pays back to us (返佣)"
    )
    min_amount = models.PositiveBigIntegerField(default=1, help_text="per transaction, fen")
    max_amount = models.PositiveBigIntegerField(help_text="per transaction, fen")
    daily_cap = models.PositiveBigIntegerField(null=True, blank=True, help_text="per day, fen; empty = no cap")
    enabled = models.BooleanField(default=True)
    onboards_merchants = models.BooleanField(
        default=False,
        help_text="new merchants asking for this product get a contract on this account (issue 4: configurable "
                  "per product)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "product"]
        constraints = [
            models.UniqueConstraint(fields=["account", "product"], name="channel_product_unique_per_account"),
            models.CheckConstraint(
                condition=Q(cost_rate__gte=0) & Q(cost_rate__lt=1), name="channel_product_cost_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(isv_rebate_rate__gte=0) & Q(isv_rebate_rate__lt=1),
                name="channel_product_rebate_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(min_amount__gte=1) & Q(max_amount__gte=models.F("min_amount")),
                name="channel_product_amount_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account.code}:{self.product}"


class AccountDayVolume(models.Model):
    """What an account collected for a product on one local calendar day (settings.TIME_ZONE): the money routing
    holds against ``ChannelProduct.daily_cap`` (design §7 layer 1, "within its limits").

    Not configuration (no history, no audit): a counter, added to only by ``channels.services.volume
    .account_volume_add`` in the transaction that records a payment. One row per (account, product, day), so the
    add is one UPSERT and routing reads a day in one indexed query."""

    # No index of its own: the unique (account, product, day) index leads with it (every payment writes each index).
    account = models.ForeignKey(ChannelAccount, on_delete=models.PROTECT, related_name="day_volumes", db_index=False)
    product = models.CharField(max_length=24, choices=PRODUCT_CHOICES)
    day = models.DateField(help_text="local calendar day (Asia/Shanghai) of the payments' paid_at")
    paid_amount = models.PositiveBigIntegerField(default=0, help_text="fen collected that day")
    paid_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "account", "product"]
        constraints = [
            models.UniqueConstraint(fields=["account", "product", "day"], name="account_day_volume_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.product} {self.day} {self.paid_amount} fen"


class ChannelConfigChangeQuerySet(models.QuerySet):
    def update(self, **kwargs):  # pragma: no cover - tripwire
        raise TypeError("configuration history is append-only")

    def delete(self):  # pragma: no cover - tripwire
        raise TypeError("configuration history is append-only")


class ChannelConfigChange(models.Model):
    """Configuration history of a channel account, its products, rates and evaluations (design §5 rule 9).

    ``changes`` maps a field to ``{"old": ..., "new": ...}``; secret fields map to the string ``"(changed)"``.
    Written by the services in the same transaction as the change; never updated or deleted.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    account = models.ForeignKey(ChannelAccount, on_delete=models.PROTECT, related_name="changes")
    target_type = models.CharField(max_length=16, help_text="account, product or evaluation")
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=200)
    action = models.CharField(max_length=64, help_text="e.g. product.updated, evaluation.approved")
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)

    objects = ChannelConfigChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("configuration history is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("configuration history is append-only")


# --- interface evaluation (接口评估) ----------------------------------------------------------------------------

# The checklist of issue 3 ("Interface evaluation"): key, label, what to find out.
CHECKLIST_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("products", "Products and scenarios", "Which products (JSAPI, native, barcode, app, H5…) and scenarios?"),
    ("signing", "Signing scheme", "Algorithm, key format, certificate or public-key mode, rotation."),
    ("notification", "Notification and retry", "Callback format, signature, ack format, retry schedule."),
    ("refund", "Refund rules", "Partial refunds? How many? Refund window? Fee returned?"),
    ("cancel_reverse", "Cancel / reverse", "Can unpaid trades be closed, barcode trades reversed? Until when?"),
    ("bill", "Bill time and format", "When is the daily bill available, in which format and encoding?"),
    ("settlement", "Settlement cycle", "T+1 / D+1 / D+0, to whom, holidays."),
    ("limits", "Limits", "Per-transaction, daily and monthly limits; by product and card type."),
    ("card_rules", "SMS / signing rules (card products)", "SMS verification, card binding, signing agreements."),
    ("fees", "Fees", "Cost rates per product, rebates, caps, minimum fees."),
    ("contacts", "Contacts", "Business and technical contacts, escalation, support hours."),
)
CHECKLIST_KEYS = tuple(key for key, _, _ in CHECKLIST_ITEMS)
MAX_SCORE = 5


class EvaluationState(models.TextChoices):
    EVALUATING = "evaluating", "Evaluating"  # ops are filling the checklist
    APPROVED = "approved", "Approved"  # verdict: go ahead and integrate
    REJECTED = "rejected", "Rejected"  # verdict: not connected (terminal; a new evaluation may start later)
    INTEGRATING = "integrating", "Integrating"  # development and joint testing with the channel
    LIVE = "live", "Live"  # in production


class InterfaceEvaluation(FSMModelMixin, models.Model):
    """接口评估 of a channel account before it goes live (design §1, issue 3): checklist, score and verdict."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.PROTECT, related_name="evaluations")
    state = FSMField(default=EvaluationState.EVALUATING, choices=EvaluationState.choices, protected=True)
    checklist = models.JSONField(default=dict, blank=True, help_text="{item: {finding, score 0-5}}")
    verdict_notes = models.TextField(blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One evaluation at a time per account; a rejected one may be followed by a fresh evaluation.
            models.UniqueConstraint(
                fields=["account"], condition=~Q(state="rejected"), name="one_open_evaluation_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"evaluation #{self.pk} of {self.account.code}"

    def item(self, key: str) -> dict:
        entry = (self.checklist or {}).get(key) or {}
        return {"finding": entry.get("finding", ""), "score": entry.get("score")}

    def items(self) -> list[dict]:
        return [{"key": key, "label": label, "prompt": prompt, **self.item(key)} for key, label, prompt in CHECKLIST_ITEMS]

    def missing_items(self) -> list[str]:
        """Items without both a finding and a score: the verdict needs every item looked at."""
        return [key for key in CHECKLIST_KEYS if self.item(key)["score"] is None or not self.item(key)["finding"]]

    @property
    def overall_score(self) -> Decimal | None:
        """Mean of the scored items, 0–5 to one decimal (computed, never stored)."""
        scores = [self.item(key)["score"] for key in CHECKLIST_KEYS if self.item(key)["score"] is not None]
        if not scores:
            return None
        return (Decimal(sum(scores)) / Decimal(len(scores))).quantize(Decimal("0.1"))

    @transition(field=state, source=EvaluationState.EVALUATING, target=EvaluationState.APPROVED)
    def approve(self) -> None:
        """Verdict: the interface is fit to integrate."""

    @transition(field=state, source=EvaluationState.EVALUATING, target=EvaluationState.REJECTED)
    def reject(self) -> None:
        """Verdict: not connected."""

    @transition(field=state, source=EvaluationState.APPROVED, target=EvaluationState.INTEGRATING)
    def start_integrating(self) -> None:
        """Development and joint testing begin."""

    @transition(field=state, source=EvaluationState.INTEGRATING, target=EvaluationState.LIVE)
    def go_live(self) -> None:
        """In production."""


class CallbackOutcome(models.TextChoices):
    APPLIED = "applied", "Applied"  # verified and handled
    DUPLICATE = "duplicate", "Duplicate"  # seen before; acknowledged, nothing changed
    IGNORED = "ignored", "Ignored"  # verified, nothing of ours to change (acknowledged)
    REJECTED = "rejected", "Rejected"  # failed verification or cross-check (security event for risk)
    ERROR = "error", "Error"  # transient failure on our side; the channel will retry


class ChannelCallback(models.Model):
    """Every callback a channel sent us, raw, beside what we made of it (style.md §8: store the raw payload).

    The body may carry PII, so it is encrypted at rest; headers are kept with signatures redacted.
    """

    account = models.ForeignKey(ChannelAccount, on_delete=models.PROTECT, related_name="callbacks")
    # When the notice arrived — set by channels.callbacks when the request came in, not when its row was written
    # after handling (a trade's timeline then put the order.succeeded a payment notice caused before the notice).
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=16, blank=True, help_text="payment, refund, onboarding, complaint, violation")
    event_id = models.CharField(max_length=128, blank=True, db_index=True)
    outcome = models.CharField(max_length=12, choices=CallbackOutcome.choices)
    message = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = EncryptedTextField(blank=True)
    # What the adapter read from the body once it was verified, as JSON, encrypted at rest like the body: for a
    # WeChat Pay v3 notice the decrypted resource (channel-protocols.md A.4), of which the body shows only the
    # ciphertext — the trade timeline shows this, redacted, so staff read the amount and state the channel sent.
    decoded = EncryptedTextField(blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    # A refused callback is a security event for risk (issue 5 "Callbacks"): a risk officer marks it reviewed with
    # a note (channels.services.callback_reviews). Set once, never changed: the audit row beside it is the history.
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    review_note = models.TextField(blank=True)
    # A notice we did not process (outcome error or ignored) stays in operations' queue (channels.unprocessed) until
    # an operator marks it handled with a note (channels.services.callback_handling). Set once, never changed: the
    # audit row beside it is the history. A refused callback's review above is risk's, not this.
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    handled_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["account", "event_id"]),
            # Risk's queue of refused callbacks and its home tile (unreviewed ones) read only this sliver of a
            # table that keeps every callback ever received.
            models.Index(fields=["reviewed_at", "-received_at"], condition=Q(outcome="rejected"),
                         name="channel_callback_refused"),
            # Operations' queue of callbacks not processed (channels.unprocessed): the open ones (its default list,
            # its account counts, the home tile) and the handled ones are two slivers, newest first, so the open
            # queue's index holds only what is left to look at however many have been handled.
            models.Index(fields=["account", "-received_at"],
                         condition=Q(outcome__in=["error", "ignored"], handled_at__isnull=True),
                         name="channel_callback_open"),
            models.Index(fields=["account", "-received_at"],
                         condition=Q(outcome__in=["error", "ignored"], handled_at__isnull=False),
                         name="channel_callback_handled"),
        ]
        permissions = [("review_channelcallback", "Can mark refused channel callbacks reviewed"),
                       ("handle_channelcallback", "Can mark channel callbacks not processed handled")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.event_id} {self.outcome}"

"""Merchant notifications as an outbox (design §5 rule 8; merchant-api.md "Notifications and events").

An ``Event`` is one merchant-visible change, written in the same transaction as the change. Each ``Delivery`` is
that event on its way to one notify URL (design §4: ``pending → delivered | exhausted``); each try is a
``DeliveryAttempt``. A broker outage therefore delays notifications but cannot lose them: the rows are the truth and
a sweeper re-enqueues whatever is due.
"""

from __future__ import annotations

import secrets

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


class AppendOnlyQuerySet(models.QuerySet):
    """Events are history: merchants de-duplicate by id and order by sequence, so a row never changes."""

    def update(self, **kwargs):  # pragma: no cover - tripwire
        raise TypeError("events are append-only")

    def delete(self):  # pragma: no cover - tripwire
        raise TypeError("events are append-only")


class Event(models.Model):
    """One merchant-visible change (``order.succeeded``, ``merchant.activated``, ...). Append-only.

    ``merchant`` is the merchant whose apps receive and may list the event: the order's merchant for trade
    events, the partner for the ``merchant.*`` events of the merchants it onboards. ``data`` is the object as the
    API returns it, frozen at the time of the change.
    """

    event_id = models.CharField(max_length=32, unique=True, default=new_event_id, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="events")
    app = models.ForeignKey("merchants.MerchantApp", null=True, blank=True, on_delete=models.PROTECT,
                            related_name="+", help_text="the app the object belongs to (e.g. created the order)")
    type = models.CharField(max_length=40, help_text="e.g. order.succeeded, merchant.activated")
    object_type = models.CharField(max_length=24, help_text="order, refund, merchant")
    object_id = models.CharField(max_length=64, help_text="the object's public id (ord_..., M...)")
    # merchant-api.md: "order by sequence (per object)". Assigned from EventSequence under its row lock; the
    # unique constraint is the backstop.
    sequence = models.PositiveIntegerField()
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["object_type", "object_id", "sequence"], name="event_sequence_per_object"),
        ]
        indexes = [
            models.Index(fields=["merchant", "-created_at", "-id"], name="event_merchant_newest"),
            models.Index(fields=["object_type", "object_id"], name="event_object"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} {self.object_type}:{self.object_id}#{self.sequence}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("events are append-only")
        super().save(*args, **kwargs)


class EventSequence(models.Model):
    """The last ``sequence`` given to an object's events; its row lock serialises emitters of one object."""

    object_type = models.CharField(max_length=24)
    object_id = models.CharField(max_length=64)
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["object_type", "object_id"], name="one_sequence_per_object"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}:{self.object_id} → {self.last}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"  # not acknowledged yet; next_attempt_at says when to try
    DELIVERED = "delivered", "Delivered"  # the receiver answered 2xx
    EXHAUSTED = "exhausted", "Exhausted"  # the retry ladder ran out; support may resend


class Delivery(FSMModelMixin, models.Model):
    """One event on its way to one notify URL, signed for ``app`` (merchant-api.md "Authentication and signing")."""

    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="deliveries")
    app = models.ForeignKey("merchants.MerchantApp", on_delete=models.PROTECT, related_name="deliveries",
                            help_text="whose key signs the notification")
    url = models.CharField(max_length=512)
    state = FSMField(default=DeliveryState.PENDING, choices=DeliveryState.choices, protected=True)
    attempts = models.PositiveIntegerField(default=0, help_text="attempts in the current round (resend starts one)")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Lease of the attempt in flight: while it runs no other worker starts one; if the worker dies, the sweeper
    # picks the delivery up again once it lapses (a worker killed mid-delivery redelivers the same event).
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "url"], name="one_delivery_per_event_url")]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]
        permissions = [("resend_delivery", "Can resend merchant notifications")]

    def __str__(self) -> str:
        return f"delivery #{self.pk} of {self.event_id} to {self.url} ({self.state})"

    @transition(field=state, source=DeliveryState.PENDING, target=DeliveryState.DELIVERED)
    def deliver(self) -> None:
        """The receiver acknowledged with a 2xx."""

    @transition(field=state, source=DeliveryState.PENDING, target=DeliveryState.EXHAUSTED)
    def exhaust(self) -> None:
        """The last retry of the contract's ladder failed."""

    @transition(field=state, source=[DeliveryState.DELIVERED, DeliveryState.EXHAUSTED], target=DeliveryState.PENDING)
    def resend(self) -> None:
        """Support sends it again (a new round of the ladder)."""


class DeliveryAttempt(models.Model):
    """One POST of a delivery: what the receiver answered and how long it took (style.md §11)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, related_name="attempt_log")
    number = models.PositiveIntegerField(help_text="attempt number within its round")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_snippet = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        outcome = self.status_code if self.status_code is not None else (self.error or "in flight")
        return f"attempt {self.number} of delivery #{self.delivery_id}: {outcome}"

"""The channel's own refund numbers of earlier refund attempts (issue 5: support searches a trade by any number).

A failed refund retried under its out_refund_no goes to the channel as a new attempt, and the channel gives that
attempt a new number of its own (merchant-api.md "Refunds"; trades.services.refunds.channel_refund_no): the
refund's ``channel_refund_no`` then names the current attempt only. The earlier attempt's number is still what the
channel's bill, its back office and a payer's complaint name — most of all when that attempt succeeded after all (a
possible double refund). Each such number is kept here, one indexed row per number, so
trades.workbench.search_orders finds the trade by it without opening audit rows. A late payment's refund has no
Refund row (trades.services.late): its rows leave ``refund`` empty.
"""

from __future__ import annotations

from django.db import models


class EarlierRefundNumber(models.Model):
    order = models.ForeignKey("trades.Order", on_delete=models.PROTECT, related_name="+", db_index=False)
    # Empty for a late payment's refund (it has no Refund row); no index: nothing looks rows up by refund.
    refund = models.ForeignKey("trades.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    attempt = models.PositiveIntegerField(help_text="the refund attempt the channel gave this number to (0: the first)")
    channel_refund_no = models.CharField(max_length=64, help_text="the channel's own number of that attempt")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One row per number and trade, whichever path learnt it (the retry, or a late word about that attempt).
            models.UniqueConstraint(fields=["order", "channel_refund_no"], name="earlierrefundnumber_unique"),
        ]
        indexes = [models.Index(fields=["channel_refund_no"], name="earlierrefundnumber_no")]

    def __str__(self) -> str:
        return f"{self.channel_refund_no} (attempt {self.attempt} of a refund of {self.order_id})"

    @classmethod
    def keep(cls, *, order_id: str, refund_id: str | None, attempt: int, channel_refund_no: str) -> None:
        """Remember ``channel_refund_no`` (nothing when empty) as a number of the trade ``order_id``: idempotent, and
        safe inside the caller's transaction (ON CONFLICT DO NOTHING, no error to roll back)."""
        number = (channel_refund_no or "").strip()
        if number:
            cls.objects.bulk_create([cls(order_id=order_id, refund_id=refund_id, attempt=attempt,
                                         channel_refund_no=number[:64])], ignore_conflicts=True)

"""Orders and refunds — design §4 (state machines) and §5 (rules), merchant-api.md "Orders" and "Refunds".

Money is integer fen. ``state`` moves only through the transitions below, from trades.services, under a row lock
with a re-check. Aggregates beside the state: ``refunded_amount`` / ``refund_reserved`` / ``refund_state`` for
refunds, ``sync_state`` + ``next_query_at`` for outcomes we do not know yet (design §5 rule 2).
"""

from __future__ import annotations

import secrets
import string

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

_ALPHABET = string.ascii_letters + string.digits


def public_id(prefix: str) -> str:
    """``ord_`` / ``ref_`` + 22 random base62 characters (≈131 bits): also our out_trade_no at the channel, so it
    fits every channel's rule (WeChat 6–32 chars of [0-9A-Za-z_-*|], A.7).

    One read of the system's randomness (192 bits, so reducing it to 22 base62 digits is uniform to within 2⁻⁶⁰),
    not one per character as ``secrets.choice`` does: each read releases the GIL, and in a threaded web worker
    every release is a chance for a thread switch."""
    number = int.from_bytes(secrets.token_bytes(24), "big")
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return prefix + "".join(digits)


def new_order_id() -> str:
    return public_id("ord_")


def new_refund_id() -> str:
    return public_id("ref_")


class OrderState(models.TextChoices):
    PENDING = "pending", "Pending"  # created; the payer has not paid yet, or we do not know yet
    SUCCEEDED = "succeeded", "Succeeded"  # the channel says paid
    FAILED = "failed", "Failed"  # the channel explicitly refused (never on a timeout, design §5 rule 2)
    CLOSED = "closed", "Closed"  # closed or expired before payment, after asking the channel
    REVERSED = "reversed", "Reversed"  # 撤销 (payment code): closed if unpaid, refunded if paid


class RefundState(models.TextChoices):
    NONE = "none", "None"
    PARTIAL = "partial", "Partially refunded"
    FULL = "full", "Fully refunded"


class SyncState(models.TextChoices):
    OK = "ok", "Known"
    UNKNOWN = "unknown", "Unknown — being queried"  # a timeout/5xx left the outcome open
    MANUAL = "manual", "Unknown — needs a person"  # the query ladder ran out (design §5 rule 2)


class Order(FSMModelMixin, models.Model):
    id = models.CharField(primary_key=True, max_length=26, default=new_order_id, editable=False)
    # No index of its own: the unique (merchant, out_trade_no) index leads with it (every order writes each index).
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="orders",
                                 db_index=False)
    app = models.ForeignKey("merchants.MerchantApp", null=True, blank=True, on_delete=models.PROTECT,
                            related_name="orders")
    out_trade_no = models.CharField(max_length=32)
    amount = models.BigIntegerField(help_text="fen")
    currency = models.CharField(max_length=3, default="CNY")
    product = models.CharField(max_length=24, help_text="as requested: may be barcode or cashier")
    channel_product = models.CharField(max_length=24, blank=True, help_text="what the channel was asked for")
    subject = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    notify_url = models.URLField(max_length=512, blank=True)
    return_url = models.URLField(max_length=512, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    payer = models.JSONField(default=dict, blank=True, help_text="openid / buyer_id / user_id")
    auth_code_masked = models.CharField(max_length=32, blank=True, help_text="payment codes are never stored whole")
    store_id = models.CharField(max_length=32, blank=True)
    terminal_id = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField()
    request_fingerprint = models.CharField(max_length=64, help_text="sha256 of the create parameters (idempotency)")

    state = FSMField(default=OrderState.PENDING, choices=OrderState.choices, protected=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=256, blank=True)

    channel_account = models.ForeignKey("channels.ChannelAccount", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="orders")
    contract = models.ForeignKey("merchants.Contract", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="orders")
    sub_mchid = models.CharField(max_length=64, blank=True)
    routing = models.JSONField(default=dict, blank=True, help_text="which layer chose the account, candidates seen")
    channel_trade_no = models.CharField(max_length=64, blank=True)
    # The number on the payer's wallet receipt (WeChat 交易单号, Alipay 交易号, UnionPay order id), which a consumer
    # quotes to support: channel_trade_no at a direct channel; behind a bank, the bank's channel_trade_no beside its
    # own trade_no (docs/channels/bank.md §2, §14). Never in the merchant API (merchant-api.md names no such field).
    wallet_trade_no = models.CharField(max_length=64, blank=True,
                                       help_text="the number the payer's wallet shows (WeChat 交易单号, Alipay 交易号)")
    pay_params = models.JSONField(default=dict, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    # Fee snapshot (trades.services.fees), taken at creation.
    merchant_rate = models.DecimalField(max_digits=8, decimal_places=6, default=0)
    merchant_fee = models.BigIntegerField(default=0)
    cost_rate = models.DecimalField(max_digits=8, decimal_places=6, default=0)
    channel_cost = models.BigIntegerField(default=0)
    rebate_rate = models.DecimalField(max_digits=8, decimal_places=6, default=0)
    rebate = models.BigIntegerField(default=0)
    profit = models.BigIntegerField(default=0)

    # A reversal (撤销) of a paid order refunds the whole amount: it counts here as a succeeded refund would
    # (trades.services.orders._reversal_refunded; merchant-api.md "Orders": reverse "refunds it if paid").
    refunded_amount = models.BigIntegerField(default=0, help_text="sum of succeeded refunds (or the reversal), fen")
    refund_reserved = models.BigIntegerField(default=0, help_text="sum of non-failed refunds (or the reversal), fen "
                                                                  "(design §5 rule 6)")
    refund_state = models.CharField(max_length=8, choices=RefundState.choices, default=RefundState.NONE)
    # A reverse (撤销) asked of the channel and not yet settled (trades.services.orders.order_reverse). While it is
    # set, the whole amount is held in refund_reserved — a reverse of a paid order refunds all of it (design §5
    # rule 6) — so no refund can be created beside it, and the reverse is retried on the barcode ladder (rule 2).
    reverse_requested_at = models.DateTimeField(null=True, blank=True)

    sync_state = models.CharField(max_length=8, choices=SyncState.choices, default=SyncState.OK)
    next_query_at = models.DateTimeField(null=True, blank=True, db_index=True)
    query_attempts = models.PositiveIntegerField(default=0)
    last_queried_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "out_trade_no"], name="order_unique_out_trade_no"),
            models.UniqueConstraint(fields=["channel_account", "channel_trade_no"], condition=~Q(channel_trade_no=""),
                                    name="order_unique_channel_trade_no"),
            models.CheckConstraint(condition=Q(amount__gte=1), name="order_amount_positive"),
            models.CheckConstraint(condition=Q(refund_reserved__lte=models.F("amount")) & Q(refund_reserved__gte=0),
                                   name="order_refunds_within_amount"),
            models.CheckConstraint(condition=Q(refunded_amount__lte=models.F("refund_reserved"))
                                   & Q(refunded_amount__gte=0), name="order_refunded_within_reserved"),
        ]
        permissions = [("refund_order", "Can refund orders from the staff pages")]
        # Support searches by any number (issue 5 "Staff pages"); the unique constraints lead with the merchant or
        # the account, so these lookups need their own indexes.
        # Every order writes each index of this table, twice when its pay params arrive (docs/benchmarks.md): the
        # indexes are the ones queries use. The sweepers read pending orders by expiry (orders_expired) and the
        # support queue reads orders whose outcome is unknown (trades.workbench), both few among all orders, so
        # partial indexes serve them; plain indexes on state and sync_state (and their LIKE twins) served nothing.
        indexes = [models.Index(fields=["out_trade_no"], name="order_out_trade_no_idx"),
                   models.Index(fields=["channel_trade_no"], name="order_channel_trade_no_idx"),
                   # Partial: an order is written into it only once a wallet has a number for it (paid, mostly),
                   # never by the create of a QR or JSAPI order (trades.workbench searches with the same condition).
                   models.Index(fields=["wallet_trade_no"], condition=~Q(wallet_trade_no=""),
                                name="order_wallet_trade_no"),
                   # Support finds a till's orders by the store it sent (trades.workbench.store_orders): partial, so
                   # only an order that names a store is written into it.
                   models.Index(fields=["store_id"], condition=~Q(store_id=""), name="order_store_id"),
                   models.Index(fields=["expires_at"], condition=Q(state="pending"), name="order_pending_expiry"),
                   models.Index(fields=["created_at"], condition=~Q(sync_state="ok"), name="order_sync_attention"),
                   # A merchant's statement reads one day of its payments (trades.services.statements); partial, so
                   # an order is written into it only when it is paid, never by the create.
                   models.Index(fields=["merchant", "paid_at"], condition=Q(paid_at__isnull=False),
                                name="order_merchant_paid"),
                   # ... and finance's fees-and-profit report, every merchant's payments of a few days
                   # (trades.services.finance).
                   models.Index(fields=["paid_at"], condition=Q(paid_at__isnull=False), name="order_paid")]

    def __str__(self) -> str:
        return f"{self.id} {self.out_trade_no} {self.amount} fen ({self.state})"

    @property
    def refundable_amount(self) -> int:
        return self.amount - self.refund_reserved if self.state == OrderState.SUCCEEDED else 0

    @transition(field=state, source=OrderState.PENDING, target=OrderState.SUCCEEDED)
    def succeed(self) -> None:
        """The channel says paid (callback or query), after the cross-check."""

    @transition(field=state, source=OrderState.PENDING, target=OrderState.FAILED)
    def fail(self) -> None:
        """An explicit refusal by the channel — never a timeout."""

    @transition(field=state, source=OrderState.PENDING, target=OrderState.CLOSED)
    def close(self) -> None:
        """Closed or expired after the channel confirmed it was unpaid (design §5 rule 3)."""

    @transition(field=state, source=[OrderState.PENDING, OrderState.SUCCEEDED], target=OrderState.REVERSED)
    def reverse(self) -> None:
        """撤销 through the channel's reverse (which refunds a paid order)."""


class Refund(FSMModelMixin, models.Model):
    id = models.CharField(primary_key=True, max_length=26, default=new_refund_id, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    # No index of its own: the unique (merchant, out_refund_no) and the statement's (merchant, succeeded_at)
    # lead with it, so every lookup by merchant has one already.
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="refunds",
                                 db_index=False)
    out_refund_no = models.CharField(max_length=64)
    amount = models.BigIntegerField(help_text="fen")
    reason = models.CharField(max_length=256, blank=True)
    notify_url = models.URLField(max_length=512, blank=True)
    request_fingerprint = models.CharField(max_length=64)
    requested_by = models.CharField(max_length=150, help_text="api:<app_id> or a staff user")
    state = FSMField(default="pending", choices=[("pending", "Pending"), ("succeeded", "Succeeded"),
                                                 ("failed", "Failed"), ("closed", "Closed")],
                     protected=True, db_index=True)
    abnormal = models.BooleanField(default=False, help_text="the channel could not return the money: manual queue")
    channel_refund_no = models.CharField(max_length=64, blank=True)
    channel_attempt = models.PositiveIntegerField(default=0, help_text="retries of a failed refund reuse the number")
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=256, blank=True)
    # The part of the order's fee snapshot this refund gives back (trades.services.fees.fees_for_refund).
    merchant_fee_refunded = models.BigIntegerField(default=0)
    channel_cost_refunded = models.BigIntegerField(default=0)
    rebate_refunded = models.BigIntegerField(default=0)
    sync_state = models.CharField(max_length=8, choices=SyncState.choices, default=SyncState.OK, db_index=True)
    next_query_at = models.DateTimeField(null=True, blank=True, db_index=True)
    query_attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "out_refund_no"], name="refund_unique_out_refund_no"),
            models.CheckConstraint(condition=Q(amount__gte=1), name="refund_amount_positive"),
        ]
        indexes = [models.Index(fields=["out_refund_no"], name="refund_out_refund_no_idx"),
                   models.Index(fields=["channel_refund_no"], name="refund_channel_refund_no_idx"),
                   # A merchant's statement reads one day of its succeeded refunds (trades.services.statements).
                   models.Index(fields=["merchant", "succeeded_at"], condition=Q(state="succeeded"),
                                name="refund_merchant_succeeded"),
                   # ... and finance's report, every merchant's refunds of a few days (trades.services.finance).
                   models.Index(fields=["succeeded_at"], condition=Q(state="succeeded"), name="refund_succeeded")]

    def __str__(self) -> str:
        return f"{self.id} {self.out_refund_no} {self.amount} fen ({self.state})"

    @transition(field=state, source="pending", target="succeeded")
    def succeed(self) -> None:
        """The channel returned the money."""

    @transition(field=state, source="pending", target="failed")
    def fail(self) -> None:
        """An explicit refusal; the same out_refund_no may be retried (merchant-api.md "Refunds")."""

    @transition(field=state, source="failed", target="pending")
    def retry(self) -> None:
        """A failed refund retried with the same out_refund_no."""

    @transition(field=state, source="failed", target="succeeded")
    def succeed_after_failure(self) -> None:
        """The channel, asked again, says a refund it had failed returned the money after all (bank.md §7.3: its
        "fail" is not final). Only from support's "Ask the channel and record as refunded", on the channel's own
        answer (trades.services.refunds.refund_record_channel_success)."""

    @transition(field=state, source="closed", target="succeeded")
    def succeed_after_close(self) -> None:
        """The channel, asked again, says a refund it had closed returned the money after all (bank.md §7.3: a
        ``CLOSED`` refund is "refundable again", as a ``FAIL`` one is, so its close is not final either). As
        ``succeed_after_failure``: only from support's "Ask the channel and record as refunded", on the channel's own
        answer (trades.services.refunds.refund_record_channel_success)."""

    @transition(field=state, source="pending", target="closed")
    def close(self) -> None:
        """The channel closed the refund (REFUND.CLOSED)."""

    @transition(field=state, source="pending", target="closed")
    def close_by_hand(self) -> None:
        """A person closes a refund the channel said it could not return (ABNORMAL: the payer's account could not
        take the money back), after settling it with the channel: the money did not go back through the channel, so
        the refund ends as a closed one does — its amount released, the merchant told ``refund.closed``. Only from
        support's "Mark handled" with that outcome (trades.services.refunds.refund_close_by_hand); a later success
        from the channel is still recorded (refund_flag_settled_success, then "record as refunded")."""


class ChannelCall(models.Model):
    """Append-only record of each adapter call made for an order or refund: the trade timeline's channel part."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="channel_calls")
    # Most calls are an order's, not a refund's: only refunds' calls are indexed by refund.
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="channel_calls",
                               db_index=False)
    verb = models.CharField(max_length=24)  # create, query, close, reverse, refund, query_refund
    outcome = models.CharField(max_length=24)  # the normalised state, or error/unknown
    channel_code = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=512, blank=True)
    # What we sent: METHOD path and body of each HTTP exchange of the call (trades.services.channel_calls).
    request = models.TextField(blank=True, help_text="what we sent, redacted")
    answer = models.TextField(blank=True, help_text="the channel's answer, redacted")
    elapsed_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["refund"], condition=Q(refund__isnull=False), name="channelcall_refund_idx")]

    def __str__(self) -> str:
        return f"{self.verb} {self.outcome}"


class LatePayment(FSMModelMixin, models.Model):
    """A success that arrived after we closed the order (design §5 rule 3): never lost — refunded automatically or
    queued for support, per ``AGGPAY_LATE_PAYMENT_AUTO_REFUND``. ``state`` moves only through the transitions below,
    from trades.services.late, under the row's lock (the states and the rules are in that module's docstring)."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="late_payment")
    channel_trade_no = models.CharField(max_length=64)
    amount = models.BigIntegerField()
    detected_at = models.DateTimeField(auto_now_add=True)
    state = FSMField(max_length=12, default="open", protected=True,
                     choices=[("open", "Open"), ("refunding", "Refunding"), ("resolved", "Resolved")])
    resolution = models.TextField(blank=True)
    # Each refund after a failed one goes to the channel under a new number (trades.services.late.late_refund_no):
    # a channel keeps a failed out_refund_no failed. 0 while none has been asked for.
    refund_attempts = models.PositiveIntegerField(default=0, help_text="refunds of it asked of the channel")
    abnormal = models.BooleanField(default=False, help_text="an earlier refund attempt succeeded after a retry: "
                                                            "a possible double refund, held for a person")
    # The channel's own number of the refund (the bank's refund_no ``R…``, docs/channels/bank.md §7.3; WeChat's
    # refund_id; Alipay's): a late payment's refund has no Refund row, so support finds the order by it here
    # (trades.workbench.search_orders). Kept from the latest answer about the current attempt that named one
    # (trades.services.late.late_payment_apply_refund_result); an earlier attempt's stays in the resolution notes.
    channel_refund_no = models.CharField(max_length=64, blank=True,
                                         help_text="the channel's number of the latest refund attempt it numbered")
    # When the money moved at the channel, so the statement and the fee report date it as the channel's bill does
    # (trades.services.statements): the channel's payment time from the late success (set where the late payment is
    # recorded, trades.services.orders._late_payment), and the time the money went back — the channel's success time
    # of the refund, or when a person said it was refunded outside aggpay (trades.services.late). ``refunded_at`` is
    # empty while the money is with the merchant: not refunded yet, or kept by the merchant.
    paid_at = models.DateTimeField(default=timezone.now, help_text="when the payer paid, as the channel says")
    refunded_at = models.DateTimeField(null=True, blank=True, help_text="when the money went back to the payer")

    class Meta:
        # Partial: only a late payment the channel gave a refund number is written into it (trades.workbench
        # searches with the same condition).
        indexes = [models.Index(fields=["channel_refund_no"], condition=~Q(channel_refund_no=""),
                                name="latepayment_channel_refund_no"),
                   # The statements' and the fee report's day windows (trades.services.statements, .finance).
                   models.Index(fields=["paid_at"], name="latepayment_paid_at"),
                   models.Index(fields=["refunded_at"], condition=Q(refunded_at__isnull=False),
                                name="latepayment_refunded_at")]

    def __str__(self) -> str:
        return f"late payment on {self.order_id}"

    # The transitions' conditions read the flag and nothing else: the late-payment queue's filter is derived from
    # the settling transitions by asking them of every state × flag (trades.services.late.late_payments_settleable).
    def _not_flagged(self) -> bool:
        return not self.abnormal

    def _flagged(self) -> bool:
        return self.abnormal

    @transition(field=state, source="open", target="refunding", conditions=[_not_flagged])
    def refund_start(self) -> None:
        """The intent to refund, recorded before the channel is asked: a new attempt under its own number (a channel
        keeps a failed number failed). Never while flagged: an earlier attempt may have returned the money."""
        self.refund_attempts += 1

    @transition(field=state, source=["refunding", "open"], target="resolved")
    def refund_succeeded(self) -> None:
        """The channel says the current attempt returned the money — from ``open`` too, when its success follows
        its own "no" (the channel changed its mind, or its notice overtook its answer to us)."""

    @transition(field=state, source="refunding", target="open")
    def refund_refused(self) -> None:
        """A definite "no" about the current attempt (failed, closed, or abnormal at the channel): back to the
        late-payment queue for a person, with the channel's words."""

    @transition(field=state, source="refunding", target="open", conditions=[_flagged])
    def refund_never_received(self) -> None:
        """The channel has no refund under the current attempt's number and, flagged, it is not sent again (it
        could return the money twice): back to the queue, still flagged, for a person to settle by hand."""

    @transition(field=state, source="refunding", target="open", conditions=[_flagged])
    def refund_held(self) -> None:
        """The channel's answer about the current attempt names another amount than the late payment's: nothing is
        booked on it; flagged, back to the queue for a person (trades.services.late._hold_for_amount)."""

    @transition(field=state, source="open", target="resolved")
    def settle_by_hand(self) -> None:
        """A person settled it outside aggpay (refunded by the channel's own back office, or kept by the merchant);
        settling clears the flag. Never while ``refunding``: the channel may still be returning the money."""
        self.abnormal = False

    @transition(field=state, source="resolved", target="resolved", conditions=[_flagged])
    def settle_flagged_by_hand(self) -> None:
        """A person settled a resolved one flagged because an earlier attempt succeeded too (a possible double
        refund) — it stays resolved, the flag cleared. A resolved one not flagged has nothing left to settle."""
        self.abnormal = False

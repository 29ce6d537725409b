"""Read side of the support/ops trade workbench (issue 5 "Staff pages"): search by any number, the trade's single
timeline, and the queues with their counts. Nothing here writes; every change goes through trades.services.staff or
trades.services.events.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from aggpay.days import on_days
from aggpay.masking import mask_middle
from aggpay.models import AuditLog
from aggpay.money import format_yuan
from channels.adapters.http import redact
from channels.models import ChannelCallback
from merchants.models import Contract, Merchant, Store
from trades.models import (
    ChannelCall,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EarlierRefundNumber,
    Event,
    LatePayment,
    Order,
    OrderState,
    Refund,
    StoreCode,
    SyncState,
)
from trades.services.cashier import PAYER_KEYS
from trades.services.late import late_payment_refund_no, late_payments_settleable, late_refund_no_split
from trades.services.refunds import refund_can_record_channel_success, refund_channel_said_abnormal
from trades.services.representation import (
    LATE_KEPT,
    LATE_REFUNDED,
    LATE_REFUNDING,
    LATE_WITH_SUPPORT,
    late_payment_money_state,
)

# How far before the order's creation a callback may be stamped (clock skew between the channel and us).
CALLBACK_SKEW = dt.timedelta(minutes=1)
# Callbacks refused before they could be matched by number (a cross-check failure names the amount, not the order)
# are found by looking inside their stored body; at most this many per trade page are opened.
CALLBACK_BODY_SCAN = 200


# --- search ---------------------------------------------------------------------------------------------------
def orders_base() -> QuerySet[Order]:
    return Order.objects.select_related("merchant", "channel_account")


def search_orders(*, q: str = "", state: str = "", product: str = "", channel_account: str = "",
                  date_from: dt.date | None = None, date_to: dt.date | None = None,
                  sync_state: str = "", amount: int | None = None, store: str = "",
                  created_from: dt.datetime | None = None, created_before: dt.datetime | None = None
                  ) -> QuerySet[Order]:
    """Orders matching any number a caller may quote (exactly): our ord_/ref_ id, the merchant's out_trade_no or
    out_refund_no, the channel's trade or refund number (a late payment's refund's too, and the number an earlier
    attempt of a retried refund had: EarlierRefundNumber), the number on the payer's
    wallet receipt (WeChat 交易单号, Alipay 交易号, UnionPay order id: ``wallet_trade_no``, not the channel's own behind
    a bank), a number a late payment's refund went out under (``late_…``), a store code (一码付: the orders paid
    through it), or a merchant no (all its orders); or part of a merchant's legal or short name (all its orders); or
    a store (store_orders: its number or part of its name, or the store an order names); then the filters: the
    amount (fen, exact), ``store`` (store_orders), and the creation time — whole local days (``date_from`` …
    ``date_to``) or a window (``created_from`` ≤ created < ``created_before``), as a caller says "about 9:10"."""
    orders = orders_base()
    q = (q or "").strip()
    if q:
        orders = orders.filter(Q(pk__in=_order_ids_for_number(q)) | Q(merchant__merchant_no=q)
                               | Q(merchant_id__in=merchant_ids_for_name(q)) | store_orders(q, codes=False))
    store = (store or "").strip()
    if store:
        orders = orders.filter(store_orders(store))
    if amount is not None:
        orders = orders.filter(amount=amount)
    if state:
        orders = orders.filter(state=state)
    if product:
        orders = orders.filter(Q(product=product) | Q(channel_product=product))
    if channel_account:
        orders = orders.filter(channel_account__code=channel_account)
    if sync_state:
        orders = orders.filter(sync_state=sync_state)
    orders = on_days(orders, "created_at", date_from=date_from, date_to=date_to)
    if created_from is not None:
        orders = orders.filter(created_at__gte=created_from)
    if created_before is not None:
        orders = orders.filter(created_at__lt=created_before)
    return orders.order_by("-created_at", "-pk")


# A caller who names the store ("西湖店", "West Lake", "S001") instead of a number: at most this many stores match,
# each read through the orders' store index (order_store_id) within its merchant.
STORE_MATCHES = 20


def store_orders(text: str, *, codes: bool = True) -> Q:
    """The orders taken at the store ``text`` names, as a filter: an order whose own store field (``store_id``, what
    the till sent: "HZ-WESTLAKE-01") is ``text``; the orders of each of the merchants' stores whose number is
    ``text`` or whose name contains it (any case; at most STORE_MATCHES stores) — their ``store_id`` is the store's
    number, one-code-pay orders' included (trades.onecode.services.onecode_pay); and the orders paid through the
    store code ``text`` (_store_code_orders, a subquery; ``codes=False`` where the numbers' lookup has them already).
    One query, for the stores: the store table is small beside the orders (as merchant_ids_for_name)."""
    text = (text or "").strip()
    if not text:
        return Q(pk__in=[])
    # The condition of the partial index (order_store_id) spelled out, so a generic plan can use it too.
    match = Q(store_id=text) & ~Q(store_id="")
    named = Q(store_no=text)
    if len(text) >= MERCHANT_NAME_MIN_LENGTH:
        named |= Q(name__icontains=text)
    for merchant_id, store_no in (Store.objects.filter(named).order_by("pk")
                                  .values_list("merchant_id", "store_no")[:STORE_MATCHES]):
        match |= Q(merchant_id=merchant_id, store_id=store_no)
    return match | Q(pk__in=_store_code_orders(text).values("pk")) if codes else match


def names_several_trades(q: str, order: Order) -> bool:
    """Whether ``q``, which found only ``order``, names something that has many trades rather than the trade
    itself: its merchant (number or part of its name), its store code, or its store (the order's store field, the
    store's number or part of its name: ``order.store_place``, with_stores). Such a search lists its one trade; a
    trade's own number opens it."""
    q = (q or "").strip()
    folded = q.casefold()
    merchant = order.merchant
    if q in (merchant.merchant_no, store_code_of(order), order.store_id):
        return True
    if len(q) >= MERCHANT_NAME_MIN_LENGTH and any(folded in (name or "").casefold()
                                                  for name in (merchant.legal_name, merchant.short_name)):
        return True
    place = getattr(order, "store_place", None)
    return place is not None and (q == place.store_no or (len(q) >= MERCHANT_NAME_MIN_LENGTH
                                                          and folded in place.name.casefold()))


def _order_ids_for_number(q: str) -> list[str]:
    """One small lookup per kind of number (each can use its own index) rather than one OR across tables, which
    PostgreSQL can only answer by scanning."""
    ids = set(Order.objects.filter(pk=q).values_list("pk", flat=True))
    ids.update(Order.objects.filter(out_trade_no=q).values_list("pk", flat=True))
    ids.update(Order.objects.filter(channel_trade_no=q).values_list("pk", flat=True))
    # The condition of its partial index (order_wallet_trade_no) spelled out, so a generic plan can use it too.
    ids.update(Order.objects.filter(wallet_trade_no=q).exclude(wallet_trade_no="").values_list("pk", flat=True))
    ids.update(Refund.objects.filter(pk=q).values_list("order_id", flat=True))
    ids.update(Refund.objects.filter(out_refund_no=q).values_list("order_id", flat=True))
    # The channel's refund number: a merchant's refund's, or a late payment's (which has no Refund row), or one an
    # earlier attempt had before the refund was retried (the channel numbers each attempt anew; the bill, its back
    # office and the payer's complaint still name the old one) — one query, each side through its own index (the
    # late payments' partial one with its condition spelled out). The same query answers a store code (一码付): the
    # orders made through it (trades.onecode.services.onecode_pay records the code in ``metadata.store_code``).
    late_refunds = LatePayment.objects.filter(channel_refund_no=q).exclude(channel_refund_no="")
    earlier = EarlierRefundNumber.objects.filter(channel_refund_no=q).order_by()
    ids.update(Refund.objects.filter(channel_refund_no=q).order_by().values_list("order_id", flat=True)
               .union(late_refunds.values_list("order_id", flat=True),
                      earlier.values_list("order_id", flat=True),
                      _store_code_orders(q).values_list("pk", flat=True)))
    late = late_refund_no_split(q)
    if late is not None:
        # A late payment's refund has no Refund row: its numbers (late_<order id>, then late_<id>_<n> for each retry,
        # trades.services.late.late_refund_no) name the order; only those the channel was actually given match.
        order_id, attempt = late
        ids.update(LatePayment.objects.filter(order_id=order_id, refund_attempts__gt=attempt)
                   .values_list("order_id", flat=True))
    return sorted(ids)


def _store_code_orders(code: str) -> QuerySet[Order]:
    """The orders paid through store code ``code``: its merchant's orders (read through the (merchant, out_trade_no)
    index, found from the code's unique one) whose metadata names the code. The merchant is the code's own, so
    another merchant's order whose metadata happens to carry the same words is not one of them. Neither
    ``metadata.store_code`` nor ``store_id`` has an index of its own: the merchant's range is what bounds the read."""
    merchants = StoreCode.objects.filter(code=code).values("merchant_id")
    return Order.objects.filter(merchant_id__in=merchants, metadata__store_code=code).order_by()


def store_code_of(order: Order) -> str:
    """The store code (一码付) the order was paid through, as its metadata records it; "" for any other order."""
    code = order.metadata.get("store_code") if isinstance(order.metadata, dict) else None
    return code if isinstance(code, str) else ""


# A caller who names the shop ("茶馆", "tea house") instead of quoting a number: at most this many merchants match, so
# the orders are then read through the (merchant, out_trade_no) index, one range per merchant, never by a scan.
MERCHANT_NAME_MATCHES = 20
MERCHANT_NAME_MIN_LENGTH = 2


def merchant_ids_for_name(q: str) -> list[int]:
    """Merchants whose legal or short name contains ``q`` (any case), oldest first, at most MERCHANT_NAME_MATCHES.
    The merchant table is small beside the orders; its scan for a substring is one cheap query."""
    q = (q or "").strip()
    if len(q) < MERCHANT_NAME_MIN_LENGTH:
        return []
    return list(Merchant.objects.filter(Q(legal_name__icontains=q) | Q(short_name__icontains=q))
                .order_by("pk").values_list("pk", flat=True)[:MERCHANT_NAME_MATCHES])



# --- the trade's timeline -----------------------------------------------------------------------------------------
@dataclass
class Entry:
    at: dt.datetime
    kind: str  # state, audit, call, callback, event, refund
    title: str
    tone: str = ""  # "", ok, warn, bad
    actor: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""  # redacted text (a channel answer, a callback body)
    sent: str = ""  # redacted text: what we sent on a channel call
    decoded: bool = False  # a callback's body is what the adapter read from it (decrypted), not the raw envelope
    attempts: list = field(default_factory=list)  # delivery attempts under an event
    deliveries: list = field(default_factory=list)
    anchor: str = ""
    code: str = ""  # an audit row's action, as the audit log lists it (the title says it in words)


_CALL_TONES = {"succeeded": "ok", "error": "bad", "unknown": "warn", "failed": "bad", "abnormal": "bad",
               "mismatch": "bad"}  # the answer failed the cross-check (security.query.mismatch)
_CALLBACK_TONES = {"applied": "ok", "duplicate": "", "ignored": "", "rejected": "bad", "error": "warn"}
_EVENT_TONES = {"succeeded": "ok", "failed": "bad", "closed": "warn", "reversed": "warn"}


def _pretty(answer: str) -> str:
    try:
        return json.dumps(json.loads(answer), ensure_ascii=False, indent=2)
    except (TypeError, ValueError):
        return answer


def _pretty_exchanges(text: str) -> str:
    """A channel call's recorded request or answer with each JSON body indented: a parsed answer is one JSON text; a
    request, or the answer of a call that has no parsed one, is ``METHOD path`` or ``HTTP status`` then the body,
    for each exchange (trades.services.channel_calls)."""
    if not text or text[:1] in "{[":
        return _pretty(text)
    parts = []
    for part in text.split("\n\n"):
        line, _, body = part.partition("\n")
        parts.append(line + ("\n" + _pretty(body) if body else ""))
    return "\n\n".join(parts)


def order_callbacks(order: Order, refunds: list[Refund]) -> list[ChannelCallback]:
    """The callbacks about this trade: on its account, since it was created, naming our order or refund ids (the
    handlers' notes do) or carrying them as the event id; plus refused/errored ones whose stored body names it."""
    if order.channel_account_id is None:
        return []
    ids = [order.pk, *[r.pk for r in refunds]]
    by_number = Q(event_id__in=[i for i in (*ids, order.channel_trade_no) if i])
    for number in ids:
        by_number |= Q(message__contains=number)
    window = ChannelCallback.objects.filter(account_id=order.channel_account_id,
                                            received_at__gte=order.created_at - CALLBACK_SKEW)
    matched = list(window.filter(by_number))
    seen = {c.pk for c in matched}
    for callback in window.filter(outcome__in=("rejected", "error")).exclude(pk__in=seen)[:CALLBACK_BODY_SCAN]:
        if any(number in (callback.body or "") for number in ids):
            matched.append(callback)
    return sorted(matched, key=lambda c: (c.received_at, c.pk))


def order_events(order: Order, refunds: list[Refund]) -> list[Event]:
    objects = Q(object_type="order", object_id=order.pk)
    if refunds:
        objects |= Q(object_type="refund", object_id__in=[r.pk for r in refunds])
    return list(Event.objects.filter(objects).prefetch_related("deliveries__attempt_log").order_by("created_at", "id"))


def _trade_targets(*, orders: list[str], refunds: list[str], deliveries: list, late_payments: list) -> Q:
    """Audit rows about these orders, refunds, deliveries and late payments: (target_type, target_id) pairs, which
    the audit log's index answers."""
    targets = Q(target_type="trades.order", target_id__in=orders)
    if refunds:
        targets |= Q(target_type="trades.refund", target_id__in=refunds)
    if deliveries:
        targets |= Q(target_type="trades.delivery", target_id__in=[str(pk) for pk in deliveries])
    if late_payments:
        targets |= Q(target_type="trades.latepayment", target_id__in=[str(pk) for pk in late_payments])
    return targets


def order_audit(order: Order, refunds: list[Refund], deliveries: list[Delivery]) -> QuerySet[AuditLog]:
    late = LatePayment.objects.filter(order=order).first()
    targets = _trade_targets(orders=[order.pk], refunds=[r.pk for r in refunds], deliveries=[d.pk for d in deliveries],
                             late_payments=[late.pk] if late is not None else [])
    return AuditLog.objects.filter(targets).select_related("actor").order_by("created_at", "id")


# The audit log's target filter (aggpay.staff.forms.AuditFilterForm) may name a trade by its out_trade_no, which is
# unique per merchant only: at most this many orders (the newest) are looked at.
AUDIT_SEARCH_ORDERS = 20


def trade_audit_targets(number: str) -> Q | None:
    """The audit rows about the trade an order id or out_trade_no names, as a filter, or None when it names no order:
    the order's own rows, its refunds' (a staff refund's row is about the refund; its data names the order), its
    notifications' deliveries', its late payment's — as on the trade page (order_audit) — and the rows about those
    rows (a reviewed refused channel answer: channels.services.callback_reviews). Each part is a (target_type,
    target_id) lookup the audit log's index answers, never a scan of the rows' text or data."""
    number = (number or "").strip()
    if not number:
        return None
    orders = set(Order.objects.filter(pk=number).values_list("pk", flat=True))
    orders.update(Order.objects.filter(out_trade_no=number).order_by("-created_at")
                  .values_list("pk", flat=True)[:AUDIT_SEARCH_ORDERS])
    if not orders:
        return None
    orders = sorted(orders)
    refunds = list(Refund.objects.filter(order_id__in=orders).values_list("pk", flat=True))
    objects = Q(object_type="order", object_id__in=orders)
    if refunds:
        objects |= Q(object_type="refund", object_id__in=refunds)
    deliveries = list(Delivery.objects.filter(event__in=Event.objects.filter(objects)).values_list("pk", flat=True))
    late_payments = list(LatePayment.objects.filter(order_id__in=orders).values_list("pk", flat=True))
    targets = _trade_targets(orders=orders, refunds=refunds, deliveries=deliveries, late_payments=late_payments)
    rows = [str(pk) for pk in AuditLog.objects.filter(targets).order_by().values_list("pk", flat=True)]
    if rows:
        targets |= Q(target_type=AuditLog._meta.label_lower, target_id__in=rows)
    return targets


# Audit-row data keys whose values are fen (design §5 rule 1): ours, the channel's figure beside it when they differ
# (trades.services.refunds / late: "reported", "reported_amount"), and a reverse's hold (trades.services.staff).
# Each is shown in yuan: "reported: 1499 · amount: 15.00 yuan" read as if the channel had said 1499 yuan.
FEN_KEYS = frozenset({"amount", "reported", "reported_amount", "held", "refundable"})


def _audit_value(key: str, value) -> str:
    if key in FEN_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return f"{format_yuan(value)} yuan"  # staff audit rows keep fen; people read yuan
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def order_timeline(order: Order) -> dict:
    """One list, oldest first, merging: creation, state changes (events and audit rows), each channel call, the
    callbacks, each event with its deliveries and every attempt, and the refunds."""
    refunds = list(order.refunds.order_by("created_at", "pk"))
    events = order_events(order, refunds)
    deliveries = [d for e in events for d in e.deliveries.all()]
    entries: list[Entry] = [Entry(order.created_at, "state", "Order created (pending)",
                                  actor=f"api:{order.app.app_id}" if order.app_id else "",
                                  details=[("amount", f"{format_yuan(order.amount)} yuan"), ("product", order.channel_product or order.product)],
                                  anchor="created")]
    for call in order.channel_calls.all():
        details = [("outcome", call.outcome), ("elapsed", f"{call.elapsed_ms} ms")]
        if call.channel_code:
            details.append(("channel code", call.channel_code))
        if call.message:
            details.append(("message", call.message))
        if call.refund_id:
            details.append(("refund", call.refund_id))
        entries.append(Entry(call.created_at, "call", f"Channel call: {call.verb} → {call.outcome}",
                             tone=_CALL_TONES.get(call.outcome, ""), details=details, body=_pretty_exchanges(call.answer),
                             sent=_pretty_exchanges(call.request), anchor=f"call-{call.pk}"))
    for number, hop in enumerate(failover_hops(order.routing), 1):
        entries.append(Entry(hop["at"] or order.created_at, "routing", hop["text"], tone="warn",
                             details=[("message", hop["message"])] if hop["message"] else [],
                             anchor=f"failover-{number}"))
    for callback in order_callbacks(order, refunds):
        details = [("outcome", callback.outcome), ("event id", callback.event_id or "—")]
        if callback.message:
            details.append(("note", callback.message[:300]))
        # The stored body is decrypted only to be redacted (design §5 rule 10): secrets and PII never reach the page.
        # What the adapter read from it comes first: a WeChat Pay notice's body holds only ciphertext (A.4).
        decoded = callback.decoded or ""
        entries.append(Entry(callback.received_at, "callback",
                             f"Callback from {order.channel_account.code}: {callback.kind or 'unknown'} — "
                             f"{callback.outcome}", tone=_CALLBACK_TONES.get(callback.outcome, ""),
                             details=details, body=_pretty(redact(decoded or callback.body or "", 3000)),
                             decoded=bool(decoded), anchor=f"callback-{callback.pk}"))
    for event in events:
        suffix = event.type.rsplit(".", 1)[-1]
        entries.append(Entry(event.created_at, "event", f"Event {event.type} #{event.sequence}",
                             tone=_EVENT_TONES.get(suffix, ""),
                             details=[("event id", event.event_id), ("object", event.object_id)],
                             deliveries=list(event.deliveries.all()), anchor=f"event-{event.event_id}"))
    for refund in refunds:
        details = [("amount", f"{format_yuan(refund.amount)} yuan"), ("out_refund_no", refund.out_refund_no), ("state", refund.state)]
        if refund.reason:
            details.append(("reason", refund.reason))
        if refund.abnormal:
            details.append(("abnormal", "for a person: the channel could not return the money, or an earlier "
                                        "attempt succeeded after the retry (see the audit rows)"))
        entries.append(Entry(refund.created_at, "refund", f"Refund {refund.pk} requested ({refund.state})",
                             tone="bad" if refund.abnormal or refund.state == "failed" else (
                                 "ok" if refund.state == "succeeded" else "warn"),
                             actor=refund.requested_by, details=details, anchor=f"refund-{refund.pk}"))
    audit = list(order_audit(order, refunds, deliveries))
    for row in audit:
        details = [(k, _audit_value(k, v)) for k, v in (row.data or {}).items()]
        if row.reason:
            details.insert(0, ("reason", row.reason))
        entries.append(Entry(row.created_at, "audit", audit_title(row), actor=row.actor_label, details=details,
                             anchor=f"audit-{row.pk}", code=row.action))
    entries.sort(key=lambda e: e.at)
    return {"entries": entries, "refunds": refunds, "events": events, "deliveries": deliveries, "audit": audit}


# What each audit row on a trade's timeline records, in words: the timeline showed the action's code
# ("trades.order.staff_synced"), which support had to decode. The code stays beside it, small, as the audit log
# lists it (and filters by it).
AUDIT_TITLES = {
    "trades.order.staff_synced": "Synced by staff: the channel was asked at once",
    "trades.order.staff_closed": "Closed by staff",
    "trades.order.close_requested": "Close asked by the merchant: the channel did not answer — left to the expiry "
                                    "sweeper",
    "trades.order.staff_reverse_retried": "Reverse asked of the channel again by staff",
    "trades.order.staff_requeried": "Put back on the query ladder by staff (“Ask again from now”)",
    "trades.order.staff_marked_handled": "Marked handled by staff: out of the manual queue",
    "trades.refund.staff_created": "Refund made by staff",
    "trades.refund.retried": "Failed refund retried under the same out_refund_no",
    "trades.refund.earlier_attempt_succeeded": "The channel says an earlier attempt of the refund returned the money",
    "trades.refund.amount_mismatch": "The channel's answer about the refund named another amount",
    "trades.refund.channel_abnormal": "The channel could not return the refund's money (abnormal)",
    "trades.refund.abnormal_resolved": "Abnormal refund marked handled by staff",
    "trades.refund.closed_by_hand": "Refund closed by staff: the money did not go back through the channel",
    "trades.refund.channel_success_recorded": "Refund recorded as succeeded on the channel's answer",
    "trades.refund.channel_success_not_recorded": "“Record as refunded”: nothing recorded",
    "trades.late_payment.refund": "Late payment's refund: the channel's answer",
    "trades.late_payment.staff_refund": "Late payment refunded to the payer by staff",
    "trades.late_payment.settled_by_hand": "Late payment settled by hand",
    "trades.late_payment.earlier_attempt_succeeded": "The channel says an earlier refund of the late payment "
                                                     "returned the money",
    "trades.delivery.resent": "Notification resent by staff",
    "security.query.mismatch": "The channel's answer to a query failed the cross-check (refused)",
    "security.reverse.mismatch": "The channel's answer to a reverse failed the cross-check (refused)",
}


def audit_title(row: AuditLog) -> str:
    """An audit row's action in words (AUDIT_TITLES), told apart by its data where one action records two things; an
    action not listed reads as its words ("trades.order.foo_bar" → "Order: foo bar")."""
    data = row.data if isinstance(row.data, dict) else {}
    if row.action == "trades.order.staff_closed" and data.get("close"):
        return "Close asked by staff: the channel did not answer — left to the expiry sweeper"
    if row.action == "trades.refund.abnormal_resolved" and data.get("requeried"):
        return "Abnormal refund marked handled by staff: keep asking the channel"
    if row.action == "trades.refund.channel_abnormal" and data.get("again"):
        return "The channel still could not return the refund's money: back to a person"
    if row.action in AUDIT_TITLES:
        return AUDIT_TITLES[row.action]
    parts = row.action.split(".")
    subject = parts[-2].replace("_", " ") if len(parts) >= 2 else ""
    words = parts[-1].replace("_", " ")
    return f"{subject.capitalize()}: {words}" if subject else words.capitalize()


# --- queues ---------------------------------------------------------------------------------------------------
UNKNOWN_STATES = (SyncState.UNKNOWN, SyncState.MANUAL)


def unknown_orders() -> QuerySet[Order]:
    """Pending orders whose outcome is unknown (on the ladder, or the ladder ran out), and every order in the manual
    queue whatever its state — a paid payment-code order whose reverse was never confirmed holds its whole amount
    (``refund_reserved``) until a person has the channel asked again. ``queue_reason`` says why each is here."""
    # A close the channel refused or left unanswered (trades.services.orders._close_later) is why an expired pending
    # order is here: its queries were answered, "not paid", but the close never was.
    close_unsettled = ChannelCall.objects.filter(order_id=OuterRef("pk"), verb="close",
                                                 outcome__in=("error", "unknown"))
    # Who asked to close it and when, when a close the channel did not answer is why it is here (CLOSE_ASKED).
    asked = close_asked_rows().filter(target_id=OuterRef("pk")).order_by("-pk")
    return (orders_base().filter(Q(state=OrderState.PENDING, sync_state__in=UNKNOWN_STATES)
                                 | Q(sync_state=SyncState.MANUAL))
            .annotate(close_unsettled=Exists(close_unsettled),
                      close_asked_by=Subquery(asked.values("actor_label")[:1]),
                      close_asked_at=Subquery(asked.values("created_at")[:1]))
            .order_by("created_at"))


# A close asked of an order that the channel did not answer (trades.services.orders._close_later: the order stays
# pending, its expiry moved to the close's time, and the expiry sweeper carries the close on). A staff close records
# it in its audit row (``trades.order.staff_closed`` with ``close``: "left to the expiry sweeper…"); a merchant's
# close through the API records it as ``trades.order.close_requested`` (actor ``api:<app_id>``, _close_later).
CLOSE_ASKED = Q(action="trades.order.close_requested") | Q(action="trades.order.staff_closed", data__has_key="close")


def close_asked_rows() -> QuerySet[AuditLog]:
    return AuditLog.objects.filter(CLOSE_ASKED, target_type="trades.order")


def close_asker(actor_label: str) -> str:
    """Who asked to close, in words: the merchant (an API app's label), else the staff member."""
    if (actor_label or "").startswith("api:"):
        return f"the merchant ({actor_label.removeprefix('api:')})"
    return f"staff ({actor_label})" if actor_label else "staff"


def with_close_asked(order: Order, audit: list[AuditLog]) -> Order:
    """Set ``close_asked_by`` / ``close_asked_at`` on ``order`` from its audit rows (the trade page has them: the
    timeline's), as unknown_orders annotates them."""
    rows = [row for row in audit if row.target_type == "trades.order" and row.target_id == order.pk
            and (row.action == "trades.order.close_requested"
                 or (row.action == "trades.order.staff_closed" and isinstance(row.data, dict)
                     and "close" in row.data))]
    order.close_asked_by = rows[-1].actor_label if rows else None
    order.close_asked_at = rows[-1].created_at if rows else None
    return order


def queue_reason(order: Order) -> str:
    """Why an order is in the unknown-outcomes / manual queue, in a few words."""
    if order.reverse_requested_at is not None:
        held = f"; {format_yuan(order.refund_reserved)} yuan held" if order.state == OrderState.SUCCEEDED else ""
        if order.sync_state == SyncState.MANUAL:
            return f"reverse not confirmed: the channel never answered{held}"
        return f"reverse under way: asked again on the ladder{held}"
    if order.state == OrderState.PENDING:
        asked_at = getattr(order, "close_asked_at", None)
        if asked_at is not None:
            asked = f"{close_asker(order.close_asked_by)} asked to close it at {timezone.localtime(asked_at):%H:%M}"
            if order.sync_state == SyncState.MANUAL:
                return (f"close not confirmed: {asked}; the channel never answered whether the payer paid, and the "
                        f"query ladder ran out")
            return (f"close not confirmed: {asked}; the channel did not answer whether the payer paid — asked again "
                    f"on the ladder, then closed (or the payment recorded)")
        if getattr(order, "close_unsettled", False) and order.expires_at <= timezone.now():
            if order.sync_state == SyncState.MANUAL:
                return "close not confirmed: the channel refused or never answered it; the ladder ran out"
            return "close not confirmed: asked again on the ladder"
        if order.sync_state == SyncState.MANUAL:
            return "outcome unknown: the query ladder ran out"
        return "outcome unknown: queried on the ladder"
    return f"{order.state}, but a channel answer needs a person (see the trade's channel calls)"


def with_queue_reasons(orders):
    for order in orders:
        order.queue_reason = queue_reason(order)
        order.can_mark_handled, order.can_requery = can_mark_handled(order), can_requery(order)
    return orders


def can_retry_reverse(order: Order) -> bool:
    return order.reverse_requested_at is not None and order.state in (OrderState.PENDING, OrderState.SUCCEEDED)


def can_mark_handled(order: Order) -> bool:
    """"Mark handled" (trades.services.staff.order_manual_resolve): in the manual queue, no longer pending, no hold."""
    return (order.sync_state == SyncState.MANUAL and order.state != OrderState.PENDING
            and order.reverse_requested_at is None)


def can_requery(order: Order) -> bool:
    """"Ask again from now" (trades.services.staff.order_manual_requery): pending in the manual queue, no hold."""
    return (order.sync_state == SyncState.MANUAL and order.state == OrderState.PENDING
            and order.reverse_requested_at is None)


def unknown_refunds() -> QuerySet[Refund]:
    return (Refund.objects.select_related("order", "merchant")
            .filter(state="pending", sync_state__in=UNKNOWN_STATES).order_by("created_at"))


def open_late_payments() -> QuerySet[LatePayment]:
    """Late payments a person has to return: none refunded yet, or the channel's refund failed, closed or abnormal;
    and resolved ones flagged because an earlier refund attempt succeeded after a retry that succeeded too (a
    possible double refund; trades.services.late._apply_earlier_attempt) until a person settles them. A flagged one
    still being refunded is listed with the others being refunded. Exactly those a person may settle by hand: the
    filter is the model's own rule (trades.services.late.late_payments_settleable), as the trade page's form asks."""
    return (LatePayment.objects.select_related("order__merchant")
            .filter(late_payments_settleable()).order_by("detected_at"))


@dataclass(frozen=True)
class LateMoney:
    """What became of a late payment's money, for the trade page: the order says "closed", nothing paid or refunded,
    while the payer paid (and maybe had the money back) — the page showed Paid "—", Refunded ¥0.00 and "No refunds"
    for a late payment refunded in full."""

    amount: str  # yuan
    paid_at: dt.datetime
    state: str  # trades.services.representation.late_payment_money_state: refunded, kept, refunding, with_support
    words: str  # what became of the money, in a few words
    out_refund_no: str  # the number its current refund attempt went to the channel under; "" if none was asked
    last_note: str  # the latest line of its notes, without its time


LATE_MONEY_WORDS = {
    LATE_REFUNDED: "refunded to the payer",
    LATE_KEPT: "kept by the merchant (settled by hand)",
    LATE_REFUNDING: "being refunded at the channel",
    LATE_WITH_SUPPORT: "with support: not refunded yet",
}


def late_money(late: LatePayment) -> LateMoney:
    """The late payment's money as the trade page shows it (LateMoney). No query."""
    state = late_payment_money_state(late)
    words = LATE_MONEY_WORDS[state]
    if state == LATE_REFUNDED:
        words = f"{words} {timezone.localtime(late.refunded_at):%Y-%m-%d %H:%M:%S}"
    elif state == LATE_REFUNDING and late.state == "open":
        words = "about to be refunded automatically"
    return LateMoney(amount=format_yuan(late.amount), paid_at=late.paid_at, state=state, words=words,
                     out_refund_no=late_payment_refund_no(late) if late.refund_attempts else "",
                     last_note=late_last_note(late))


def late_last_note(late: LatePayment) -> str:
    """The latest line of a late payment's notes (its ``resolution``: one time-stamped line per thing that happened,
    trades.services.late._append), without its time: what a message after an action says, not the whole history."""
    lines = [line for line in (late.resolution or "").splitlines() if line.strip()]
    if not lines:
        return ""
    stamp = LATE_NOTE_STAMP.match(lines[-1])
    return lines[-1][stamp.end():] if stamp else lines[-1]


LATE_NOTE_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} ")


def refunding_late_payments() -> QuerySet[LatePayment]:
    """Late payments whose refund the channel has not settled yet: the sweeper follows them; listed so a person can
    see them and ask the channel again (e.g. one stuck after a crash)."""
    return LatePayment.objects.select_related("order__merchant").filter(state="refunding").order_by("detected_at")


def abnormal_refunds() -> QuerySet[Refund]:
    """Flagged refunds, whatever their state: a pending one the channel could not return, and one whose earlier
    attempt succeeded at the channel after it was retried (possibly twice refunded, or recorded failed or closed
    while the money went back) — trades.services.refunds clears the flag when the channel settles the first kind; a
    person clears it with "Mark handled" (trades.services.staff.refund_abnormal_resolve) or, for a failed or closed
    one the channel says went back, "Ask the channel and record as refunded"
    (trades.services.staff.refund_abnormal_record_refunded)."""
    return Refund.objects.select_related("order", "merchant").filter(abnormal=True).order_by("created_at")


def with_refund_actions(refunds, *, audit: list[AuditLog] | None = None):
    """Mark the refunds "Ask the channel and record as refunded" applies to (``can_record_refunded``) and the pending
    ones the channel said it could not return, which a person may close (``can_close_by_hand``,
    trades.services.refunds.refund_close_by_hand), and give each the channel's reason for not returning the money
    (``channel_reason``, refund_channel_reason). ``audit``: the refunds' audit rows when the caller has them (the trade
    timeline's); else one query for the pending ones."""
    refunds = list(refunds)
    said = refund_channel_said_abnormal([refund for refund in refunds if refund.state == "pending"], rows=audit)
    for refund in refunds:
        refund.can_record_refunded = refund_can_record_channel_success(refund)
        refund.can_close_by_hand = refund.state == "pending" and refund.pk in said
        refund.channel_reason = refund_channel_reason(refund)
    return refunds


def refund_channel_reason(refund: Refund) -> str:
    """Why the channel did not return a refund's money, as it said it — kept on the refund when its failure, close or
    ABNORMAL arrived (trades.services.refunds.refund_apply_result): e.g. "payer account abnormal (ABNORMAL)". Support
    read it only in the raw callback body before. Empty for a succeeded refund (the money went back; what the channel
    said before is on the timeline) and for one the channel has said nothing against."""
    if refund.state == "succeeded":
        return ""
    message, code = refund.failure_message, refund.failure_code
    if message and code and code != message:
        return f"{message} ({code})"
    return message or code


def with_attempt_rounds(deliveries):
    """Set ``rounds`` on each delivery: its attempts in the order they were made, split into the rounds of the retry
    ladder — a resend of a delivered or exhausted delivery starts a new round at attempt 1
    (trades.services.events.deliveries_resend) — each round a dict of ``number``, ``attempts`` and ``latest``.
    Ordered by when each attempt was made (its id), not by its ``started_at`` alone: the demo's exhausted deliveries
    ran a day of retries at once, stamped up to a day ahead, and a resend's new attempt sorted in among them. Reads
    the prefetched attempts (order_events): no query."""
    for delivery in deliveries:
        rounds: list[dict] = []
        previous = 0
        for attempt in sorted(delivery.attempt_log.all(), key=lambda a: a.pk):
            if not rounds or attempt.number <= previous:
                rounds.append({"number": len(rounds) + 1, "attempts": [], "latest": False})
            rounds[-1]["attempts"].append(attempt)
            previous = attempt.number
        if rounds:
            rounds[-1]["latest"] = True
        delivery.rounds = rounds
    return deliveries


def with_last_attempt(deliveries: QuerySet[Delivery]) -> QuerySet[Delivery]:
    """Each delivery with its latest attempt's id, start, end, HTTP status and error (``last_attempt_id``,
    ``last_attempt_at``, ``last_finished_at``, ``last_status``, ``last_error``), read in the list's own query: what
    support needs to see on a row before resending it, without opening every delivery's trade."""
    last = DeliveryAttempt.objects.filter(delivery_id=OuterRef("pk")).order_by("-pk")
    return deliveries.annotate(last_attempt_id=Subquery(last.values("pk")[:1]),
                               last_attempt_at=Subquery(last.values("started_at")[:1]),
                               last_finished_at=Subquery(last.values("finished_at")[:1]),
                               last_status=Subquery(last.values("status_code")[:1]),
                               last_error=Subquery(last.values("error")[:1]))


def exhausted_deliveries() -> QuerySet[Delivery]:
    return with_last_attempt(Delivery.objects.select_related("event__merchant").filter(state=DeliveryState.EXHAUSTED)
                             .order_by("event__merchant_id", "updated_at"))


def failing_deliveries() -> QuerySet[Delivery]:
    """Notifications the merchant's server has refused at least once and that are still being retried on the ladder
    (merchant-api.md "Notifications and events": about 24 h before they are exhausted): ``pending`` with an attempt
    made. Support saw them only in the raw admin, and heard of a broken receiver only a day later. Their next try
    is ``next_attempt_at``; "Resend" makes it due now (trades.services.events.deliveries_resend)."""
    return with_last_attempt(Delivery.objects.select_related("event__merchant")
                             .filter(state=DeliveryState.PENDING, attempts__gte=1)
                             .order_by("event__merchant_id", "next_attempt_at", "pk"))


def delivery_outcome(delivery: Delivery) -> str:
    """The latest attempt's outcome in a few words (with_last_attempt): "HTTP 500", the connection's error, "no
    answer yet" while it is in flight, "not attempted" before the first."""
    if getattr(delivery, "last_attempt_id", None) is None:
        return "not attempted"
    if delivery.last_status is not None:
        return f"HTTP {delivery.last_status}"
    if delivery.last_error:
        return short_error(delivery.last_error)
    return "no answer yet" if delivery.last_finished_at is None else "no answer"


# The reason at the end of a connection error as requests words it ("… [Errno 111] Connection refused'))").
_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^\"')\]]+)")


def short_error(error: str) -> str:
    """A delivery attempt's error in a few words: the operating system's reason of a connection error ("connection
    refused"), "timed out", else its first words — the whole of requests' message is a paragraph of pool and URL."""
    reason = _ERRNO_REASON.search(error or "")
    if reason:
        return f"could not connect: {reason.group(1).strip().lower()}"
    if "timed out" in (error or "").lower() or "timeout" in (error or "").lower():
        return "timed out"
    return (error or "")[:120]


def with_delivery_rows(deliveries):
    """Set on each delivery (read with with_last_attempt) what its queue row shows: ``out_trade_no`` (and
    ``out_refund_no`` for a refund's event) from the event's data — the object as the merchant's API showed it, so
    no query — and ``outcome`` (delivery_outcome)."""
    deliveries = list(deliveries)
    for delivery in deliveries:
        data = delivery.event.data if isinstance(delivery.event.data, dict) else {}
        delivery.out_trade_no = data.get("out_trade_no") or ""
        delivery.out_refund_no = data.get("out_refund_no") or "" if delivery.event.object_type == "refund" else ""
        delivery.outcome = delivery_outcome(delivery)
    return deliveries


@dataclass(frozen=True)
class ResendOutcome:
    delivery: Delivery
    sent: bool  # an attempt was made since the resend (the eager demo, or a quick worker)
    acknowledged: bool
    outcome: str  # delivery_outcome of the attempt made, "" if none yet


def resend_outcomes(before: dict[int, int | None]) -> list[ResendOutcome]:
    """What became of deliveries just resent, given each one's latest attempt id before the resend (``before``): a
    new attempt made and acknowledged, made and refused again, or none yet (queued for a worker). The message after
    "Resend" says which: "will be sent again" read as a promise while the demo's (eager) attempt had already been
    refused. One query."""
    rows = with_last_attempt(Delivery.objects.filter(pk__in=list(before)).order_by("pk"))
    outcomes = []
    for delivery in rows:
        sent = delivery.last_attempt_id is not None and delivery.last_attempt_id != before.get(delivery.pk)
        outcomes.append(ResendOutcome(delivery=delivery, sent=sent,
                                      acknowledged=sent and delivery.state == DeliveryState.DELIVERED,
                                      outcome=delivery_outcome(delivery) if sent else ""))
    return outcomes


QUEUE_LABELS = {
    "unknown": "Unknown outcomes",
    "late": "Late payments",
    "abnormal": "Abnormal refunds",
    "exhausted": "Exhausted deliveries",
}


def queue_counts() -> dict[str, int]:
    return {
        "unknown": unknown_orders().count() + unknown_refunds().count(),
        "late": open_late_payments().count(),
        "abnormal": abnormal_refunds().count(),
        "exhausted": exhausted_deliveries().count(),
    }


@dataclass(frozen=True)
class HomeQueue:
    label: str
    count: int
    url: str
    tone: str = ""


def home_queues() -> list[HomeQueue]:
    counts = queue_counts()
    rows = [HomeQueue(label, counts[slug], reverse("trades:queue", args=[slug]),
                      ("bad" if slug in ("abnormal", "late") else "warn") if counts[slug] else "")
            for slug, label in QUEUE_LABELS.items()]
    # Notifications failing but not exhausted yet (failing_deliveries): a tab of the deliveries queue, counted here so
    # support hears of a broken receiver the day it breaks, not when its notifications are exhausted.
    failing = failing_deliveries().count()
    rows.append(HomeQueue(FAILING_LABEL, failing, f"{reverse('trades:queue', args=['exhausted'])}?show=failing",
                          "warn" if failing else ""))
    return rows


FAILING_LABEL = "Failing deliveries, still retried"


# What decided a trade's account, by its routing record's ``layer`` (design §7), in the words the chosen candidate's
# reason uses: the record says "priority" for channels.routing's ranking, which is by net cost ("chosen: lowest net
# cost 0.2%"), and the page said "Chosen by priority" above it.
ROUTING_LAYERS = {
    "priority": "lowest net cost (cost − rebate) among the eligible contracts",
    "failover": "failover: the next lowest net cost, after the first choice refused",  # orders._failover_record
    "cashier": "not chosen yet: the payer picks a wallet at the cashier",  # trades.services.cashier
}


def routing_layer(routing: dict | None) -> str:
    """How the trade's account was chosen, for the "Chosen by" line (ROUTING_LAYERS; an unknown layer as recorded)."""
    layer = (routing or {}).get("layer")
    if not layer:
        return "—"
    return ROUTING_LAYERS.get(layer, str(layer))


def routing_candidates(routing: dict | None) -> list[dict]:
    """The routing record's candidates (``channels.routing``: account code, contract id, eligible, why not) with what
    a person recognises for the contract: the channel account's name and the sub-merchant id, else the business code.
    One query for every candidate."""
    candidates = [c for c in ((routing or {}).get("candidates") or []) if isinstance(c, dict)]
    ids = [c["contract"] for c in candidates if isinstance(c.get("contract"), int)]
    contracts = {c.pk: c for c in Contract.objects.filter(pk__in=ids).select_related("channel_account")
                 .only("pk", "sub_mchid", "business_code", "channel_account__name")} if ids else {}
    rows = []
    for candidate in candidates:
        contract = contracts.get(candidate.get("contract"))
        if contract is None:
            label = f"contract {candidate.get('contract')}" if candidate.get("contract") else "—"
            rows.append({**candidate, "account_name": "", "contract_label": label})
            continue
        label = (f"sub-merchant {contract.sub_mchid}" if contract.sub_mchid
                 else f"business code {contract.business_code}")
        rows.append({**candidate, "account_name": contract.channel_account.name, "contract_label": label})
    return rows


def failover_hops(routing: dict | None) -> list[dict]:
    """The failovers in a trade's routing record (trades.services.orders.order_fail_over, design §7 layer 4), oldest
    first, each with ``text`` ("Failed over from X to Y: <the refusal's code>"), its ``message`` and ``at`` (None
    if the record has no readable time). The refused create's own ChannelCall sits just before it in the timeline."""
    hops = []
    for hop in (routing or {}).get("failover") or []:
        if not isinstance(hop, dict):
            continue
        try:
            at = dt.datetime.fromisoformat(hop.get("at") or "")
        except (TypeError, ValueError):
            at = None
        hops.append({"text": f"Failed over from {hop.get('from') or '—'} to {hop.get('to') or '—'}: "
                             f"{hop.get('code') or 'refused'}",
                     "message": hop.get("message") or "", "at": at if at and at.tzinfo else None})
    return hops


# --- who paid, and where -------------------------------------------------------------------------------------------
# A payer id is shown masked (design §5 rule 10), keeping enough of each end for support to tell two payers apart
# and match the id a complaint quotes: at most this many characters each side, and never more than a quarter of the
# id each side (a short id keeps most of itself hidden).
PAYER_ID_KEEP = 4


@dataclass(frozen=True)
class Payer:
    key: str  # openid, buyer_id, user_id
    masked: str


def payer_masked(order: Order) -> Payer | None:
    """Who the order is for (JSAPI, mini program, a store code's or cashier's payer), masked; None when the order
    keeps no payer id (a QR code or payment code order: whoever scanned or showed it)."""
    payer = order.payer if isinstance(order.payer, dict) else {}
    wallet = (order.channel_product or order.product).split(".", 1)[0]
    # The key of the order's wallet first (merchant-api.md "Orders": openid, buyer_id, user_id), then any.
    keys = [PAYER_KEYS[wallet]] if wallet in PAYER_KEYS else []
    for key in [*keys, *PAYER_KEYS.values()]:
        value = payer.get(key)
        if isinstance(value, str) and value:
            keep = min(PAYER_ID_KEEP, len(value) // 4)
            return Payer(key=key, masked=mask_middle(value, keep_start=keep, keep_end=keep))
    return None


@dataclass(frozen=True)
class StorePlace:
    """Where an order was taken, as support reads it: the merchant's store and, for a one-code-pay order, the code."""
    store_no: str  # the merchant's own store id (the order's store_id)
    name: str  # "" when the merchant has no store of that number on record
    code: str  # the store code (一码付) paid through, "" for other orders
    code_known: bool  # the code is one of this merchant's store codes (not just words in the metadata)


def with_stores(orders):
    """Set ``store_place`` (a StorePlace, or None for an order that names no store) on each order: the store through
    its store code when the order was paid through one (one query for the page), else the merchant's store of the
    order's store_id (one more query, only for orders that need it)."""
    orders = list(orders)
    codes = {code for code in map(store_code_of, orders) if code}
    by_code = ({sc.code: sc for sc in StoreCode.objects.filter(code__in=codes).select_related("store")}
               if codes else {})
    # A code is the order's only if it is its merchant's: metadata is the merchant's to write.
    found = [sc if (sc := by_code.get(store_code_of(o))) and sc.merchant_id == o.merchant_id else None
             for o in orders]
    wanted = {(o.merchant_id, o.store_id) for o, sc in zip(orders, found, strict=True) if sc is None and o.store_id}
    stores: dict[tuple[int, str], Store] = {}
    if wanted:
        match = Q()
        for merchant_id, store_no in wanted:  # the (merchant, store_no) unique index, once per store on the page
            match |= Q(merchant_id=merchant_id, store_no=store_no)
        stores = {(s.merchant_id, s.store_no): s for s in Store.objects.filter(match)}
    for order, sc in zip(orders, found, strict=True):
        code = store_code_of(order)
        store = sc.store if sc is not None else stores.get((order.merchant_id, order.store_id))
        if store is None and not order.store_id and not code:
            order.store_place = None
            continue
        order.store_place = StorePlace(store_no=order.store_id or (store.store_no if store else ""),
                                       name=store.name if store else "", code=code, code_known=sc is not None)
    return orders


def search_url(**params) -> str:
    return f"{reverse('trades:search')}?{urlencode(params)}"


def with_yuan(objects, *fields: str):
    """Set ``<field>_yuan`` on each object (templates show yuan; the models keep fen, design §5 rule 1)."""
    for obj in objects:
        for name in fields:
            setattr(obj, f"{name}_yuan", format_yuan(getattr(obj, name)))
    return objects


def fee_rows(order: Order) -> list[tuple[str, str]]:
    """The fee snapshot taken at creation (trades.services.fees), in yuan and percent."""
    def pct(rate) -> str:
        return f"{rate * 100:.4f}".rstrip("0").rstrip(".") + "%"

    return [
        ("Merchant rate", pct(order.merchant_rate)), ("Merchant fee", format_yuan(order.merchant_fee)),
        ("Channel cost rate", pct(order.cost_rate)), ("Channel cost", format_yuan(order.channel_cost)),
        ("Rebate rate", pct(order.rebate_rate)), ("Rebate", format_yuan(order.rebate)),
        ("Profit", format_yuan(order.profit)),
    ]

"""Merchant statements (merchant-api.md "Statements", design §1 "Money"): one calendar day of a merchant's money
movements — payments, refunds and reversals — with the merchant's fee on each and the day's totals.

- **The day** is a calendar day in the project's time zone (``settings.TIME_ZONE``, Asia/Shanghai): from 00:00
  that day to 00:00 the next, local time. A statement exists once the day has closed; before that asking for it
  is ``409 invalid_state``.
- **Lines** are the money as it moved, each on the day it moved: a *payment* when the order succeeded
  (``Order.paid_at``); a *refund* when the refund succeeded (``Refund.succeeded_at``); a *reversal* (撤销 of a
  paid payment-code order, which gives the whole payment back) when the order was reversed (the time of its
  ``order.reversed`` event). An order reversed before anyone paid moved no money and has no line.
- **Late payments** (design §5 rule 3: the payer paid after we closed the order, ``LatePayment``) moved money at
  the channel like any other, and the channel's bill shows it: a *payment* line on the day the payer paid
  (``LatePayment.paid_at``) and, once the money went back (refunded by aggpay, or by the channel's back office as a
  person recorded), a *refund* line on that day (``LatePayment.refunded_at``) — one the merchant kept shows only the
  payment. Both lines carry the closed order's id, out_trade_no and the channel's trade number of the late payment;
  the refund has no ``out_refund_no`` (the merchant never asked for it) and the channel's refund number. The fee is
  the order's snapshot (taken when the order was created, so a closed order has one), charged on the payment and
  given back whole on the refund, as for a reversal.
- **Times** are to the whole second (merchant-api.md: RFC 3339 with offset), whatever the source: a reversal's
  event time carries the database clock's microseconds, and was the one line that showed them.
- **Sign convention**: every amount is signed from the merchant's side — money coming to the merchant is
  positive. A payment has ``amount > 0`` and ``fee >= 0``; a refund or reversal has ``amount < 0`` and the fee it
  gives back as ``fee <= 0``. ``net = amount - fee`` on every line, so every total is the plain sum of its lines.
- **Fees** come from the fee snapshot taken at payment (``Order.merchant_fee``) and the part of it each refund
  gives back (``Refund.merchant_fee_refunded``, trades.services.fees.fees_for_refund); a reversal gives back the
  whole ``merchant_fee`` (a paid order with refunds cannot be reversed). Only the merchant's fee: our channel
  cost, rebate and profit never leave aggpay.

Integer fen throughout (design §5 rule 1). One SQL query per statement, whatever the number of lines: every
source of lines (payments, refunds, reversals, late payments and their refunds) is one part of a ``UNION ALL`` read
with a server-side cursor (``.iterator()``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import BigIntegerField, CharField, DateTimeField, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, TruncSecond
from django.utils import timezone

from aggpay.errors import InvalidRequest, InvalidState
from merchants.batch.export import safe_cell
from trades.models import Event, LatePayment, Order, OrderState, Refund

CURRENCY = "CNY"
LINE_TYPES = ("payment", "refund", "reversal")  # reversal: 撤销 of a paid payment-code order (the whole amount)
# The columns of a line, in the order of the JSON object and of the CSV header.
LINE_FIELDS = ("type", "id", "out_trade_no", "out_refund_no", "product", "channel_trade_no", "channel_refund_no",
               "time", "amount", "fee", "net")
SUMMARY_FIELDS = ("payment_count", "payment_amount", "payment_fee", "refund_count", "refund_amount", "refund_fee",
                  "amount", "fee", "net")
ITERATOR_CHUNK = 2000
# The first day with a statement (the API's first too). Earlier days are refused, not read: the Shanghai midnight
# of 0001-01-01 is in the year 0 in UTC, which Python's datetime has not got (an OverflowError, a 500, on SQLite).
FIRST_DAY = dt.date(2000, 1, 1)
FIRST_DAY_MESSAGE = f"there are no statements before {FIRST_DAY.isoformat()}"


@dataclass(frozen=True)
class StatementLine:
    type: str  # payment, refund or reversal
    id: str  # ord_... (payment, reversal) or ref_... (refund)
    out_trade_no: str
    out_refund_no: str | None  # refunds only
    product: str
    channel_trade_no: str | None  # the payment's number at the channel (every line)
    channel_refund_no: str | None  # refunds only
    time: dt.datetime  # aware, in the project's time zone
    amount: int  # fen, signed: > 0 payment, < 0 refund/reversal
    fee: int  # fen, signed like amount: the merchant fee charged (> 0) or given back (< 0)

    @property
    def net(self) -> int:
        return self.amount - self.fee

    def as_dict(self) -> dict:
        return {"type": self.type, "id": self.id, "out_trade_no": self.out_trade_no,
                "out_refund_no": self.out_refund_no, "product": self.product,
                "channel_trade_no": self.channel_trade_no, "channel_refund_no": self.channel_refund_no,
                "time": self.time.isoformat(), "amount": self.amount, "fee": self.fee, "net": self.net}


@dataclass
class StatementSummary:
    """The day's counts and totals. ``refund_*`` covers refunds and reversals (all money given back)."""

    payment_count: int = 0
    payment_amount: int = 0
    payment_fee: int = 0
    refund_count: int = 0
    refund_amount: int = 0  # <= 0
    refund_fee: int = 0  # <= 0: fees given back

    @property
    def amount(self) -> int:
        return self.payment_amount + self.refund_amount

    @property
    def fee(self) -> int:
        return self.payment_fee + self.refund_fee

    @property
    def net(self) -> int:
        return self.amount - self.fee

    def add(self, line: StatementLine) -> None:
        if line.type == "payment":
            self.payment_count += 1
            self.payment_amount += line.amount
            self.payment_fee += line.fee
        else:
            self.refund_count += 1
            self.refund_amount += line.amount
            self.refund_fee += line.fee

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in SUMMARY_FIELDS}


@dataclass
class Statement:
    date: dt.date
    lines: list[StatementLine] = field(default_factory=list)
    summary: StatementSummary = field(default_factory=StatementSummary)
    currency: str = CURRENCY


def statement_day_window(*, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[00:00 of ``day``, 00:00 of the next day) in the project's time zone, as aware datetimes."""
    zone = timezone.get_default_timezone()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start, end


def statement_get(*, merchant, day: dt.date, now: dt.datetime | None = None) -> Statement:
    """The statement of ``merchant`` for ``day``. Raises ``InvalidState`` (409) while the day has not closed and
    ``InvalidRequest`` (400, ``param="date"``) for a day before ``FIRST_DAY``."""
    if day < FIRST_DAY:
        raise InvalidRequest(FIRST_DAY_MESSAGE, param="date")
    now = now or timezone.now()
    if day >= timezone.localdate(now, timezone.get_default_timezone()):
        try:
            opens = statement_day_window(day=day)[1].isoformat()
        except OverflowError:  # 9999-12-31 has no next day
            opens = "the end of that day"
        raise InvalidState(f"the statement for {day.isoformat()} is available once the day has closed, "
                           f"from {opens}", param="date")
    start, end = statement_day_window(day=day)
    statement = Statement(date=day)
    for line in _lines(merchant=merchant, start=start, end=end):
        statement.lines.append(line)
        statement.summary.add(line)
    return statement


# --- the query --------------------------------------------------------------------------------------------------
# Each part of the UNION selects the same columns, under names of their own (an annotation may not reuse a model
# field's name); ``_lines`` turns them into StatementLine.
_COLUMNS = ("s_type", "s_id", "s_out_trade_no", "s_out_refund_no", "s_product", "s_channel_trade_no",
            "s_channel_refund_no", "s_time", "s_amount", "s_fee", "s_second", "s_recorded")
_NO_TEXT = Value(None, output_field=CharField())
# The order of the lines (docs/api.md "Statements"): by the time shown (whole seconds, ``s_second``); within one second
# payments, refunds, reversals; refunds then in the order aggpay recorded their success (``s_recorded``); then the
# full time and the id. Bug: within one second the order was by type and then by id — random — so two refunds of
# one order that the channel dated in the same second came in either order, and the running total their fee shares
# are worked out from (trades.services.fees.fees_for_refund) could not be followed down the statement.
_ORDER = ("s_second", "s_type", "s_recorded", "s_time", "s_id")
_NOT_RECORDED = Value(0, output_field=BigIntegerField())  # lines whose order within the second no fee depends on


def _second(field_name: str) -> TruncSecond:
    return TruncSecond(field_name, tzinfo=dt.UTC)  # whole seconds are the same in every zone of whole-hour offset


def _success_recorded(refund_pk: str = "pk") -> Subquery:
    """Where a refund's success stands in the order aggpay recorded successes: its ``refund.succeeded`` event's
    primary key. A success is applied under the order's lock and its event written in that transaction, after the
    merchant's feed lock (trades.services.events._feed_position), so the events' keys rise in the order the fee
    shares were worked out — the order of those events in GET /api/v1/events too."""
    events = Event.objects.filter(type="refund.succeeded", object_type="refund", object_id=OuterRef(refund_pk))
    return Subquery(events.order_by("pk").values("pk")[:1], output_field=BigIntegerField())


def _payments(merchant, start, end):
    return (Order.objects.filter(merchant=merchant, paid_at__gte=start, paid_at__lt=end)
            .order_by()
            .values(s_type=Value("payment", output_field=CharField()), s_id=F("id"),
                    s_out_trade_no=F("out_trade_no"), s_out_refund_no=_NO_TEXT, s_product=F("product"),
                    s_channel_trade_no=F("channel_trade_no"), s_channel_refund_no=_NO_TEXT, s_time=F("paid_at"),
                    s_amount=F("amount"), s_fee=F("merchant_fee"), s_second=_second("paid_at"),
                    s_recorded=_NOT_RECORDED))


def _refunds(merchant, start, end):
    return (Refund.objects.filter(merchant=merchant, state="succeeded", succeeded_at__gte=start,
                                  succeeded_at__lt=end)
            .order_by()
            .values(s_type=Value("refund", output_field=CharField()), s_id=F("id"),
                    s_out_trade_no=F("order__out_trade_no"), s_out_refund_no=F("out_refund_no"),
                    s_product=F("order__product"), s_channel_trade_no=F("order__channel_trade_no"),
                    s_channel_refund_no=F("channel_refund_no"), s_time=F("succeeded_at"), s_amount=F("amount"),
                    s_fee=F("merchant_fee_refunded"), s_second=_second("succeeded_at"),
                    s_recorded=Coalesce(_success_recorded(), _NOT_RECORDED)))


def reversals_in(start: dt.datetime, end: dt.datetime, *, merchant=None) -> QuerySet:
    """Paid orders reversed (撤销) in [start, end) — of one merchant, or of all — annotated ``reversed_at``. The time of
    a reversal is its ``order.reversed`` event's (events are append-only and written in the reversing transaction;
    the event index on (merchant, created_at) finds them). Statements and the finance report date reversals alike."""
    events = Event.objects.filter(type="order.reversed", object_type="order")
    in_window = events.filter(created_at__gte=start, created_at__lt=end)
    orders = Order.objects.filter(state=OrderState.REVERSED, paid_at__isnull=False)
    if merchant is not None:
        in_window, orders = in_window.filter(merchant=merchant), orders.filter(merchant=merchant)
    reversed_at = events.filter(object_id=OuterRef("pk")).order_by("created_at").values("created_at")[:1]
    return (orders.filter(pk__in=Subquery(in_window.order_by().values("object_id")))
            .annotate(reversed_at=Subquery(reversed_at, output_field=DateTimeField())))


def _reversals(merchant, start, end):
    return (reversals_in(start, end, merchant=merchant)
            .order_by()
            .values(s_type=Value("reversal", output_field=CharField()), s_id=F("id"),
                    s_out_trade_no=F("out_trade_no"), s_out_refund_no=_NO_TEXT, s_product=F("product"),
                    s_channel_trade_no=F("channel_trade_no"), s_channel_refund_no=_NO_TEXT,
                    s_time=F("reversed_at"), s_amount=F("amount"), s_fee=F("merchant_fee"),
                    s_second=_second("reversed_at"), s_recorded=_NOT_RECORDED))


def late_payments_in(start: dt.datetime, end: dt.datetime, *, merchant=None, refunds: bool = False) -> QuerySet:
    """Late payments whose money moved in [start, end) — paid then (``paid_at``), or, with ``refunds``, gone back
    then (``refunded_at``; empty while the merchant has the money) — of one merchant, or of all. Statements and the
    finance report date them alike."""
    when = "refunded_at" if refunds else "paid_at"
    rows = LatePayment.objects.filter(**{f"{when}__gte": start, f"{when}__lt": end})
    return rows.filter(order__merchant=merchant) if merchant is not None else rows


def _late_payments(merchant, start, end, *, refunds: bool = False):
    when = "refunded_at" if refunds else "paid_at"
    return (late_payments_in(start, end, merchant=merchant, refunds=refunds)
            .order_by()
            .values(s_type=Value("refund" if refunds else "payment", output_field=CharField()), s_id=F("order_id"),
                    s_out_trade_no=F("order__out_trade_no"), s_out_refund_no=_NO_TEXT, s_product=F("order__product"),
                    s_channel_trade_no=F("channel_trade_no"),
                    s_channel_refund_no=F("channel_refund_no") if refunds else _NO_TEXT,
                    s_time=F(when), s_amount=F("amount"), s_fee=F("order__merchant_fee"), s_second=_second(when),
                    s_recorded=_NOT_RECORDED))


def _lines(*, merchant, start: dt.datetime, end: dt.datetime) -> Iterable[StatementLine]:
    query = (_payments(merchant, start, end)
             .union(_refunds(merchant, start, end), _reversals(merchant, start, end),
                    _late_payments(merchant, start, end), _late_payments(merchant, start, end, refunds=True),
                    all=True)
             .order_by(*_ORDER))
    zone = timezone.get_default_timezone()
    for row in query.iterator(chunk_size=ITERATOR_CHUNK):
        sign = 1 if row["s_type"] == "payment" else -1
        yield StatementLine(
            type=row["s_type"], id=row["s_id"], out_trade_no=row["s_out_trade_no"],
            out_refund_no=row["s_out_refund_no"] or None, product=row["s_product"],
            channel_trade_no=row["s_channel_trade_no"] or None,
            channel_refund_no=row["s_channel_refund_no"] or None,
            time=timezone.localtime(row["s_time"], zone).replace(microsecond=0),  # whole seconds: see the docstring
            amount=sign * row["s_amount"], fee=sign * row["s_fee"],
        )


# --- the two formats --------------------------------------------------------------------------------------------
def statement_as_api(statement: Statement) -> dict:
    """``format=json``: ``{"date", "currency", "lines": [...], "summary": {...}}``."""
    return {"date": statement.date.isoformat(), "currency": statement.currency,
            "lines": [line.as_dict() for line in statement.lines], "summary": statement.summary.as_dict()}


def statement_as_csv(statement: Statement) -> bytes:
    """``format=csv``: UTF-8, RFC 4180 (CRLF line ends). A header row, one row per line, then the summary as two
    rows whose first cell is ``summary``: the names of the totals, then their values (the layout of the
    channels' own bills, which merchants' spreadsheets already know). Empty cells where JSON has ``null``.

    Every text cell goes through ``safe_cell`` (merchants.batch.export), as in finance's fees.csv: ``out_trade_no``
    and ``out_refund_no`` are the merchant's own and may start with ``-`` (``-1-1-1``), which Excel runs as a formula
    (CSV injection); such a cell gets a leading ``'``. Numbers stay numbers; the JSON carries the values exactly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LINE_FIELDS)
    for line in statement.lines:
        row = line.as_dict()
        writer.writerow(["" if row[name] is None else safe_cell(row[name]) for name in LINE_FIELDS])
    summary = statement.summary.as_dict()
    writer.writerow(["summary", *SUMMARY_FIELDS])
    writer.writerow(["summary", *(summary[name] for name in SUMMARY_FIELDS)])
    return out.getvalue().encode("utf-8")


def statement_csv_filename(statement: Statement, *, merchant_no: str) -> str:
    return f"aggpay-statement-{merchant_no}-{statement.date.isoformat()}.csv"

"""Fees and profit report for finance (design §1 "Money", §8 finance: "fees ... profit reports").

A read-only selector: it changes nothing and writes no audit row (reading is not a state change, design §5 rule 9).

- **Days** are calendar days in the project's time zone (``settings.TIME_ZONE``, Asia/Shanghai), the days of the
  merchant statements: [00:00, next 00:00) local time (trades.services.statements.statement_day_window). A range
  ``start``..``end`` is inclusive of both days.
- **Money moves on the day it moved**, by the statements' rules: a *payment* counts on ``Order.paid_at``; a *refund*
  counts on ``Refund.succeeded_at`` (state ``succeeded`` only); a *reversal* (撤销 of a paid payment-code order,
  which gives the whole payment back) counts on the time of its ``order.reversed`` event. Refunds and reversals are
  reported together as money given back ("refunds"), as in the statement summary. A *late payment* (design §5 rule
  3, paid after we closed the order) counts as a payment on ``LatePayment.paid_at`` and, once its money went back,
  as a refund on ``LatePayment.refunded_at`` (one the merchant kept: the payment only), by the statements' rule.
- **Figures** come from the fee snapshot taken when the order was created (trades.services.fees): ``merchant_fee``
  (what we charge), ``channel_cost`` (what the channel charges us), ``rebate`` (what the channel pays back to us,
  ISV 返佣), and ``profit = merchant_fee - channel_cost + rebate`` (the definition of ``fees_for_payment``). A refund
  reverses the share of the snapshot it was given when it succeeded (``Refund.merchant_fee_refunded``,
  ``channel_cost_refunded``, ``rebate_refunded``; its profit reversed is ``fee - cost + rebate`` of those); a
  reversal reverses the whole snapshot. A late payment carries the closed order's snapshot (taken when the order was
  created) and its refund reverses the whole of it. ``net_profit = profit - profit_reversed``.
- **Sign convention**: every column is a non-negative magnitude; the "reversed" columns are subtracted. Integer fen
  throughout (design §5 rule 1).
- **Grouping**: day × channel account × product, where the product is what the channel was asked for
  (``Order.channel_product``: a "barcode" order shows as wechat.barcode or alipay.barcode, the products the
  channels' rates are set for), falling back to the requested product for an order that never got that far.

Aggregation happens in the database: three grouped queries (payments with late payments, refunds with late
payments' refunds — each pair one ``UNION ALL`` of its grouped parts — and reversals), whatever the number of trades. None of them is served by a merchant-leading index (the report is across merchants); on a large deployment
run it on a read replica (design §3).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from django.db.models import CharField, Count, F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate
from django.utils import timezone

from aggpay.errors import InvalidRequest
from merchants.batch.export import safe_cell
from trades.models import Order, Refund
from trades.services.statements import FIRST_DAY, late_payments_in, reversals_in, statement_day_window

REPORT_DEFAULT_DAYS = 7
REPORT_MAX_DAYS = 366  # a year and a day: enough for a yearly comparison, small enough for one page and one chart
LAST_DAY = dt.date.max  # 9999-12-31 has no next 00:00 to end its window (statement_day_window)
LAST_DAY_MESSAGE = f"a report must end before {LAST_DAY.isoformat()}"
FIRST_DAY_MESSAGE = f"a report must start on {FIRST_DAY.isoformat()} or later"  # the statements' first day


@dataclass
class FeeFigures:
    """Counts and sums (fen) of one group, or of several added together."""

    payment_count: int = 0
    payment_amount: int = 0
    merchant_fee: int = 0
    channel_cost: int = 0
    rebate: int = 0
    refund_count: int = 0  # refunds and reversals
    refund_amount: int = 0
    merchant_fee_reversed: int = 0
    channel_cost_reversed: int = 0
    rebate_reversed: int = 0

    @property
    def profit(self) -> int:
        return self.merchant_fee - self.channel_cost + self.rebate

    @property
    def profit_reversed(self) -> int:
        return self.merchant_fee_reversed - self.channel_cost_reversed + self.rebate_reversed

    @property
    def net_amount(self) -> int:
        return self.payment_amount - self.refund_amount

    @property
    def net_profit(self) -> int:
        return self.profit - self.profit_reversed

    def add(self, other: FeeFigures) -> None:
        for name in _FIGURE_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIGURE_COLUMNS}


_FIGURE_FIELDS = tuple(f.name for f in fields(FeeFigures))
# Every figure of a row, stored and derived, in the order of the page and of the CSV.
FIGURE_COLUMNS = ("payment_count", "payment_amount", "merchant_fee", "channel_cost", "rebate", "profit",
                  "refund_count", "refund_amount", "merchant_fee_reversed", "channel_cost_reversed",
                  "rebate_reversed", "profit_reversed", "net_amount", "net_profit")


@dataclass
class FeeRow:
    day: dt.date
    account_id: int | None
    account_code: str  # "" for trades without a channel account (none should have moved money)
    account_name: str
    product: str
    figures: FeeFigures = field(default_factory=FeeFigures)

    @property
    def key(self) -> tuple:
        return (self.day, self.account_code, self.account_id or 0, self.product)


@dataclass
class FeeReport:
    start: dt.date
    end: dt.date  # inclusive
    account_id: int | None
    product: str | None
    rows: list[FeeRow]
    totals: FeeFigures
    daily: list[tuple[dt.date, FeeFigures]]  # every day of the range, in order, zero where nothing moved

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def fee_report_default_range(*, now: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    """The last ``REPORT_DEFAULT_DAYS`` closed days: up to yesterday, local time."""
    today = timezone.localdate(now or timezone.now(), timezone.get_default_timezone())
    end = today - dt.timedelta(days=1)
    return end - dt.timedelta(days=REPORT_DEFAULT_DAYS - 1), end


def fee_report(*, start: dt.date, end: dt.date, account_id: int | None = None,
               product: str | None = None) -> FeeReport:
    """Fees and profit per day × channel account × product for ``start``..``end`` (local days, inclusive).

    ``account_id`` and ``product`` narrow to one channel account and one (channel) product. Three queries.
    """
    if end < start:
        raise InvalidRequest("the end of the range must not be before its start", param="to")
    if start < FIRST_DAY:
        # 0001-01-01's window starts in the year 0 in UTC: an OverflowError (a 500) on SQLite, as at LAST_DAY.
        raise InvalidRequest(FIRST_DAY_MESSAGE, param="from")
    if (end - start).days + 1 > REPORT_MAX_DAYS:
        raise InvalidRequest(f"a report covers at most {REPORT_MAX_DAYS} days", param="from")
    if end >= LAST_DAY:
        # Its day window would end on a day the calendar does not have (an OverflowError, a 500): design §5 rule 12.
        raise InvalidRequest(LAST_DAY_MESSAGE, param="to")
    window_start = statement_day_window(day=start)[0]
    window_end = statement_day_window(day=end)[1]

    rows: dict[tuple, FeeRow] = {}
    payments = (_payments(window_start, window_end), _late_payments(window_start, window_end))
    for row in _grouped(*payments, account_id=account_id, product=product):
        _row(rows, row).figures.add(FeeFigures(
            payment_count=row["n"], payment_amount=row["amount"], merchant_fee=row["fee"],
            channel_cost=row["cost"], rebate=row["rebate"]))
    for sources in ((_refunds(window_start, window_end), _late_payments(window_start, window_end, refunds=True)),
                    (_reversals(window_start, window_end),)):
        for row in _grouped(*sources, account_id=account_id, product=product):
            _row(rows, row).figures.add(FeeFigures(
                refund_count=row["n"], refund_amount=row["amount"], merchant_fee_reversed=row["fee"],
                channel_cost_reversed=row["cost"], rebate_reversed=row["rebate"]))

    ordered = sorted(rows.values(), key=lambda r: r.key)
    totals = FeeFigures()
    by_day = {start + dt.timedelta(days=i): FeeFigures() for i in range((end - start).days + 1)}
    for row in ordered:
        totals.add(row.figures)
        by_day[row.day].add(row.figures)
    return FeeReport(start=start, end=end, account_id=account_id, product=product or None, rows=ordered,
                     totals=totals, daily=list(by_day.items()))


# --- the queries --------------------------------------------------------------------------------------------------
# Each source annotates the same names — r_time (when the money moved), r_account (the channel account id),
# r_product — and the same sums under n, amount, fee, cost, rebate; ``_grouped`` groups them by local day.
def _product(prefix: str = ""):
    return Coalesce(NullIf(F(f"{prefix}channel_product"), Value("")), F(f"{prefix}product"),
                    output_field=CharField())


def _account(prefix: str = "") -> dict:
    return {"r_account": F(f"{prefix}channel_account_id"), "r_account_code": F(f"{prefix}channel_account__code"),
            "r_account_name": F(f"{prefix}channel_account__name")}


def _payments(start: dt.datetime, end: dt.datetime) -> QuerySet:
    return (Order.objects.filter(paid_at__gte=start, paid_at__lt=end)
            .annotate(r_time=F("paid_at"), **_account(), r_product=_product(),
                      r_amount=F("amount"), r_fee=F("merchant_fee"), r_cost=F("channel_cost"),
                      r_rebate=F("rebate")))


def _refunds(start: dt.datetime, end: dt.datetime) -> QuerySet:
    return (Refund.objects.filter(state="succeeded", succeeded_at__gte=start, succeeded_at__lt=end)
            .annotate(r_time=F("succeeded_at"), **_account("order__"), r_product=_product("order__"), r_amount=F("amount"), r_fee=F("merchant_fee_refunded"),
                      r_cost=F("channel_cost_refunded"), r_rebate=F("rebate_refunded")))


def _reversals(start: dt.datetime, end: dt.datetime) -> QuerySet:
    """Paid orders reversed in the window, dated as the statements date them: the whole payment and its whole fee
    snapshot go back."""
    return (reversals_in(start, end)
            .annotate(r_time=F("reversed_at"), **_account(), r_product=_product(), r_amount=F("amount"),
                      r_fee=F("merchant_fee"), r_cost=F("channel_cost"), r_rebate=F("rebate")))


def _late_payments(start: dt.datetime, end: dt.datetime, *, refunds: bool = False) -> QuerySet:
    """Late payments paid in the window (or, with ``refunds``, whose money went back in it), dated as the statements
    date them (trades.services.statements.late_payments_in): the closed order's whole fee snapshot is charged on the
    payment and reversed on the refund."""
    return (late_payments_in(start, end, refunds=refunds)
            .annotate(r_time=F("refunded_at" if refunds else "paid_at"), **_account("order__"),
                      r_product=_product("order__"), r_amount=F("amount"), r_fee=F("order__merchant_fee"),
                      r_cost=F("order__channel_cost"), r_rebate=F("order__rebate")))


def _grouped(*querysets: QuerySet, account_id: int | None, product: str | None) -> Iterable[dict]:
    """Each source grouped by local day × account × product; several sources are one ``UNION ALL`` (one query) whose
    rows may share a group — the caller adds them up (``_row``)."""
    zone = timezone.get_default_timezone()
    parts = []
    for queryset in querysets:
        if account_id is not None:
            queryset = queryset.filter(r_account=account_id)
        if product:
            queryset = queryset.filter(r_product=product)
        parts.append(queryset.order_by()
                     .annotate(r_day=TruncDate("r_time", tzinfo=zone))
                     .values("r_day", "r_account", "r_account_code", "r_account_name", "r_product")
                     .annotate(n=Count("pk"), amount=Sum("r_amount"), fee=Sum("r_fee"), cost=Sum("r_cost"),
                               rebate=Sum("r_rebate"))
                     .order_by())
    return parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]


def _row(rows: dict[tuple, FeeRow], row: dict) -> FeeRow:
    key = (row["r_day"], row["r_account"], row["r_product"])
    if key not in rows:
        rows[key] = FeeRow(day=row["r_day"], account_id=row["r_account"], account_code=row["r_account_code"] or "",
                           account_name=row["r_account_name"] or "", product=row["r_product"])
    return rows[key]


# --- CSV --------------------------------------------------------------------------------------------------------
UTF8_BOM = "\ufeff"  # Excel opens a UTF-8 CSV as UTF-8 (account names are Chinese) only with the BOM
COUNT_COLUMNS = ("payment_count", "refund_count")
CSV_HEADER = ("date", "channel_account", "channel_account_name", "product",
              *(name if name in COUNT_COLUMNS else f"{name}_fen" for name in FIGURE_COLUMNS), "net_profit_yuan")
CSV_TOTAL = "total"


def yuan_plain(fen: int) -> str:
    """Fen as yuan without thousands separators (a spreadsheet reads it as a number): -123456 → '-1234.56'."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d}"


def fee_report_as_csv(report: FeeReport) -> bytes:
    """UTF-8 with a BOM, RFC 4180 (CRLF). A header, one row per group, then one ``total`` row. Money in integer fen
    (columns ending ``_fen``: exact, and they add up), plus the net profit in yuan for people.

    The text cells — an account's code and name, typed by operations, and the product — go through ``safe_cell``
    (merchants.batch.export): finance opens this file in Excel, where a name such as ``=HYPERLINK(...)`` or a
    code such as ``-1-1`` would run as a formula (CSV injection). Only text: the numbers stay numbers."""
    out = io.StringIO()
    out.write(UTF8_BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in report.rows:
        figures = row.figures.as_dict()
        writer.writerow([row.day.isoformat(), safe_cell(row.account_code), safe_cell(row.account_name),
                         safe_cell(row.product),
                         *(figures[name] for name in FIGURE_COLUMNS), yuan_plain(row.figures.net_profit)])
    totals = report.totals.as_dict()
    writer.writerow([CSV_TOTAL, "", "", "", *(totals[name] for name in FIGURE_COLUMNS),
                     yuan_plain(report.totals.net_profit)])
    return out.getvalue().encode("utf-8")


def fee_report_csv_filename(report: FeeReport, *, account_code: str = "") -> str:
    """``aggpay-fees-<start>-to-<end>[-<account>][-<product>].csv``."""
    name = f"aggpay-fees-{report.start.isoformat()}-to-{report.end.isoformat()}"
    for part in (account_code, report.product or ""):
        if part:
            name += f"-{part}"
    return f"{name}.csv"

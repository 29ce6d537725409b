"""Finance workbench (design §8 finance), the page /staff/finance/: the fees and profit report with its daily chart
and CSV, and the merchant statement lookup with its CSV.

Read-only: every figure comes from trades.services.finance and trades.services.statements; nothing here writes, so
nothing is audited (design §5 rule 9 audits changes, not reads). Every view needs the finance section permission
(design §5 rule 11); superusers hold every permission, as on the other section pages. Channel bills and their
reconciliation come with a later issue.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from aggpay.errors import ApplicationError, InvalidState
from aggpay.money import format_yuan
from aggpay.roles import section_required
from aggpay.templatetags.staff_display import yuan
from channels.adapters.base import PRODUCTS
from channels.models import ChannelAccount
from merchants.models import Merchant
from trades.services.finance import (
    FIRST_DAY_MESSAGE,
    LAST_DAY,
    LAST_DAY_MESSAGE,
    REPORT_MAX_DAYS,
    FeeFigures,
    FeeReport,
    fee_report,
    fee_report_as_csv,
    fee_report_csv_filename,
    fee_report_default_range,
)
from trades.services.statements import (
    FIRST_DAY,
    Statement,
    statement_as_csv,
    statement_csv_filename,
    statement_get,
)

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
STATEMENT_LINES_SHOWN = 500  # a busy merchant's day can hold thousands of lines; the CSV has them all
REPORT_PARAMS = ("from", "to", "account", "product")
STATEMENT_PARAMS = ("merchant_no", "date")


# --- forms ----------------------------------------------------------------------------------------------------
def _date_field(label: str) -> forms.DateField:
    return forms.DateField(required=False, label=label, widget=forms.DateInput(attrs={"type": "date"}))


class FeeReportForm(forms.Form):
    """``from``/``to`` (local days, inclusive; default the last closed days), ``account``, ``product``."""

    account = forms.TypedChoiceField(required=False, label="Channel account", coerce=int, empty_value=None)
    product = forms.ChoiceField(required=False, label="Product",
                                choices=[("", "all products"), *((p, p) for p in PRODUCTS)])

    def __init__(self, *args, accounts: list[ChannelAccount], **kwargs):
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so the date fields cannot be class attributes; the page's inputs keep the
        # short names finance types in a URL.
        self.fields = {"from": _date_field("From"), "to": _date_field("To (inclusive)"), **self.fields}
        self.fields["account"].choices = [("", "all accounts"),
                                          *((str(a.pk), f"{a.code} · {a.name}") for a in accounts)]
        self.account_codes = {a.pk: a.code for a in accounts}

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if start is None or end is None:
            if not self.has_error("from") and not self.has_error("to"):
                self.add_error("from" if start is None else "to", "choose a day")
            return cleaned
        if end < start:
            self.add_error("to", "must not be before From")
        elif start < FIRST_DAY:
            self.add_error("from", FIRST_DAY_MESSAGE)
        elif (end - start).days + 1 > REPORT_MAX_DAYS:
            self.add_error("from", f"a report covers at most {REPORT_MAX_DAYS} days; choose a later From")
        elif end >= LAST_DAY:
            self.add_error("to", LAST_DAY_MESSAGE)
        return cleaned


class StatementLookupForm(forms.Form):
    merchant_no = forms.CharField(label="Merchant no", max_length=32,
                                  widget=forms.TextInput(attrs={"placeholder": "e.g. M2026000001"}))
    date = forms.DateField(label="Day", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        yesterday = timezone.localdate(timezone.now(), timezone.get_default_timezone()) - dt.timedelta(days=1)
        self.fields["date"].widget.attrs["max"] = yesterday.isoformat()  # only closed days have a statement

    def clean_merchant_no(self) -> Merchant:
        # Merchant numbers are upper case (M2600000001); finance types them as they come (m2600000001).
        number = self.cleaned_data["merchant_no"].strip().upper()
        merchant = Merchant.objects.filter(merchant_no=number).first()
        if merchant is None:
            raise forms.ValidationError(f"No merchant has the number “{number}”.", code="unknown")
        return merchant


# --- pages ----------------------------------------------------------------------------------------------------
@require_safe
@section_required("finance")
def finance(request):
    # A GET page: mistakes in either form are shown beside the field, on a normal page.
    return render(request, "staff/finance.html", _context(request))


@require_safe
@section_required("finance")
def fees_csv(request):
    form = _report_form(request)
    if not form.is_valid():
        return render(request, "staff/finance.html", _context(request, report_form=form), status=400)
    report = _report(form)
    code = form.account_codes.get(form.cleaned_data.get("account"), "")
    response = HttpResponse(fee_report_as_csv(report), content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{fee_report_csv_filename(report, account_code=code)}"'
    return response


@require_safe
@section_required("finance")
def statement_csv(request):
    form = StatementLookupForm(request.GET)
    statement = _statement(form)
    if statement is None:
        return render(request, "staff/finance.html", _context(request, statement_form=form), status=400)
    merchant = form.cleaned_data["merchant_no"]
    response = HttpResponse(statement_as_csv(statement), content_type=CSV_CONTENT_TYPE)
    filename = statement_csv_filename(statement, merchant_no=merchant.merchant_no)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- building the page ----------------------------------------------------------------------------------------
def _report_form(request) -> FeeReportForm:
    accounts = list(ChannelAccount.objects.order_by("code").only("pk", "code", "name"))
    data = {name: request.GET[name] for name in REPORT_PARAMS if request.GET.get(name)}
    # Always bound, the missing dates filled with the defaults: the page opens on the last closed days, and the
    # inputs show which.
    start, end = fee_report_default_range()
    data.setdefault("from", start.isoformat())
    data.setdefault("to", end.isoformat())
    return FeeReportForm(data, accounts=accounts)


def _report(form: FeeReportForm) -> FeeReport:
    data = form.cleaned_data
    return fee_report(start=data["from"], end=data["to"], account_id=data.get("account"),
                      product=data.get("product") or None)


def _statement(form: StatementLookupForm) -> Statement | None:
    if not form.is_valid():
        return None
    try:
        return statement_get(merchant=form.cleaned_data["merchant_no"], day=form.cleaned_data["date"])
    except InvalidState as exc:  # the day has not closed yet: the service says from when
        form.add_error("date", exc.message)
    except ApplicationError as exc:
        form.add_error(exc.param if exc.param in form.fields else None, exc.message)
    return None


def _context(request, *, report_form: FeeReportForm | None = None,
             statement_form: StatementLookupForm | None = None) -> dict:
    report_form = report_form or _report_form(request)
    report = _report(report_form) if report_form.is_valid() else None
    if statement_form is None and any(request.GET.get(name) for name in STATEMENT_PARAMS):
        statement_form = StatementLookupForm(request.GET)
    statement = _statement(statement_form) if statement_form is not None else None
    today = timezone.localdate(timezone.now(), timezone.get_default_timezone())
    return {
        "report_form": report_form,
        "report": report,
        "report_rows": _report_rows(report) if report else [],
        "report_totals": _cells(report.totals) if report else [],
        "report_columns": REPORT_COLUMNS,
        "report_open_day": bool(report and report.end >= today),
        # Closed days are the default (their figures are final); a cashier's morning is one click away.
        "report_today_query": urlencode({"from": today.isoformat(), "to": today.isoformat()}),
        "today_so_far": _today_so_far(report, today),
        "chart": profit_chart(report.daily) if report else None,
        "report_query": _query(request, REPORT_PARAMS, report_form),
        "statement_form": statement_form or StatementLookupForm(),
        "statement": statement,
        "statement_merchant": statement_form.cleaned_data["merchant_no"] if statement else None,
        "statement_lines": _statement_lines(statement) if statement else [],
        "statement_lines_hidden": max(0, len(statement.lines) - STATEMENT_LINES_SHOWN) if statement else 0,
        "statement_summary": _statement_summary(statement) if statement else [],
        "statement_query": _query(request, STATEMENT_PARAMS),
        "statement_hidden": [(n, request.GET[n]) for n in REPORT_PARAMS if request.GET.get(n)],
        "report_hidden": [(n, request.GET[n]) for n in STATEMENT_PARAMS if request.GET.get(n)],
    }


def _today_so_far(report: FeeReport | None, today: dt.date) -> FeeFigures | None:
    """Today's figures (same account and product) when the closed days shown moved no money but today has: on a
    first day — or in the demo, whose trades are all this morning's — an empty table alone reads as "nothing
    happened". Only then is today's report made (one more aggregate); None otherwise."""
    if report is None or report.rows or report.end >= today:
        return None
    figures = fee_report(start=today, end=today, account_id=report.account_id, product=report.product).totals
    return figures if figures.payment_count or figures.refund_count else None


def _query(request, names, form: FeeReportForm | None = None) -> str:
    """The parameters of one form, as a query string for its CSV link (the report's with its resolved dates)."""
    params = {name: request.GET[name] for name in names if request.GET.get(name)}
    if form is not None and form.is_valid():
        params["from"], params["to"] = form.cleaned_data["from"].isoformat(), form.cleaned_data["to"].isoformat()
    return urlencode(params)


# The report table: (heading, figure, is_count). Net amount stays in the CSV; the page keeps to the profit.
REPORT_COLUMNS = (
    ("Payments", "payment_count", True), ("Paid amount", "payment_amount", False),
    ("Merchant fees", "merchant_fee", False), ("Channel cost", "channel_cost", False), ("Rebate", "rebate", False),
    ("Profit", "profit", False),
    ("Refunds", "refund_count", True), ("Refunded amount", "refund_amount", False),
    ("Fees reversed", "merchant_fee_reversed", False), ("Cost reversed", "channel_cost_reversed", False),
    ("Rebate reversed", "rebate_reversed", False), ("Profit reversed", "profit_reversed", False),
    ("Net profit", "net_profit", False),
)


def _cells(figures: FeeFigures) -> list[dict]:
    cells = []
    for _, name, is_count in REPORT_COLUMNS:
        value = getattr(figures, name)
        cells.append({"name": name, "text": str(value) if is_count else format_yuan(value),
                      "negative": value < 0})
    return cells


def _report_rows(report: FeeReport) -> list[dict]:
    return [{"day": row.day, "account_code": row.account_code, "account_name": row.account_name,
             "product": row.product, "cells": _cells(row.figures)} for row in report.rows]


def _statement_lines(statement: Statement) -> list[dict]:
    return [{**line.as_dict(), "time": line.time, "amount_yuan": format_yuan(line.amount),
             "fee_yuan": format_yuan(line.fee), "net_yuan": format_yuan(line.net)}
            for line in statement.lines[:STATEMENT_LINES_SHOWN]]


def _statement_summary(statement: Statement) -> list[tuple[str, str]]:
    s = statement.summary
    return [("Payments", f"{s.payment_count} · {yuan(s.payment_amount)}"),
            ("Fees charged", yuan(s.payment_fee)),
            ("Refunds and reversals", f"{s.refund_count} · {yuan(s.refund_amount)}"),
            ("Fees given back", yuan(s.refund_fee)),
            ("Amount", yuan(s.amount)), ("Fees", yuan(s.fee)),
            ("Net to the merchant", yuan(s.net))]


# --- the chart ------------------------------------------------------------------------------------------------
CHART_WIDTH, CHART_HEIGHT, CHART_PAD_TOP, CHART_PAD_BOTTOM, CHART_PAD_LEFT = 760, 180, 12, 22, 64


def profit_chart(daily: list[tuple[dt.date, FeeFigures]]) -> dict:
    """Daily net profit as server-rendered SVG bars: a bar per day up from (or down from, for a loss) the zero line,
    with the day's figure in its tooltip. No script; the template draws what this computes."""
    values = [figures.net_profit for _, figures in daily]
    top, bottom = max([0, *values]), min([0, *values])
    span = (top - bottom) or 1
    plot_h = CHART_HEIGHT - CHART_PAD_TOP - CHART_PAD_BOTTOM
    plot_w = CHART_WIDTH - CHART_PAD_LEFT
    step = plot_w / max(len(daily), 1)
    bar_w = max(1.0, step * 0.7)
    # The zero line splits the height between gains and losses; with neither it sits at the bottom.
    zero_y = CHART_PAD_TOP + (plot_h * top / span if top or bottom else plot_h)
    label_every = max(1, -(-len(daily) // 14))  # at most ~14 day labels under the axis
    bars = []
    for i, (day, figures) in enumerate(daily):
        value = figures.net_profit
        height = plot_h * abs(value) / span
        x = CHART_PAD_LEFT + i * step + (step - bar_w) / 2
        bars.append({
            "x": round(x, 1), "w": round(bar_w, 1), "h": round(max(height, 0.0), 1),
            "y": round(zero_y - height if value >= 0 else zero_y, 1),
            "tone": "loss" if value < 0 else "gain", "day": day, "value": value,
            "label": day.strftime("%m-%d") if i % label_every == 0 else "",
            "label_x": round(x + bar_w / 2, 1),
        })
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_PAD_LEFT, "zero_y": round(zero_y, 1),
            "axis_label_x": CHART_PAD_LEFT - 6, "top_label_y": CHART_PAD_TOP + 4,
            "top_y": CHART_PAD_TOP, "bottom_y": round(CHART_PAD_TOP + plot_h, 1), "label_y": CHART_HEIGHT - 6,
            "top_yuan": format_yuan(top), "bottom_yuan": format_yuan(bottom), "has_gain": top > 0,
            "has_loss": bottom < 0,
            "bars": bars, "empty": not any(values)}

"""GET /api/v1/bills/{YYYY-MM-DD}?format=json|csv — the merchant's statement of a closed day (merchant-api.md
"Statements"). The view validates the date and the format and calls trades.services.statements; the rules (the
day, the lines, the sign convention) are written down there."""

from __future__ import annotations

import datetime as dt
import re

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from aggpay.api.schema import api_schema
from trades.api.orders import PaymentsView
from trades.services.statements import (  # FIRST_DAY: the day before which there are no statements
    FIRST_DAY,
    LINE_TYPES,
    statement_as_api,
    statement_as_csv,
    statement_csv_filename,
    statement_get,
)

DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
FORMATS = ("json", "csv")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


class DayField(serializers.Field):
    """A calendar day written ``YYYY-MM-DD`` exactly (``date.fromisoformat`` alone would also take ``20261125``
    and week dates)."""

    default_error_messages = {"invalid": "must be a calendar day written YYYY-MM-DD",
                              "too_early": f"there are no statements before {FIRST_DAY.isoformat()}"}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not DAY.match(data):
            self.fail("invalid")
        try:
            day = dt.date.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        if day < FIRST_DAY:
            self.fail("too_early")
        return day

    def to_representation(self, value):
        return value.isoformat()


class StatementParamsSerializer(serializers.Serializer):
    date = DayField()
    format = serializers.ChoiceField(choices=FORMATS, default="json")


@extend_schema_field({"type": "string", "pattern": f"^({'|'.join(LINE_TYPES)})$"})
class LineTypeField(serializers.CharField):
    """The line's type. Constrained by a pattern, not an enum: drf-spectacular names every enum component after
    its field, and ``type`` already names another choice set (onboarding scenarios)."""


class StatementLineOutputSerializer(serializers.Serializer):
    type = LineTypeField(help_text="`payment`; `refund`; `reversal` (撤销 of a paid payment-code order: the whole "
                                   "amount back)")
    id = serializers.CharField(help_text="`ord_...` (payment, reversal) or `ref_...` (refund)")
    out_trade_no = serializers.CharField()
    out_refund_no = serializers.CharField(allow_null=True, help_text="refunds only")
    product = serializers.CharField()
    channel_trade_no = serializers.CharField(allow_null=True, help_text="the payment's number at the channel")
    channel_refund_no = serializers.CharField(allow_null=True, help_text="the refund's number at the channel")
    time = serializers.DateTimeField(help_text="when the money moved (RFC 3339, +08:00)")
    amount = serializers.IntegerField(help_text="fen, signed: > 0 payment, < 0 refund or reversal")
    fee = serializers.IntegerField(help_text="fen, the merchant fee: charged (> 0) or given back (< 0)")
    net = serializers.IntegerField(help_text="fen, amount − fee")


class StatementSummaryOutputSerializer(serializers.Serializer):
    payment_count = serializers.IntegerField(min_value=0)
    payment_amount = serializers.IntegerField(min_value=0, help_text="fen")
    payment_fee = serializers.IntegerField(min_value=0, help_text="fen")
    refund_count = serializers.IntegerField(min_value=0, help_text="refunds and reversals")
    refund_amount = serializers.IntegerField(max_value=0, help_text="fen (≤ 0)")
    refund_fee = serializers.IntegerField(max_value=0, help_text="fen given back (≤ 0)")
    amount = serializers.IntegerField(help_text="fen, payment_amount + refund_amount")
    fee = serializers.IntegerField(help_text="fen, payment_fee + refund_fee")
    net = serializers.IntegerField(help_text="fen, amount − fee")


class StatementOutputSerializer(serializers.Serializer):
    date = serializers.DateField()
    currency = serializers.CharField()
    lines = StatementLineOutputSerializer(many=True, help_text="oldest first")
    summary = StatementSummaryOutputSerializer()


class FormatIsAParameter(DefaultContentNegotiation):
    """``format`` is this endpoint's own query parameter. DRF would read it as its URL format override and answer
    404 for ``csv`` (no renderer of that name): the first renderer (JSON) renders the JSON statement and every
    error; the CSV statement is a plain response the view builds itself."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


_EXAMPLE_JSON = {
    "date": "2026-11-25", "currency": "CNY",
    "lines": [
        {"type": "payment", "id": "ord_7HqK2mNpQr4sTuVwXyZa01", "out_trade_no": "T100001", "out_refund_no": None,
         "product": "wechat.native", "channel_trade_no": "4200002026112512345678", "channel_refund_no": None,
         "time": "2026-11-25T10:15:02+08:00", "amount": 10000, "fee": 38, "net": 9962},
        {"type": "refund", "id": "ref_3bC9dEfGhJkLmNpQrStUv2", "out_trade_no": "T100001", "out_refund_no": "R1",
         "product": "wechat.native", "channel_trade_no": "4200002026112512345678",
         "channel_refund_no": "50300002026112598765432", "time": "2026-11-25T16:40:11+08:00", "amount": -2500,
         "fee": -10, "net": -2490},
    ],
    "summary": {"payment_count": 1, "payment_amount": 10000, "payment_fee": 38, "refund_count": 1,
                "refund_amount": -2500, "refund_fee": -10, "amount": 7500, "fee": 28, "net": 7472},
}
_EXAMPLE_CSV = (
    "type,id,out_trade_no,out_refund_no,product,channel_trade_no,channel_refund_no,time,amount,fee,net\r\n"
    "payment,ord_7HqK2mNpQr4sTuVwXyZa01,T100001,,wechat.native,4200002026112512345678,,2026-11-25T10:15:02+08:00,"
    "10000,38,9962\r\n"
    "refund,ref_3bC9dEfGhJkLmNpQrStUv2,T100001,R1,wechat.native,4200002026112512345678,50300002026112598765432,"
    "2026-11-25T16:40:11+08:00,-2500,-10,-2490\r\n"
    "summary,payment_count,payment_amount,payment_fee,refund_count,refund_amount,refund_fee,amount,fee,net\r\n"
    "summary,1,10000,38,1,-2500,-10,7500,28,7472\r\n"
)
STATEMENT_DESCRIPTION = """\
One line per payment, refund and reversal whose money moved on that calendar day (Asia/Shanghai, 00:00 to 00:00),
oldest first, then the day's totals. Lines are ordered by their `time` to the second; within one second payments,
then refunds — in the order aggpay recorded their success, the order their fee shares are worked out in — then
reversals. Amounts are integer fen, signed from the merchant's side: payments positive, refunds and reversals
negative; `fee` is the merchant fee with the same sign (a payment's is amount × rate rounded half-up to the fen; a
refund gives back its share of it); `net = amount − fee` on every line and in the summary. A day is available once
it has closed, from 00:00 China time the next day (16:00 UTC on the day): asking earlier is `409 invalid_state`,
whose message gives that time. A day without trades is a statement with no lines and zero totals.

`format=csv` answers the same as `text/csv; charset=utf-8` (RFC 4180, CRLF): a header row, the lines (empty cells
for nulls), then two rows starting with `summary`: the names of the totals, then their values. The response
signature covers the exact CSV bytes."""


class StatementView(PaymentsView):
    """Any app with the ``payments`` scope, whatever the merchant's state (a frozen merchant still reconciles)."""

    content_negotiation_class = FormatIsAParameter

    @api_schema(
        operation_id="bills_retrieve",
        summary="Download the statement of a day",
        description=STATEMENT_DESCRIPTION,
        tags=["statements"],
        parameters=[
            OpenApiParameter("date", OpenApiTypes.DATE, OpenApiParameter.PATH,
                             description="the calendar day, `YYYY-MM-DD` (Asia/Shanghai); a closed day from "
                                         f"{FIRST_DAY.isoformat()} on"),
            OpenApiParameter("format", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=list(FORMATS),
                             default="json", description="`json` (default) or `csv`"),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                StatementOutputSerializer, description="the statement (`format=json`)",
                examples=[OpenApiExample("A payment and a partial refund", value=_EXAMPLE_JSON,
                                         media_type="application/json")]),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="the statement as CSV (`format=csv`), with `Content-Disposition: "
                                              "attachment; filename=\"aggpay-statement-<merchant_no>-<date>.csv\"`",
                examples=[OpenApiExample("A payment and a partial refund", value=_EXAMPLE_CSV,
                                         media_type="text/csv")]),
        },
        errors=(403, 409),
    )
    def get(self, request, date):
        params = StatementParamsSerializer(data={"date": date, "format": request.query_params.get("format", "json")})
        params.is_valid(raise_exception=True)
        merchant = request.auth.merchant
        statement = statement_get(merchant=merchant, day=params.validated_data["date"])
        if params.validated_data["format"] == "json":
            return Response(statement_as_api(statement))
        response = HttpResponse(statement_as_csv(statement), content_type=CSV_CONTENT_TYPE)
        filename = statement_csv_filename(statement, merchant_no=merchant.merchant_no)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

"""The Orders and Refunds endpoints of merchant-api.md, exactly: unified order, query, list, close, reverse,
refund, refund query. Views validate fields and call trades.services; nothing else."""

from __future__ import annotations

import ipaddress
import json
import re
import threading

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from aggpay.api.lists import ListParamsSerializer, page, parse_list_params
from aggpay.api.permissions import HasScope, IsMerchantApp, MerchantIsActive, MerchantMayRefund
from aggpay.api.schema import api_schema
from aggpay.api.strict import (
    StrictCharField,
    StrictSerializer,
    TextField,
    refuse_hidden_characters,
    require_no_fields,
)
from aggpay.api.views import MerchantAPIView, api_actor
from aggpay.notify_urls import notify_url_refusal
from channels.adapters.base import BARCODE_PRODUCTS
from trades.models import Order, OrderState, Refund
from trades.products import API_PRODUCTS, JSAPI_PRODUCTS
from trades.services.orders import order_close, order_create, order_get, order_reverse, order_sync
from trades.services.refunds import refund_create, refund_get, refund_sync
from trades.services.representation import LATE_PAYMENT_STATES, WALLETS, order_as_api, refund_as_api

OUT_NO = re.compile(r"^[0-9A-Za-z_-]{6,32}$")
# merchant-api.md "Orders": `payer` is for JSAPI/mini, `auth_code` for barcode. unionpay.qr takes a payer too: with
# the payer's UnionPay user_id it is 银联JS支付 (docs/channels/bank.md §6.2, trades.services.cashier). Each product
# names its payer by its wallet's one key: {"openid": ...} (WeChat), {"buyer_id": ...} (Alipay), {"user_id": ...}
# (UnionPay) — trades.services.orders._payer_key.
PAYER_KEY_BY_WALLET = {"wechat": "openid", "alipay": "buyer_id", "unionpay": "user_id"}
PAYER_PRODUCTS = frozenset({*JSAPI_PRODUCTS, "unionpay.qr"})
AUTH_CODE_PRODUCTS = frozenset({"barcode", *BARCODE_PRODUCTS})
METADATA_MAX_BYTES = 2048


def _has_nul(value) -> bool:
    """A NUL character in any name or string of a JSON value (bounded: metadata is at most 2 KB)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class StrictIntegerField(serializers.IntegerField):
    """Amounts are JSON integers in fen: "100", 100.0 and true are refused (design §5 rule 1)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    """Identifiers are JSON strings: DRF would quietly turn 12345678 into "12345678"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class IdentifierField(StrictRegexField):
    """The merchant's own keys (out_trade_no, out_refund_no), taken exactly as sent: they name the request for
    idempotency (design §5 rule 5) and come back in every answer and event, so a key that does not match the pattern
    is refused (design §5 rule 12), never cleaned up. DRF trimmed surrounding whitespace before matching, and the
    pattern's ``$`` also matches before a final newline: " T100001" or "T100001\\n" was stored as another key than the
    merchant's own."""

    def __init__(self, regex, **kwargs):
        super().__init__(regex, trim_whitespace=False, **kwargs)
        self.exact = re.compile(regex) if isinstance(regex, str) else regex

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not self.exact.fullmatch(value):
            self.fail("invalid")
        return value


class HttpUrlField(serializers.URLField):
    """An http(s) URL. Django's URLValidator takes control and bidirectional formatting characters in the path (and a
    return_url goes to the channel): refused as in text fields."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            refuse_hidden_characters(data)  # as sent, before DRF trims it (aggpay.api.strict.TextField)
        value = super().to_internal_value(data)
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("must be an http or https URL")
        return value


class NotifyUrlField(HttpUrlField):
    """Where this order's or refund's notifications go: not inside aggpay's network (aggpay/notify_urls.py)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        refusal = notify_url_refusal(value)
        if refusal:
            raise serializers.ValidationError(refusal)
        return value


@extend_schema_field({"type": "string", "maxLength": 45, "anyOf": [{"type": "string", "format": "ipv4"},
                                                                  {"type": "string", "format": "ipv6"}]})
class IpAddressField(StrictCharField):
    """The payer's IP address (``validate_client_ip``); the OpenAPI document says ``ipv4`` or ``ipv6``, as the API
    checks (bug: it said any string of up to 45 characters)."""


class PayerInputSerializer(StrictSerializer):
    """The payer's id in the wallet: one key, the one the order's product pays by."""

    # Checked with the product in OrderCreateInputSerializer.validate. Bug: ``payer`` was a map of any strings, so
    # {"openid": "x", "foo": 1} answered ``payer.foo`` "Not a valid string" while {"foo": "bar"} answered ``payer``
    # "unknown key foo" — two answers for one mistake — and the OpenAPI document allowed any key.
    unknown_message = "unknown key: payer takes openid (WeChat), buyer_id (Alipay) or user_id (UnionPay)"
    schema_keywords = {"maxProperties": 1}  # the product's one key (aggpay.api.schema.StrictSerializerSchema)

    openid = TextField(max_length=128, required=False,
                       help_text="the payer's WeChat openid: `wechat.jsapi`, `wechat.mini`")
    buyer_id = TextField(max_length=128, required=False,
                         help_text="the payer's Alipay buyer_id (2088…): `alipay.jsapi`")
    user_id = TextField(max_length=128, required=False,
                        help_text="the payer's UnionPay user_id: `unionpay.qr` (a UnionPay JS payment)")


class OrderCreateInputSerializer(StrictSerializer):
    out_trade_no = IdentifierField(OUT_NO, help_text="6–32 chars [0-9A-Za-z_-], unique per merchant",
                                   error_messages={"invalid": "must be 6–32 characters of 0-9 A-Z a-z _ -"})
    amount = StrictIntegerField(min_value=1, max_value=10**11, help_text="fen, ≥ 1")
    currency = serializers.ChoiceField(choices=["CNY"], default="CNY")
    product = serializers.ChoiceField(choices=list(API_PRODUCTS))
    subject = TextField(max_length=128)
    description = TextField(max_length=1024, required=False, allow_blank=True)
    metadata = serializers.DictField(required=False, help_text="JSON object ≤ 2 KB, echoed back")
    notify_url = NotifyUrlField(max_length=512, required=False)
    return_url = HttpUrlField(max_length=512, required=False)
    expire_seconds = StrictIntegerField(min_value=60, max_value=86400, required=False)
    client_ip = IpAddressField(max_length=45, required=False, help_text="the payer's IPv4 or IPv6 address")
    payer = PayerInputSerializer(
        required=False,
        help_text="the payer's id in the wallet, the one key the product pays by: "
                  '{"openid": ...} for `wechat.jsapi` and `wechat.mini`, {"buyer_id": ...} for `alipay.jsapi`, '
                  '{"user_id": ...} for `unionpay.qr`. Required for `wechat.jsapi`, `wechat.mini` and '
                  "`alipay.jsapi`; optional for `unionpay.qr` (with a `user_id`, a UnionPay JS payment); any other "
                  "product refuses it (`400`, `param: payer`), and another wallet's key is refused naming it "
                  "(`param: payer.buyer_id`)")
    auth_code = StrictRegexField(r"^[0-9]{16,24}$", required=False,
                                 help_text="the payer's payment code: required for `barcode` and `*.barcode`, refused "
                                           "by any other product (`400`, `param: auth_code`)")
    store_id = TextField(max_length=32, required=False, allow_blank=True)
    terminal_id = TextField(max_length=32, required=False, allow_blank=True)

    _per_thread = threading.local()

    @property
    def fields(self):
        """DRF deep-copies every declared field for each serializer instance: on the busiest endpoint that cost five
        times the validation itself (130 µs of 220 µs). These fields keep no state between validations (no
        context, no instance, no partial updates), so each thread keeps one bound set and lends it to the
        serializer at hand."""
        fields = getattr(self._per_thread, "fields", None)
        if fields is None:
            fields = self._per_thread.fields = super().fields
        fields.serializer = self
        for field in fields.values():
            field.parent = self
        return fields

    def validate_metadata(self, value):
        # Stored as PostgreSQL jsonb, which holds neither infinite numbers (1e400 parses as infinity) nor NUL
        # characters: refused here, naming the field, instead of failing at the INSERT as a 500. (Lone surrogates
        # and deep nesting never get this far: aggpay.api.parsers.)
        # "≤ 2 KB" (merchant-api.md "Orders") is the object written compactly in UTF-8: what the merchant sent,
        # less any whitespace of theirs. Bug: json.dumps's default separators (", ", ": ") counted a space the
        # merchant never sent after each comma and colon, so 1,871 compact bytes were refused as more than 2 KB.
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (ValueError, TypeError):  # TypeError: an integer too long to read, kept as a Decimal (api.parsers)
            raise serializers.ValidationError("numbers must be finite and at most 4,000 digits") from None
        if len(text.encode("utf-8")) > METADATA_MAX_BYTES:
            raise serializers.ValidationError("must be at most 2 KB as JSON")
        if _has_nul(value):
            raise serializers.ValidationError("must not contain NUL characters (\\u0000)")
        return value

    def validate_client_ip(self, value):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise serializers.ValidationError("must be an IPv4 or IPv6 address") from None
        if getattr(address, "scope_id", None):
            # "fe80::1%eth0": a zone names an interface of the sender's own machine, meaningless to the channel
            # (the payer's address, channel-protocols.md A.5 payer_client_ip); ipaddress takes it since 3.9.
            raise serializers.ValidationError("must be an IPv4 or IPv6 address without a zone (%…)")
        return value

    def validate(self, attrs):
        """A field the product does not take is refused naming it (design §5 rule 12), as an unknown field is. Bug: a
        ``wechat.native`` order with an ``auth_code`` answered 201 with a QR code and the code was never charged —
        the till believed it had taken a payment code — and a ``payer`` on a product that pays whoever scans was
        dropped silently. (``"payer": {}`` carries nothing: it is the same request as none, trades.services.orders
        ``_effective``.)"""
        product = attrs.get("product")
        if attrs.get("auth_code") and product not in AUTH_CODE_PRODUCTS:
            raise serializers.ValidationError({"auth_code": [
                f"{product} takes no payment code: auth_code is for barcode and *.barcode orders"]})
        if attrs.get("payer") and product not in PAYER_PRODUCTS:
            raise serializers.ValidationError({"payer": [
                f"{product} takes no payer: payer is for wechat.jsapi, wechat.mini, alipay.jsapi and unionpay.qr"]})
        if product == "unionpay.qr" and attrs.get("payer") and not attrs["payer"].get("user_id"):
            # Without the UnionPay user_id the order would quietly be a plain QR code and the payer given dropped
            # (channels.adapters.bank: only a payer id makes it 银联JS支付). The JSAPI products' own payer keys are
            # checked where the wallet is known (trades.services.orders, names payer.openid / payer.buyer_id).
            raise serializers.ValidationError({"payer": {"user_id": [
                "required when unionpay.qr is given a payer: the payer's UnionPay user_id"]}})
        if attrs.get("payer") and product in PAYER_PRODUCTS:
            # The product pays by one key; another wallet's id beside it is refused naming it, never dropped
            # (docs/api.md "Errors": a misspelt optional field is never dropped silently). Bug: {"openid": …,
            # "buyer_id": …} on wechat.jsapi answered 201 and the buyer_id went nowhere. Without the product's own
            # key, the missing key is what is named (above, and trades.services.orders).
            key = PAYER_KEY_BY_WALLET[product.split(".", 1)[0]]
            other = next((name for name in attrs["payer"] if name != key), None)
            if key in attrs["payer"] and other is not None:
                raise serializers.ValidationError({"payer": {other: [
                    f"{product} takes only payer.{key}, the payer's id in its wallet"]}})
        return attrs


class FailureOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField(allow_blank=True)


class LatePaymentOutputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(help_text="fen the payer paid after the order was closed")
    paid_at = serializers.DateTimeField(help_text="when the payer paid, as the channel says")
    channel_trade_no = serializers.CharField(allow_null=True, help_text="the payment's number at the channel")
    state = serializers.ChoiceField(choices=LATE_PAYMENT_STATES, help_text=(
        "what became of the money: `refunding` (being returned to the payer through the channel), `refunded` "
        "(returned), `kept` (settled with you as kept: you delivered the goods), `with_support` (held: the "
        "channel refused the refund, or it waits for aggpay support to return it or settle it with you)"))
    refunded_at = serializers.DateTimeField(allow_null=True, help_text="when the money went back to the payer")


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`ord_...`")
    out_trade_no = serializers.CharField()
    merchant_no = serializers.CharField()
    amount = serializers.IntegerField(help_text="fen")
    currency = serializers.CharField()
    product = serializers.CharField()
    state = serializers.ChoiceField(choices=OrderState.choices)
    subject = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField()
    pay_params = serializers.DictField(help_text="code_url / jsapi / app / h5_url / wap_url / cashier_url")
    channel_trade_no = serializers.CharField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    # merchant-api.md "Orders": reverse "refunds it if paid" — that money went back too (_reversal_refunded).
    refunded_amount = serializers.IntegerField(
        help_text="fen given back: the succeeded refunds, or the whole amount of a paid order that was reversed")
    refundable_amount = serializers.IntegerField()
    expires_at = serializers.DateTimeField(help_text=(
        "when an unpaid order stops being payable; a payment code's is when aggpay reverses it if still unpaid: "
        "`created_at` + `expire_seconds`, at most + 60 s (the minute its payer has, whatever `expire_seconds` "
        "asked)"))
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    failure = FailureOutputSerializer(required=False, help_text="present when state is failed")
    # An addition to merchant-api.md's order object (design §5 rule 3): otherwise only the statement shows the money.
    late_payment = LatePaymentOutputSerializer(allow_null=True, help_text=(
        "**addition**: a payment that arrived after the order was closed (a late payment) and what became of its "
        "money; `null` for every other order. Only a `closed` or `failed` order can have one; no event announces "
        "it (the order's state does not change)"))
    # Additions to merchant-api.md's order object: a `barcode` order's product names no wallet, and a till totals
    # its shift per wallet and per terminal (representation.order_wallet).
    wallet = serializers.ChoiceField(choices=WALLETS, allow_null=True, help_text=(
        "**addition**: the wallet the order is paid in — for `barcode`, the one the payment code belongs to; for "
        "`cashier`, the one the payer opened the page in (`null` until then)"))
    store_id = serializers.CharField(allow_null=True, help_text="**addition**: as sent on create; `null` if not sent")
    terminal_id = serializers.CharField(allow_null=True,
                                        help_text="**addition**: as sent on create; `null` if not sent")


class OrderListOutputSerializer(serializers.Serializer):
    data = OrderOutputSerializer(many=True)
    has_more = serializers.BooleanField()


class OrderListParamsSerializer(ListParamsSerializer):
    state = serializers.ChoiceField(choices=OrderState.choices, required=False)
    wallet = serializers.ChoiceField(choices=WALLETS, required=False,
                                     help_text="**addition**: only orders paid in this wallet (the order's `wallet`)")


class RefundCreateInputSerializer(StrictSerializer):
    out_refund_no = IdentifierField(r"^[0-9A-Za-z_-]{1,64}$", help_text="unique per merchant",
                                    error_messages={"invalid": "must be 1–64 characters of 0-9 A-Z a-z _ -"})
    amount = StrictIntegerField(min_value=1, max_value=10**11, help_text="fen")
    reason = TextField(max_length=256, required=False, allow_blank=True)
    notify_url = NotifyUrlField(max_length=512, required=False)


class RefundOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`ref_...`")
    out_refund_no = serializers.CharField()
    out_trade_no = serializers.CharField()
    amount = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["pending", "succeeded", "failed", "closed"])
    reason = serializers.CharField(allow_blank=True)
    channel_refund_no = serializers.CharField(allow_null=True)
    succeeded_at = serializers.DateTimeField(allow_null=True)
    failure = FailureOutputSerializer(allow_null=True)
    created_at = serializers.DateTimeField()


class RefundListOutputSerializer(serializers.Serializer):
    data = RefundOutputSerializer(many=True)
    has_more = serializers.BooleanField()


class RefundListParamsSerializer(ListParamsSerializer):
    state = serializers.ChoiceField(choices=["pending", "succeeded", "failed", "closed"], required=False)


REPLAYED = {"Idempotent-Replayed": "true"}


class PaymentsView(MerchantAPIView):
    permission_classes = [IsMerchantApp, HasScope("payments")]


class OrdersView(PaymentsView):
    def get_permissions(self):
        if self.request.method == "POST":
            return [IsMerchantApp(), HasScope("payments")(), MerchantIsActive()]
        return super().get_permissions()

    @api_schema(operation_id="orders_create", summary="Unified order (统一下单)", tags=["orders"],
                request=OrderCreateInputSerializer,
                responses={201: OrderOutputSerializer,
                           200: OpenApiResponse(OrderOutputSerializer,
                                                description="the same request retried: the existing order, with "
                                                            "header `Idempotent-Replayed: true`")},
                errors=(403, 409, 422, 502), replays=True)
    def post(self, request):
        data = OrderCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order, replayed = order_create(app=request.auth, data=data.validated_data,
                                       routing_token=getattr(request._request, "aggpay_front_door_token", None))
        body = order_as_api(order)
        if replayed:
            return Response(body, status=status.HTTP_200_OK, headers=REPLAYED)
        return Response(body, status=status.HTTP_201_CREATED)

    @api_schema(operation_id="orders_list", summary="List orders", tags=["orders"],
                parameters=[OrderListParamsSerializer], responses={200: OrderListOutputSerializer}, errors=(403,))
    def get(self, request):
        params = parse_list_params(OrderListParamsSerializer, request.query_params)
        # Each order's late payment joined: the answer shows it (order_as_api), in one query for the page.
        queryset = Order.objects.filter(merchant=request.auth.merchant).select_related("merchant", "late_payment")
        where = {"state": params["state"]} if params.get("state") else {}
        if params.get("wallet"):  # the order's wallet is its channel product's (representation.order_wallet)
            where["channel_product__startswith"] = f"{params['wallet']}."
        rows, has_more = page(queryset, params=params, id_field="pk", where=where)
        return Response({"data": [order_as_api(o) for o in rows], "has_more": has_more})


class OrderDetailView(PaymentsView):
    @api_schema(operation_id="orders_retrieve", summary="Query an order", tags=["orders"],
                description="If the order is pending, aggpay asks the channel before answering (at most once "
                            "every few seconds per order).",
                responses={200: OrderOutputSerializer}, errors=(403, 404))
    def get(self, request, out_trade_no):
        order = order_get(merchant=request.auth.merchant, out_trade_no=out_trade_no)
        if order.state == OrderState.PENDING:
            order = order_sync(order_id=order.pk)
        return Response(order_as_api(order))


class OrderCloseView(PaymentsView):
    @api_schema(operation_id="orders_close", summary="Close a pending order", tags=["orders"], request=None,
                description="Asks the channel first. `409 invalid_state` if the order is paid (long before, or just "
                            "before or during the close: refund it instead); the answer then carries the paid order "
                            "under `order`. A channel "
                            "that does not answer is not an error: `200` with the order still `pending` (its "
                            "`expires_at` now), closed in the background — `order.closed` or `order.succeeded` "
                            "follows. A payment-code order whose payer is still confirming gets the same `200` "
                            "`pending` (the channel will not close it, and the payer may still pay): reverse it "
                            "instead. Takes no body: none, or `{}` (any field is a `400` naming it).",
                responses={200: OrderOutputSerializer}, errors=(403, 404, 409, 502),
                error_descriptions={400: "`invalid_request`: the body has a field (`param` names it; close takes "
                                         "none) or is not JSON",
                                    409: "`invalid_state`: the order is no longer pending (paid, closed "
                                         "or failed); the answer carries it under `order`",
                                    502: "`channel_error`: the channel refused the close (`channel_code`, "
                                         "`channel_message`); the order, unchanged, under `order`"})
    def post(self, request, out_trade_no):
        require_no_fields(request.data, operation="close")
        order = order_get(merchant=request.auth.merchant, out_trade_no=out_trade_no)
        return Response(order_as_api(order_close(order_id=order.pk, actor_label=api_actor(request))))


class OrderReverseView(PaymentsView):
    def get_permissions(self):
        # A reverse of a paid order refunds it: the same permission as a refund (OrderRefundsView).
        return [IsMerchantApp(), HasScope("payments")(), MerchantMayRefund()]

    @api_schema(operation_id="orders_reverse", summary="Reverse (撤销) a payment-code order", tags=["orders"],
                request=None, description="Closes the order if unpaid, refunds it if paid. A channel that does "
                                          "not answer is not an error: `200` with the order as it was (`pending` "
                                          "or `succeeded`) while aggpay asks again; `order.reversed` follows. "
                                          "Refunds of the order are refused meanwhile. Sending the reverse "
                                          "again is safe, also once it has ended the order: `200` with the order "
                                          "`reversed` (or `closed`, when the channel held no trade to reverse). "
                                          "Takes no body: none, or `{}` (any field is a `400` naming it).",
                responses={200: OrderOutputSerializer}, errors=(403, 404, 409, 502),
                error_descriptions={400: "`invalid_request`: the body has a field (`param` names it; reverse takes "
                                         "none) or is not JSON",
                                    409: "`invalid_state`: not a payment-code order, one that ended otherwise "
                                         "(closed by a close, failed), or one that has refunds; the answer "
                                         "carries it under `order`",
                                    502: "`channel_error`: the channel refused the reverse (`channel_code`, "
                                         "`channel_message`); the order, unchanged, under `order`"})
    def post(self, request, out_trade_no):
        require_no_fields(request.data, operation="reverse")
        order = order_get(merchant=request.auth.merchant, out_trade_no=out_trade_no)
        return Response(order_as_api(order_reverse(order_id=order.pk)))


class OrderRefundsView(PaymentsView):
    def get_permissions(self):
        if self.request.method == "POST":
            return [IsMerchantApp(), HasScope("payments")(), MerchantMayRefund()]
        return super().get_permissions()

    @api_schema(operation_id="refunds_list", summary="List an order's refunds", tags=["refunds"],
                description="**Addition to the contract** (which has no way to list them): the order's refunds, "
                            "newest first, in the list format of every list.",
                parameters=[RefundListParamsSerializer], responses={200: RefundListOutputSerializer},
                errors=(403, 404))
    def get(self, request, out_trade_no):
        order = order_get(merchant=request.auth.merchant, out_trade_no=out_trade_no)
        params = parse_list_params(RefundListParamsSerializer, request.query_params)
        where = {"state": params["state"]} if params.get("state") else None
        rows, has_more = page(Refund.objects.filter(order=order), params=params, id_field="pk", where=where)
        for refund in rows:
            refund.order = order  # refund_as_api reads the order's out_trade_no: the one already loaded
        return Response({"data": [refund_as_api(r) for r in rows], "has_more": has_more})

    @api_schema(operation_id="refunds_create", summary="Refund an order (partially or fully)", tags=["refunds"],
                request=RefundCreateInputSerializer,
                responses={201: RefundOutputSerializer,
                           200: OpenApiResponse(RefundOutputSerializer, description="replayed (same out_refund_no "
                                                                                    "and parameters)")},
                errors=(403, 404, 409, 422, 502), replays=True)
    def post(self, request, out_trade_no):
        order = order_get(merchant=request.auth.merchant, out_trade_no=out_trade_no)
        data = RefundCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        refund, replayed = refund_create(order=order, actor_label=api_actor(request), **data.validated_data)
        if replayed:
            return Response(refund_as_api(refund), status=status.HTTP_200_OK, headers=REPLAYED)
        return Response(refund_as_api(refund), status=status.HTTP_201_CREATED)


class RefundDetailView(PaymentsView):
    @api_schema(operation_id="refunds_retrieve", summary="Query a refund", tags=["refunds"],
                description="If the refund is pending, aggpay asks the channel before answering (at most once "
                            "every few seconds per refund).",
                responses={200: RefundOutputSerializer}, errors=(403, 404))
    def get(self, request, out_refund_no):
        refund = refund_get(merchant=request.auth.merchant, out_refund_no=out_refund_no)
        if refund.state == "pending":
            refund = refund_sync(refund_id=refund.pk)
        return Response(refund_as_api(refund))

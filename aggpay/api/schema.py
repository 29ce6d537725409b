"""OpenAPI pieces shared by every merchant API operation: the signing security scheme, the error envelope
component, the response headers, and ``api_schema`` — ``extend_schema`` with those filled in, so each operation
documents every status code it can answer (design §9)."""

from __future__ import annotations

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from aggpay.api.errors import ERROR_CODES
from aggpay.api.signing import HMAC_SCHEME, RSA_SCHEME
from aggpay.api.strict import TEXT_PATTERN

SIGNING_DESCRIPTION = f"""\
Every request is signed by the calling app (see docs/api.md for worked examples).

    Authorization: {HMAC_SCHEME} app_id="<app_id>",timestamp="<unix seconds>",nonce="<16-64 [A-Za-z0-9]>",signature="<base64>"

    string_to_sign = METHOD "\\n" PATH_AND_QUERY "\\n" TIMESTAMP "\\n" NONCE "\\n" BODY "\\n"
    signature      = base64(HMAC-SHA256(app_secret, string_to_sign))

RSA apps use the scheme `{RSA_SCHEME}` with signature = base64(RSA-PKCS1v1.5-SHA256(private key,
string_to_sign)). PATH_AND_QUERY is the request target exactly as sent; BODY the exact body bytes (empty for GET).
The timestamp must be within 300 s of aggpay's clock and a nonce may be used once per app in 15 minutes.
Responses carry Aggpay-Timestamp, Aggpay-Nonce and Aggpay-Signature = base64(HMAC-SHA256(app_secret,
TIMESTAMP "\\n" NONCE "\\n" BODY "\\n")) — for RSA apps an RSA signature by the aggpay platform key.
"""


class MerchantSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "aggpay.api.authentication.MerchantSignatureAuthentication"
    name = "AggpaySignature"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": SIGNING_DESCRIPTION}


class StrictSerializerSchema(OpenApiSerializerExtension):
    """A StrictSerializer refuses a field it does not know (aggpay.api.strict): its schema says so with
    ``additionalProperties: false``, so a generated client or a schema-driven tester (schemathesis) knows what the API
    refuses. A serializer may add keywords of its own in ``schema_keywords`` (``payer``: one key at most). Bug: the
    request bodies allowed any extra property, and ``payer`` any string key."""

    target_class = "aggpay.api.strict.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        schema.update(getattr(self.target, "schema_keywords", {}))
        return schema


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """A TextField refuses control and bidirectional formatting characters (aggpay.api.strict
    .refuse_hidden_characters): its schema's ``pattern`` says the same."""

    target_class = "aggpay.api.strict.TextField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema["pattern"] = TEXT_PATTERN
        return schema


class ApiErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="one of: " + ", ".join(f"`{code}`" for code in ERROR_CODES))
    message = serializers.CharField(help_text="what went wrong, for a developer")
    param = serializers.CharField(allow_null=True, help_text="the offending field (dotted when nested), or null")
    channel_code = serializers.CharField(allow_null=True, help_text="the payment channel's own error code (502)")
    channel_message = serializers.CharField(allow_null=True, help_text="the payment channel's own words (502)")
    request_id = serializers.CharField(help_text="the same value as the X-Request-Id response header")


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ApiErrorSerializer()
    # Beside ``error``, never inside it: the object a refusal is about, as its own GET answers it (docs/api.md
    # "Errors"). Plain objects here: this envelope is shared by every API, the partner one included.
    order = serializers.JSONField(required=False, help_text=(
        "payments only: the order the refusal is about, as `GET /api/v1/orders/{out_trade_no}` answers it — a close "
        "or reverse refused with `409 invalid_state` (the order as it is: paid, already closed), a create "
        "the channel refused for good (`502`, the `failed` order), a close or reverse the channel refused (`502`, "
        "the order unchanged)"))
    refund = serializers.JSONField(required=False, help_text=(
        "payments only: the refund a `502` is about (the channel refused it for good: the `failed` refund)"))


ERROR_DESCRIPTIONS = {
    400: "`invalid_request`: a field is missing or malformed (`param` names it), or the body is not JSON",
    401: "`invalid_signature`, `timestamp_out_of_window`, `nonce_reused` or `unknown_app`",
    403: "`forbidden` (wrong scope, merchant not active) or `risk_rejected`",
    404: "`not_found`: no such object for this merchant",
    409: "`idempotency_conflict` or `invalid_state`",
    422: "`refund_amount_exceeded` or `product_not_available`",
    429: "`rate_limited`: too many requests",
    500: "`internal_error`: aggpay failed; quote the request_id",
    502: "`channel_error`: the payment channel refused (`channel_code`, `channel_message`)",
}
# Any operation can answer these: a malformed request, a failed signature check, throttling, an internal error.
COMMON_ERRORS = (400, 401, 429, 500)

RESPONSE_HEADERS = [
    OpenApiParameter("X-Request-Id", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True, required=True,
                     description="identifies this request in aggpay's logs; also `error.request_id`"),
    OpenApiParameter("Aggpay-Timestamp", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True,
                     description="unix seconds; part of the response signature (absent when the app is unknown)"),
    OpenApiParameter("Aggpay-Nonce", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True,
                     description="random; part of the response signature (absent when the app is unknown)"),
    OpenApiParameter("Aggpay-Signature", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True,
                     description="base64 signature over TIMESTAMP\\nNONCE\\nBODY\\n (absent when the app is unknown)"),
]


# The header a create's 200 carries when it replays the one the same request made (merchant-api.md "Orders").
REPLAYED_HEADER = OpenApiParameter(
    "Idempotent-Replayed", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200], enum=["true"],
    description="`true`: the same request was made before; this is what it made then, and nothing new was made")


def error_responses(*statuses: int, descriptions: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    descriptions = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {
        status: OpenApiResponse(ErrorEnvelopeSerializer, description=descriptions[status])
        for status in sorted(set(statuses) | set(COMMON_ERRORS))
    }


def api_schema(*, responses: dict, errors: tuple[int, ...] = (), parameters: list | None = None,
               error_descriptions: dict[int, str] | None = None, replays: bool = False, **kwargs):
    """``extend_schema`` for a merchant API operation: ``responses`` for success, ``errors`` for the
    operation-specific error statuses (the common ones are always added; ``error_descriptions`` narrows the generic
    wording to what this operation can answer), the response headers always — with ``replays``, also the
    ``Idempotent-Replayed`` header of its 200."""
    return extend_schema(
        responses={**responses, **error_responses(*errors, descriptions=error_descriptions)},
        parameters=[*(parameters or []), *RESPONSE_HEADERS, *([REPLAYED_HEADER] if replays else [])],
        **kwargs,
    )

"""GET /api/v1/merchant — the calling app's merchant (merchant-api.md "The merchant")."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response

from aggpay.api.credentials import merchant_products
from aggpay.api.schema import api_schema
from aggpay.api.views import MerchantAPIView
from aggpay.platform_keys import platform_key
from merchants.models import AppScope, MerchantState, SignType

# Module-level output serializers with distinct names: drf-spectacular names components after the class, and
# a second "OutputSerializer" elsewhere in the API would collide.


class MerchantProductOutputSerializer(serializers.Serializer):
    product = serializers.CharField(help_text="product code, e.g. `wechat.native`")
    # Same precision as merchants.models.ContractRate.rate, so no rate is rounded on the way out.
    rate = serializers.DecimalField(max_digits=8, decimal_places=6,
                                    help_text="the merchant's fee rate as a decimal string, e.g. `0.006000`; for "
                                              "`barcode` and `cashier`, the highest rate of the wallet products "
                                              "listed that they resolve to (what the order costs at most)")


class MerchantAppOutputSerializer(serializers.Serializer):
    app_id = serializers.CharField()
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=AppScope.choices))
    notify_url = serializers.CharField(allow_blank=True, help_text="default notification URL; empty when not set")
    sign_type = serializers.ChoiceField(choices=SignType.choices,
                                        help_text="`hmac` (AGGPAY-HMAC-SHA256) or `rsa` (AGGPAY-SHA256-RSA2048)")
    platform_public_key = serializers.CharField(
        allow_null=True,
        help_text="RSA apps: aggpay's platform public key (PEM) that signs responses and notifications; "
                  "null for HMAC apps",
    )


class MerchantOutputSerializer(serializers.Serializer):
    merchant_no = serializers.CharField()
    legal_name = serializers.CharField()
    short_name = serializers.CharField()
    state = serializers.ChoiceField(choices=MerchantState.choices)
    products = MerchantProductOutputSerializer(
        many=True, help_text="the products the merchant can order: those with an active contract, and `barcode` and "
                             "`cashier` when a wallet product they resolve to is among them; with rates")
    app = MerchantAppOutputSerializer(help_text="the calling app")


class MerchantView(MerchantAPIView):
    """Needs only an authenticated app: any scope, any merchant state (an onboarding merchant may look itself up)."""

    @api_schema(
        operation_id="merchant_retrieve",
        summary="The authenticated app's merchant",
        description="Merchant number, names, state, the products it can order now (those with an active "
                    "contract, and `barcode` and `cashier` when one of the wallet products they resolve to is "
                    "among them) with their rates, and the calling app's settings.",
        responses={200: MerchantOutputSerializer},
        tags=["merchant"],
    )
    def get(self, request):
        app = request.auth
        merchant = app.merchant
        # Remembered per process under the token authentication read (aggpay.api.credentials).
        products = merchant_products(merchant, token=getattr(request._request, "aggpay_front_door_token", None))
        data = {
            "merchant_no": merchant.merchant_no,
            "legal_name": merchant.legal_name,
            "short_name": merchant.short_name,
            "state": merchant.state,
            # Rendered here rather than through MerchantOutputSerializer (which documents the shape): building DRF
            # fields and their validators on every call cost more than the query (docs/benchmarks.md).
            "products": [{"product": p.product, "rate": f"{p.rate:.6f}"} for p in products],
            "app": {
                "app_id": app.app_id,
                "scopes": app.scopes,
                "notify_url": app.notify_url,
                "sign_type": app.sign_type,
                "platform_public_key": platform_key().public_key_pem if app.sign_type == SignType.RSA else None,
            },
        }
        return Response(data)

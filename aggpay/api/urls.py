"""Routes under /api/v1/ (merchant-api.md). Every view here subclasses aggpay.api.views.MerchantAPIView so
that requests are authenticated and responses signed in one place (tests/aggpay/test_api_signing.py checks)."""

from django.urls import path, re_path

from aggpay.api.events import EventListView
from aggpay.api.merchant import MerchantView
from aggpay.api.partner import (
    PartnerMerchantDetailView,
    PartnerMerchantDocumentsView,
    PartnerMerchantListView,
)
from aggpay.api.views import NotFoundView
from trades.api.orders import (
    OrderCloseView,
    OrderDetailView,
    OrderRefundsView,
    OrderReverseView,
    OrdersView,
    RefundDetailView,
)
from trades.api.statements import StatementView

# out_trade_no / out_refund_no as merchant-api.md allows them (the pattern also goes into the OpenAPI document).
OUT_TRADE_NO = r"(?P<out_trade_no>[0-9A-Za-z_-]{6,32})"
OUT_REFUND_NO = r"(?P<out_refund_no>[0-9A-Za-z_-]{1,64})"

urlpatterns = [
    path("merchant", MerchantView.as_view(), name="api-merchant"),
    path("events", EventListView.as_view(), name="api-events"),
    # Partner onboarding (merchant-api.md "Partner onboarding").
    path("merchants", PartnerMerchantListView.as_view(), name="api-partner-merchants"),
    # merchant_no is ours (M + digits; at most 32 characters): the pattern also goes into the OpenAPI document.
    re_path(r"^merchants/(?P<merchant_no>[A-Za-z0-9_-]{1,32})$", PartnerMerchantDetailView.as_view(),
            name="api-partner-merchant"),
    re_path(r"^merchants/(?P<merchant_no>[A-Za-z0-9_-]{1,32})/documents$", PartnerMerchantDocumentsView.as_view(),
            name="api-partner-merchant-documents"),
    # Orders and refunds (merchant-api.md "Orders", "Refunds").
    path("orders", OrdersView.as_view(), name="api-orders"),
    re_path(rf"^orders/{OUT_TRADE_NO}$", OrderDetailView.as_view(), name="api-order"),
    re_path(rf"^orders/{OUT_TRADE_NO}/close$", OrderCloseView.as_view(), name="api-order-close"),
    re_path(rf"^orders/{OUT_TRADE_NO}/reverse$", OrderReverseView.as_view(), name="api-order-reverse"),
    re_path(rf"^orders/{OUT_TRADE_NO}/refunds$", OrderRefundsView.as_view(), name="api-order-refunds"),
    re_path(rf"^refunds/{OUT_REFUND_NO}$", RefundDetailView.as_view(), name="api-refund"),
    # Statements (merchant-api.md "Statements"): any one path segment, so that a malformed date is a 400 naming
    # `date` rather than a 404.
    re_path(r"^bills/(?P<date>[^/]+)$", StatementView.as_view(), name="api-bills"),
    # Add new operations above this line. The catch-all must stay last: any other path under /api/v1/
    # answers 404 in the JSON envelope instead of Django's HTML page — [\s\S], not ".", so that a path with a
    # newline (%0A) is authenticated and signed like any other.
    re_path(r"^[\s\S]*$", NotFoundView.as_view(), name="api-not-found"),
]

"""Routes under /api/v1/ (merchant-api.md). Every view here subclasses aggpay.api.views.MerchantAPIView so
that requests are authenticated and responses signed in one place (tests/aggpay/test_api_signing.py checks)."""

from django.urls import path, re_path

from aggpay.api.merchant import MerchantView
from aggpay.api.views import NotFoundView

urlpatterns = [
    path("merchant", MerchantView.as_view(), name="api-merchant"),
    # Add new operations above this line. The catch-all must stay last: any other path under /api/v1/
    # answers 404 in the JSON envelope instead of Django's HTML page.
    re_path(r"^.*$", NotFoundView.as_view(), name="api-not-found"),
]

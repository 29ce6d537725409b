"""URL map: staff back office, merchant API, API docs, health, payer pages, and (opt-in) channel simulators."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from aggpay.health import healthz
from channels.callbacks import channel_callback

urlpatterns = [
    # The merchant API and the channels' callbacks first: Django tries patterns in order, and the staff pages'
    # catch-all prefix ("") made every API call walk all of them before reaching its own (9% of a signed
    # GET /api/v1/merchant's CPU, docs/benchmarks.md).
    path("api/v1/", include("aggpay.api.urls")),
    # Channel callbacks: one URL per channel account (design §5 rule 4).
    path("callbacks/<slug:account_code>/", channel_callback, name="channel-callback"),
    path("", include("aggpay.staff.urls")),
    path("admin/", admin.site.urls),
    path("staff/channels/", include("channels.urls")),
    path("staff/onboarding/batch/", include("merchants.urls_batch")),
    path("staff/merchants/", include("merchants.urls")),
    path("staff/trades/", include("trades.urls")),
    path("staff/risk/notices/", include("risk.urls")),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-redoc",
    ),
    path("healthz", healthz, name="healthz"),
    path("", include("trades.onecode.urls")),
]

# JSON error envelope for /api/ paths outside the DRF views; HTML pages elsewhere.
handler400 = "aggpay.api.errors.handler400"
handler404 = "aggpay.api.errors.handler404"
handler500 = "aggpay.api.errors.handler500"

if settings.AGGPAY_SIMULATORS:
    # Channel simulators mounted in-process (the demo). Adapters still reach them over HTTP (design §6).
    urlpatterns.append(path("_sim/", include("channels.simulators.urls")))

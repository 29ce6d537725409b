"""Risk's staff pages, mounted at /staff/risk/notices/ by aggpay/urls.py (namespace ``risk``)."""

from django.urls import path

from risk import views

app_name = "risk"

urlpatterns = [
    # The queue of channel risk notices (渠道风险通知), one notice, and handling it.
    path("", views.notices, name="notices"),
    path("<int:pk>/", views.notice_detail, name="notice"),
    path("<int:pk>/handle/", views.notice_handle, name="notice_handle"),
]

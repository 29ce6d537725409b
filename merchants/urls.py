"""Onboarding workbench pages under /staff/merchants/ (namespace ``merchants``). The two queues keep their section
URLs (/staff/onboarding/ and /staff/risk/, see aggpay/staff/urls.py) so the sidebar and bookmarks stay put."""

from django.urls import path
from django.views.generic import RedirectView

from merchants import views

app_name = "merchants"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="staff:onboarding", permanent=False)),
    path("new/", views.merchant_create, name="create"),
    path("bulk-submit/", views.bulk_submit, name="bulk_submit"),
    path("review/<int:application_id>/", views.review_detail, name="review"),
    path("review/<int:application_id>/take/", views.review_take, name="review_take"),
    path("review/<int:application_id>/<slug:decision>/", views.review_decide, name="review_decide"),
    path("rates/", views.rates_lookup, name="rates_lookup"),
    path("<str:merchant_no>/", views.merchant_detail, name="detail"),
    path("<str:merchant_no>/rates/", views.merchant_rates, name="rates"),
    path("<str:merchant_no>/edit/", views.merchant_edit, name="edit"),
    path("<str:merchant_no>/submit/", views.application_submit, name="submit"),
    path("<str:merchant_no>/freeze/", views.merchant_freeze, name="freeze"),
    path("<str:merchant_no>/unfreeze/", views.merchant_unfreeze, name="unfreeze"),
    path("<str:merchant_no>/documents/", views.document_upload, name="document_upload"),
    path("<str:merchant_no>/documents/<int:document_id>/", views.document_file, name="document"),
    path("<str:merchant_no>/contracts/<int:contract_id>/resubmit/", views.contract_resubmit,
         name="contract_resubmit"),
    path("<str:merchant_no>/contracts/<int:contract_id>/refresh/", views.contract_refresh, name="contract_refresh"),
    path("<str:merchant_no>/contracts/<int:contract_id>/rate/", views.contract_rate, name="contract_rate"),
    path("<str:merchant_no>/contracts/<int:contract_id>/sub-appid/", views.contract_sub_appid,
         name="contract_sub_appid"),
    path("<str:merchant_no>/contracts/<int:contract_id>/sign-qr.svg", views.contract_sign_qr,
         name="contract_sign_qr"),
    # Risk's (merchants.views ``contract_limit``); before the clerk's transitions, whose ``action`` would match them.
    path("<str:merchant_no>/contracts/<int:contract_id>/limit/", views.contract_limit, name="contract_limit"),
    path("<str:merchant_no>/contracts/<int:contract_id>/lift-limit/", views.contract_lift_limit,
         name="contract_lift_limit"),
    path("<str:merchant_no>/contracts/<int:contract_id>/<slug:action>/", views.contract_transition,
         name="contract_transition"),
    path("<str:merchant_no>/partner/", views.merchant_partner, name="partner"),
    path("<str:merchant_no>/apps/new/", views.app_issue, name="app_issue"),
    path("<str:merchant_no>/apps/<str:app_id>/", views.app_detail, name="app_detail"),
    path("<str:merchant_no>/apps/<str:app_id>/reveal/", views.app_reveal, name="app_reveal"),
    path("<str:merchant_no>/apps/<str:app_id>/rotate/", views.app_rotate, name="app_rotate"),
    path("<str:merchant_no>/apps/<str:app_id>/notify-url/", views.app_notify_url, name="app_notify_url"),
    path("<str:merchant_no>/apps/<str:app_id>/public-key/", views.app_public_key, name="app_public_key"),
    path("<str:merchant_no>/apps/<str:app_id>/platform-public-key.pem", views.app_platform_key,
         name="app_platform_key"),
    path("<str:merchant_no>/apps/<str:app_id>/<slug:action>/", views.app_active, name="app_active"),
]

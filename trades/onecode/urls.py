"""Mounted at the site root by aggpay/urls.py: payer pages (public) and the staff store-code pages."""

from django.urls import path

from trades.onecode import views_payer, views_staff

app_name = "onecode"

urlpatterns = [
    # Payer pages (merchant-api.md "Payer-facing pages").
    path("c/<str:code>", views_payer.scan, name="scan"),
    path("c/<str:code>/oauth", views_payer.scan_oauth, name="scan-oauth"),
    path("c/<str:code>/pay", views_payer.scan_pay, name="scan-pay"),
    path("c/<str:code>/return/<str:ref>", views_payer.scan_return, name="scan-return"),
    path("cashier/<str:token>", views_payer.cashier, name="cashier"),
    path("cashier/<str:token>/oauth", views_payer.cashier_oauth, name="cashier-oauth"),
    path("pay/<str:token>", views_payer.order_page, name="order"),
    path("pay/<str:token>/status", views_payer.order_status, name="order-status"),
    # Staff: store codes.
    path("staff/store-codes/", views_staff.merchant_search, name="staff-index"),
    path("staff/store-codes/codes/", views_staff.code_list, name="staff-codes"),
    path("staff/store-codes/merchants/<int:merchant_id>/", views_staff.merchant_codes, name="staff-merchant"),
    path("staff/store-codes/<int:code_id>.png", views_staff.code_png, name="staff-png"),
    path("staff/store-codes/<int:code_id>.svg", views_staff.code_svg, name="staff-svg"),
    path("staff/store-codes/<int:code_id>/active", views_staff.code_active, name="staff-active"),
    path("staff/store-codes/batches/<str:batch>/", views_staff.batch_sheet, name="staff-batch"),
]

"""The trade workbench (namespace ``trades``), mounted at /staff/trades/ by aggpay/urls.py."""

from django.urls import path

from trades import views

app_name = "trades"

urlpatterns = [
    path("", views.search, name="search"),
    path("queues/<slug:slug>/", views.queue, name="queue"),
    path("queues/exhausted/<str:merchant_no>/resend/", views.resend_exhausted, name="resend-exhausted"),
    path("deliveries/<int:delivery_id>/resend/", views.delivery_resend, name="delivery-resend"),
    path("late-payments/<int:late_payment_id>/refund/", views.late_refund, name="late-refund"),
    path("late-payments/<int:late_payment_id>/settle/", views.late_settle, name="late-settle"),
    path("refunds/<str:refund_id>/handled/", views.refund_abnormal_handled, name="refund-handled"),
    path("refunds/<str:refund_id>/record-refunded/", views.refund_record_refunded, name="refund-record-refunded"),
    path("<str:order_id>/", views.detail, name="detail"),
    path("<str:order_id>/refund/", views.refund, name="refund"),
    path("<str:order_id>/sync/", views.sync, name="sync"),
    path("<str:order_id>/close/", views.close, name="close"),
    path("<str:order_id>/reverse-retry/", views.reverse_retry, name="reverse-retry"),
    path("<str:order_id>/handled/", views.order_handled, name="order-handled"),
    path("<str:order_id>/requery/", views.order_requery, name="order-requery"),
]

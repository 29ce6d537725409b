"""The trade workbench (namespace ``trades``), mounted at /staff/trades/ by aggpay/urls.py."""

from django.urls import path, register_converter

from trades import views


class NumberConverter:
    """An order, refund or merchant number in the path: ``str`` without NUL. PostgreSQL refuses a NUL byte in a text
    parameter, so ``/staff/trades/ord_%00/`` answered 500 from the lookup; no number has one, so it is 404."""

    regex = "[^/\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(NumberConverter, "trade_number")

app_name = "trades"

urlpatterns = [
    path("", views.search, name="search"),
    path("queues/<slug:slug>/", views.queue, name="queue"),
    path("queues/exhausted/<trade_number:merchant_no>/resend/", views.resend_exhausted, name="resend-exhausted"),
    path("deliveries/<int:delivery_id>/resend/", views.delivery_resend, name="delivery-resend"),
    path("late-payments/<int:late_payment_id>/refund/", views.late_refund, name="late-refund"),
    path("late-payments/<int:late_payment_id>/settle/", views.late_settle, name="late-settle"),
    path("refunds/<trade_number:refund_id>/handled/", views.refund_abnormal_handled, name="refund-handled"),
    path("<trade_number:order_id>/", views.detail, name="detail"),
    path("<trade_number:order_id>/refund/", views.refund, name="refund"),
    path("<trade_number:order_id>/sync/", views.sync, name="sync"),
    path("<trade_number:order_id>/close/", views.close, name="close"),
    path("<trade_number:order_id>/reverse-retry/", views.reverse_retry, name="reverse-retry"),
    path("<trade_number:order_id>/handled/", views.order_handled, name="order-handled"),
    path("<trade_number:order_id>/requery/", views.order_requery, name="order-requery"),
]

from django.apps import AppConfig


class AggpayConfig(AppConfig):
    name = "aggpay"
    label = "aggpay"
    verbose_name = "aggpay platform"
    default_auto_field = "django.db.models.BigAutoField"

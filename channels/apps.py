from django.apps import AppConfig


class PaymentChannelsConfig(AppConfig):
    # "channels" here means *payment* channels (style.md: naming note), not Django Channels.
    name = "channels"
    label = "channels"
    verbose_name = "Payment channels"

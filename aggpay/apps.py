from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AggpayConfig(AppConfig):
    name = "aggpay"
    label = "aggpay"
    verbose_name = "aggpay platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Roles live in code (aggpay/roles.py); re-sync after every migrate so that permissions of models
        # added later by other apps attach to the groups without a new data migration.
        from aggpay.roles import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="aggpay.roles.sync")

        # The API front door remembers apps and products per process; saves of what they come from invalidate.
        from aggpay.api import credentials

        credentials.connect_signals()

        # A staff session ends a fixed time after its sign-in (aggpay/staff/session_age.py).
        from django.contrib.auth.signals import user_logged_in

        from aggpay.staff.session_age import session_stamp_sign_in

        user_logged_in.connect(session_stamp_sign_in, dispatch_uid="aggpay.staff.session_age.stamp")

        from django.conf import settings

        if settings.AGGPAY_INPROCESS_BEAT:
            from aggpay import inprocess_beat

            inprocess_beat.start(tick_seconds=settings.AGGPAY_INPROCESS_BEAT_SECONDS)

"""python manage.py seed_demo — the demo data set (aggpay/management/demo.py), safe to run again and again.

Creates what is missing and leaves what exists alone: one staff user per role, the active merchant
"Demo Tea House" with its fixed HMAC payments app, and the demo channel accounts (when the channel
configuration module is installed). Everything goes through the services, so each row has its audit entry.
"""

from __future__ import annotations

import importlib

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from aggpay.management import demo
from merchants.models import Merchant, MerchantApp


class Command(BaseCommand):
    help = "Create the demo staff users, merchant, API app and channel accounts if missing (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--skip-staff", action="store_true", help="do not create the staff users")
        parser.add_argument("--skip-channels", action="store_true", help="do not seed the demo channel accounts")

    def handle(self, *args, **options):
        with transaction.atomic():
            if not options["skip_staff"]:
                self._seed_staff()
            merchant = self._seed_merchant()
            self._seed_app(merchant)
        if not options["skip_channels"]:
            self._seed_channels()
            self._seed_contracts(merchant)
        self.stdout.write(self.style.SUCCESS("demo data ready — `python manage.py demo_credentials` prints the logins"))

    def _say(self, created: bool, what: str) -> None:
        self.stdout.write(f"  {'created' if created else 'exists '} {what}")

    def _seed_staff(self) -> None:
        from aggpay.staff.services import staff_user_create

        users = get_user_model().objects
        for login in demo.demo_logins():
            exists = users.filter(username=login.username).exists()
            if not exists:
                staff_user_create(username=login.username, password=login.password, role=login.role,
                                  actor=demo.SEED_ACTOR)
            self._say(not exists, f"staff user {login.username!r} ({login.role_label})")

    def _seed_merchant(self) -> Merchant:
        from merchants.services.merchants import merchant_activate, merchant_create

        merchant = Merchant.objects.filter(merchant_no=demo.DEMO_MERCHANT_NO).first()
        created = merchant is None
        if created:
            merchant = merchant_create(actor=demo.SEED_ACTOR, legal_name=demo.DEMO_MERCHANT_LEGAL_NAME,
                                       short_name=demo.DEMO_MERCHANT_SHORT_NAME, merchant_no=demo.DEMO_MERCHANT_NO)
            merchant = merchant_activate(merchant_id=merchant.pk, actor=demo.SEED_ACTOR, reason="demo seed")
        self._say(created, f"merchant {merchant.merchant_no} {merchant.short_name!r} ({merchant.state})")
        return merchant

    def _seed_app(self, merchant: Merchant) -> None:
        from merchants.services.apps import merchant_app_create

        exists = MerchantApp.objects.filter(app_id=demo.DEMO_APP_ID).exists()
        if not exists:
            merchant_app_create(merchant=merchant, actor=demo.SEED_ACTOR, scopes=demo.DEMO_APP_SCOPES,
                                notify_url=demo.DEMO_NOTIFY_URL, app_id=demo.DEMO_APP_ID,
                                secret=demo.DEMO_APP_SECRET, name="demo")
        self._say(not exists, f"API app {demo.DEMO_APP_ID} (HMAC, scopes {', '.join(demo.DEMO_APP_SCOPES)})")

    def _seed_contracts(self, merchant: Merchant) -> None:
        from channels.services.demo import demo_merchant_contracts_seed

        for code in demo_merchant_contracts_seed(merchant=merchant):
            self._say(True, f"active contract of {merchant.merchant_no} on {code}")

    def _seed_channels(self) -> None:
        try:
            module = importlib.import_module("channels.services.demo")
        except ModuleNotFoundError as exc:
            if exc.name != "channels.services.demo":
                raise
            self.stdout.write(self.style.WARNING(
                "  skipped demo channel accounts: channels.services.demo is not installed yet"))
            return
        report = module.demo_channel_accounts_seed()
        lines = report.lines() if hasattr(report, "lines") else ["demo channel accounts seeded"]
        for line in lines:
            self.stdout.write(f"  {line}")

"""python manage.py demo_credentials [--json] — the demo logins, the demo app's id and secret, the base URL.

Prints the constants of aggpay/management/demo.py and says whether ``seed_demo`` has put them in this database.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from aggpay.management import demo
from merchants.models import MerchantApp


def demo_credentials() -> dict:
    base_url = settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/")
    logins = demo.demo_logins()
    try:
        seeded_users = set(
            get_user_model().objects.filter(username__in=[login.username for login in logins])
            .values_list("username", flat=True)
        )
        app_seeded = MerchantApp.objects.filter(app_id=demo.DEMO_APP_ID).exists()
        partner_seeded = MerchantApp.objects.filter(app_id=demo.DEMO_PARTNER_APP_ID,
                                                    merchant__is_partner=True).exists()
        store_code = demo.demo_store_code()
    except DatabaseError:  # not migrated yet: still print what the seed would create
        seeded_users, app_seeded, partner_seeded, store_code = set(), False, False, None
    return {
        "base_url": base_url,
        "staff_login_url": f"{base_url}{settings.LOGIN_URL}",
        "api_docs_url": f"{base_url}/api/docs/",
        "staff": [
            {"role": login.role, "role_label": login.role_label, "username": login.username,
             "password": login.password, "seeded": login.username in seeded_users}
            for login in logins
        ],
        "merchant": {"merchant_no": demo.DEMO_MERCHANT_NO, "name": demo.DEMO_MERCHANT_SHORT_NAME},
        "app": {"app_id": demo.DEMO_APP_ID, "secret": demo.DEMO_APP_SECRET, "sign_type": "AGGPAY-HMAC-SHA256",
                "scopes": demo.DEMO_APP_SCOPES, "notify_url": demo.DEMO_NOTIFY_URL, "seeded": app_seeded},
        "partner": {"merchant_no": demo.DEMO_PARTNER_NO, "name": demo.DEMO_PARTNER_SHORT_NAME,
                    "app": {"app_id": demo.DEMO_PARTNER_APP_ID, "secret": demo.DEMO_PARTNER_APP_SECRET,
                            "sign_type": "AGGPAY-HMAC-SHA256", "scopes": demo.DEMO_PARTNER_APP_SCOPES},
                    "seeded": partner_seeded},
        "store_code": {"store_no": demo.DEMO_STORE_NO, "name": demo.DEMO_STORE_NAME,
                       "url": f"{base_url}/c/{store_code.code}" if store_code else None,
                       "seeded": store_code is not None},
    }


class Command(BaseCommand):
    help = "Print the demo staff logins and the demo merchant app's app_id/secret (demo only)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, **options):
        data = demo_credentials()
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
            return
        out = self.stdout.write
        out(f"aggpay demo at {data['base_url']}/  (staff login: {data['staff_login_url']})")
        out("")
        out("Staff logins (demo only):")
        for user in data["staff"]:
            note = "" if user["seeded"] else "   [not seeded: run `python manage.py seed_demo`]"
            out(f"  {user['role_label']:<18} {user['username']:<10} {user['password']}{note}")
        out("")
        app = data["app"]
        out(f"Merchant {data['merchant']['merchant_no']} {data['merchant']['name']!r}, API app (demo only):")
        out(f"  app_id  {app['app_id']}")
        out(f"  secret  {app['secret']}")
        out(f"  signing {app['sign_type']} — see docs/api.md; API docs at {data['api_docs_url']}")
        if not app["seeded"]:
            out("  [not seeded: run `python manage.py seed_demo`]")
        partner = data["partner"]
        out("")
        out(f"Partner {partner['merchant_no']} {partner['name']!r}, partner onboarding API app (demo only):")
        out(f"  app_id  {partner['app']['app_id']}")
        out(f"  secret  {partner['app']['secret']}")
        out(f"  scopes  {', '.join(partner['app']['scopes'])} — POST /api/v1/merchants, see docs/api.md "
            "\"Partner onboarding\"")
        if not partner["seeded"]:
            out("  [not seeded: run `python manage.py seed_demo`]")
        store_code = data["store_code"]
        out("")
        out(f"Store code (一码付) of {store_code['name']}:")
        if store_code["seeded"]:
            out(f"  {store_code['url']}  — open it with a WeChat or Alipay User-Agent, pay with the wallet stand-in")
        else:
            out("  [not seeded: run `python manage.py seed_demo`]")

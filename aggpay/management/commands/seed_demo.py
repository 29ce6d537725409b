"""python manage.py seed_demo — the demo data set (aggpay/management/demo.py), safe to run again and again.

Creates what is missing and leaves what exists alone: one staff user per role, the active merchant
"Demo Tea House" with its fixed HMAC payments app, the demo channel accounts (when the channel
configuration module is installed), five applicants at the onboarding desk (aggpay/management/demo_onboarding.py),
and — on the demo's in-process simulators — a morning of the shop's trades
(aggpay/management/demo_trades.py), after which WeChat Pay's simulator sends one violation notice about the shop
(aggpay/management/demo_risk.py). Everything goes through the services, so each row has its audit entry; the
trades go through the public interfaces only (the signed merchant API and the simulators' payer endpoints).
"""

from __future__ import annotations

import importlib
import ipaddress
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from aggpay.management import demo, demo_risk, demo_trades
from channels.models import ChannelAccount
from merchants.models import Merchant, MerchantApp


def refuse_outside_demo(*, allow_published_passwords: bool) -> None:
    """Raise CommandError where the demo data would be a back door: its staff users' passwords and its app's HMAC
    secret are printed in README.md, so in a deployment anyone could sign in as admin or sign API calls.

    - With DEBUG and AGGPAY_SIMULATORS both off (a deployment's settings) only ``--allow-published-passwords``
      lets it run — `make seed` passes it for `make up`'s local stack, where a person asked for the demo logins.
    - Never where a channel account points anywhere but this machine: the demo's accounts talk to the simulators
      on loopback, a real one to api.mch.weixin.qq.com or openapi.alipay.com — a database that moves real money,
      whatever the settings say."""
    real = [account for account in ChannelAccount.objects.only("code", "base_url").order_by("code")
            if not _on_this_machine(account.base_url)]
    if real:
        names = ", ".join(f"{account.code} ({urlsplit(account.base_url).hostname})" for account in real[:5])
        raise CommandError(f"seed_demo refused: channel accounts reach real gateways ({names}); the demo's staff "
                           "passwords and app secret are published in README.md and must never be in this database")
    if not (settings.DEBUG or settings.AGGPAY_SIMULATORS or allow_published_passwords):
        raise CommandError("seed_demo refused: DEBUG and AGGPAY_SIMULATORS are off, so this looks like a deployment, "
                           "and the demo's staff passwords and app secret are published in README.md. If this "
                           "database is a demo, run it again with --allow-published-passwords (`make seed` does)")


def _on_this_machine(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "Create the demo staff users, merchant, API app and channel accounts if missing (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--skip-staff", action="store_true", help="do not create the staff users")
        parser.add_argument("--skip-channels", action="store_true",
                            help="do not seed the demo channel accounts (nor, then, the trades)")
        parser.add_argument("--skip-trades", action="store_true", help="do not make the demo trades")
        parser.add_argument("--skip-onboarding", action="store_true",
                            help="do not add the applicants waiting at the onboarding desk")
        parser.add_argument("--allow-published-passwords", action="store_true",
                            help="seed although DEBUG and AGGPAY_SIMULATORS are off (`make seed` on `make up`'s "
                                 "database): the staff passwords and the app secret are published in README.md")

    def handle(self, *args, **options):
        refuse_outside_demo(allow_published_passwords=options["allow_published_passwords"])
        with transaction.atomic():
            if not options["skip_staff"]:
                self._seed_staff()
            merchant = self._seed_merchant()
            self._seed_app(merchant)
            self._seed_store_code(merchant)
            self._seed_partner()
        if not options["skip_channels"]:
            self._seed_channels()
            self._seed_contracts(merchant)
        if not options["skip_onboarding"]:
            self._seed_onboarding()
        if not options["skip_channels"] and not options["skip_trades"]:
            self._seed_trades(merchant)
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

    @staticmethod
    def _active_merchant(*, merchant_no: str, legal_name: str, short_name: str) -> tuple[Merchant, bool]:
        """The merchant ``merchant_no``, made and activated through the services if it is not there yet."""
        from merchants.services.merchants import merchant_activate, merchant_create

        merchant = Merchant.objects.filter(merchant_no=merchant_no).first()
        if merchant is not None:
            return merchant, False
        merchant = merchant_create(actor=demo.SEED_ACTOR, legal_name=legal_name, short_name=short_name,
                                   merchant_no=merchant_no)
        return merchant_activate(merchant_id=merchant.pk, actor=demo.SEED_ACTOR, reason="demo seed"), True

    def _app(self, merchant: Merchant, *, label: str, app_id: str, secret: str, scopes, name: str,
             notify_url: str = "") -> None:
        """The HMAC app ``app_id`` of ``merchant``, issued through the service if it is not there yet."""
        from merchants.services.apps import merchant_app_create

        exists = MerchantApp.objects.filter(app_id=app_id).exists()
        if not exists:
            merchant_app_create(merchant=merchant, actor=demo.SEED_ACTOR, scopes=scopes, notify_url=notify_url,
                                app_id=app_id, secret=secret, name=name)
        self._say(not exists, f"{label} {app_id} (HMAC, scopes {', '.join(scopes)})")

    def _seed_merchant(self) -> Merchant:
        merchant, created = self._active_merchant(merchant_no=demo.DEMO_MERCHANT_NO,
                                                  legal_name=demo.DEMO_MERCHANT_LEGAL_NAME,
                                                  short_name=demo.DEMO_MERCHANT_SHORT_NAME)
        self._say(created, f"merchant {merchant.merchant_no} {merchant.short_name!r} ({merchant.state})")
        return merchant

    def _seed_app(self, merchant: Merchant) -> None:
        self._app(merchant, label="API app", app_id=demo.DEMO_APP_ID, secret=demo.DEMO_APP_SECRET,
                  scopes=demo.DEMO_APP_SCOPES, name="demo", notify_url=demo.DEMO_NOTIFY_URL)

    def _seed_partner(self) -> None:
        """The demo partner and its ``onboarding`` app, through the services a risk officer's "make partner" and a
        clerk's "issue app" use (audited). Each step is skipped when done, so a second run adds nothing."""
        from merchants.services.apps import merchant_partner_set

        partner, created = self._active_merchant(merchant_no=demo.DEMO_PARTNER_NO,
                                                 legal_name=demo.DEMO_PARTNER_LEGAL_NAME,
                                                 short_name=demo.DEMO_PARTNER_SHORT_NAME)
        if not partner.is_partner:
            partner = merchant_partner_set(merchant_id=partner.pk, actor=demo.SEED_ACTOR, is_partner=True,
                                           reason=demo.DEMO_PARTNER_REASON)
        self._say(created, f"partner {partner.merchant_no} {partner.short_name!r} ({partner.state})")
        self._app(partner, label="partner API app", app_id=demo.DEMO_PARTNER_APP_ID,
                  secret=demo.DEMO_PARTNER_APP_SECRET, scopes=demo.DEMO_PARTNER_APP_SCOPES, name="demo partner")

    def _seed_store_code(self, merchant: Merchant) -> None:
        """The shop's store and one code for it, through the service the store-code page uses (audited). The store
        is written here: a merchant onboarded from a record gets its stores from the record (merchants.services
        .onboarding), and the demo shop was made without one."""
        from merchants.models import Store
        from trades.onecode.services import storecodes_generate

        store, _ = Store.objects.get_or_create(
            merchant=merchant, store_no=demo.DEMO_STORE_NO,
            defaults={"name": demo.DEMO_STORE_NAME, "address": demo.DEMO_STORE_ADDRESS,
                      "area_code": demo.DEMO_STORE_AREA_CODE})
        code = demo.demo_store_code(merchant.merchant_no)
        created = code is None
        if created:
            (code,) = storecodes_generate(merchant=merchant, store_ids=[store.pk], per_store=1,
                                          actor=demo.SEED_ACTOR)
        base_url = settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/")
        self._say(created, f"store code of {store.name}: {base_url}/c/{code.code} (一码付: open it in WeChat or "
                           "Alipay — or a browser with their User-Agent — and pay with the page's wallet stand-in)")

    def _seed_onboarding(self) -> None:
        from aggpay.management.demo_onboarding import demo_onboarding_seed

        for line in demo_onboarding_seed():
            self.stdout.write(f"  {line}")

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

    def _seed_trades(self, merchant: Merchant) -> None:
        """The demo's trades, made over HTTP against this very application: the channel accounts call back to
        AGGPAY_PUBLIC_BASE_URL and the adapters reach the simulators under it, and the seed runs before runserver,
        so it serves that address itself (demo_trades.serving) while the traffic runs, and stops before runserver
        starts. Only on the in-process simulators (``make demo``): elsewhere (``make seed``) nothing would serve
        them."""
        if not settings.AGGPAY_SIMULATORS:
            self.stdout.write("  skipped demo trades: they are made on the in-process simulators (AGGPAY_SIMULATORS=1, "
                              "`make demo`)")
            return
        have = demo_trades.existing_numbers(merchant)
        trades_done = len(have) == len(demo_trades.SALES)
        if trades_done:
            self._say(False, f"{len(have)} demo trades of {merchant.merchant_no}")
            found = demo_risk.demo_risk_notice_found(merchant)
            if found is not None:
                self._say(False, found.line)
                return
        base_url = settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/")
        started = time.monotonic()
        self.stdout.write(f"  making the demo {'channel risk notice' if trades_done else 'trades'} against "
                          f"{base_url} (served by this command until done)")
        try:
            with demo_trades.quiet_logs(), demo_trades.serving(base_url), \
                    demo_trades.shop_order_server(demo.DEMO_NOTIFY_URL) as listening:
                if not listening:
                    self.stdout.write(self.style.WARNING(
                        f"  {urlsplit(demo.DEMO_NOTIFY_URL).netloc} is taken: the demo shop's notifications go to "
                        "whatever listens there"))
                report = demo_trades.demo_trades_seed(merchant=merchant, base_url=base_url,
                                                      simulator_root=settings.AGGPAY_SIMULATOR_BASE_URL,
                                                      say=self.stdout.write)
                # After the trades, WeChat Pay's simulator sends one violation notice about the shop (demo_risk).
                risk = demo_risk.demo_risk_notice_seed(merchant=merchant,
                                                       simulator_root=settings.AGGPAY_SIMULATOR_BASE_URL)
        except demo_trades.PortInUse as exc:
            port = urlsplit(base_url).port
            raise CommandError(f"cannot make the demo trades: {exc}. Stop what listens there (an aggpay demo "
                               f"already running?) or choose another port: PORT={(port or 8000) + 1} make demo") from None
        except demo_trades.DemoTradesError as exc:
            raise CommandError(f"the demo trades did not complete: {exc}. Running `make demo` again completes "
                               "what is missing.") from None
        if not trades_done:
            self._trades_summary(merchant, report, time.monotonic() - started)
        self._say(risk.created, risk.line)
        if risk.note:
            self.stdout.write(self.style.WARNING(f"  {risk.note}"))

    def _trades_summary(self, merchant: Merchant, report, seconds: float) -> None:
        from trades import workbench
        from trades.models import Order, Refund

        orders = Order.objects.filter(merchant=merchant, out_trade_no__in=demo_trades.planned_numbers())
        states = {}
        for state in orders.values_list("state", flat=True):
            states[state] = states.get(state, 0) + 1
        refunds = Refund.objects.filter(order__in=orders)
        self._say(True, f"{len(report.made)} demo trades in {seconds:.1f} s: "
                        + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
                        + f"; {refunds.count()} refunds")
        counts = workbench.queue_counts()
        self.stdout.write("  queues: " + ", ".join(f"{label.lower()} {counts[slug]}"
                                                   for slug, label in workbench.QUEUE_LABELS.items()))
        today = timezone.localdate().isoformat()
        self.stdout.write(f"  finance's report shows closed days; today's trades: /staff/finance/?to={today}")
        for note in report.notes:
            self.stdout.write(self.style.WARNING(f"  {note}"))

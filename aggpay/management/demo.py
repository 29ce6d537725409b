"""The demo data set: one staff user per role and one active merchant with a fixed API app (its trades:
aggpay/management/demo_trades.py).

FOR THE DEMO ONLY. These passwords and the app secret are published in README.md; a real deployment never runs
``seed_demo`` (``make up`` does not). ``seed_demo`` creates exactly this, ``demo_credentials`` prints it, and
tests/aggpay/test_demo_commands.py checks README.md states the same values, so there is one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

# One password for every demo staff user, so a visitor can try each role without a lookup table.
DEMO_STAFF_PASSWORD = "aggpay-demo-2026"

# role slug (aggpay.roles.ROLES) → demo username. A role added later without an entry here gets its slug.
DEMO_USERNAMES = {
    "onboarding_clerk": "clerk",
    "risk_officer": "risk",
    "support_agent": "support",
    "operations": "ops",
    "finance": "finance",
    "admin": "admin",
}

DEMO_MERCHANT_NO = "M2600000001"
DEMO_MERCHANT_LEGAL_NAME = "Hangzhou Demo Tea House Co., Ltd."
DEMO_MERCHANT_SHORT_NAME = "Demo Tea House"

DEMO_APP_ID = "app_demoteahouse0001"
DEMO_APP_SECRET = "demo-tea-house-secret-not-for-production"
DEMO_APP_SCOPES = ["payments"]
# The shop's order server. It listens only while seed_demo makes the demo trades (demo_trades.shop_order_server,
# or README's "Take a payment" script): later notifications show up as failing deliveries with their retry ladder.
DEMO_NOTIFY_URL = "http://127.0.0.1:8009/notify"

# The shop's store with one store code (一码付, issue 5): its /c/<code> page is how a demo user tries paying from a
# wallet (the page's wallet stand-in plays WeChat or Alipay).
DEMO_STORE_NO = "S001"
DEMO_STORE_NAME = "West Lake branch 西湖店"
DEMO_STORE_ADDRESS = "1 Beishan Road, Xihu District, Hangzhou"
DEMO_STORE_AREA_CODE = "330106"

# The demo partner (an agent that onboards merchants through the partner API, merchant-api.md "Partner onboarding")
# and its app with the ``onboarding`` scope, so a partner developer can try the API from docs/api.md alone.
DEMO_PARTNER_NO = "M2600000002"
DEMO_PARTNER_LEGAL_NAME = "Hangzhou Demo Agency Co., Ltd."
DEMO_PARTNER_SHORT_NAME = "Demo Agency"
DEMO_PARTNER_REASON = "demo partner agreement DEMO-1"
DEMO_PARTNER_APP_ID = "app_demoagency000001"
DEMO_PARTNER_APP_SECRET = "demo-agency-secret-not-for-production"
DEMO_PARTNER_APP_SCOPES = ["onboarding"]

# Audit label for rows the seed writes (aggpay.audit accepts a string actor for non-human callers).
SEED_ACTOR = "system:seed_demo"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    role_label: str
    username: str
    password: str


def demo_logins() -> list[DemoLogin]:
    """The staff logins of the demo, in the role table's order."""
    from aggpay.roles import ROLES

    return [
        DemoLogin(role=role.slug, role_label=role.label, username=DEMO_USERNAMES.get(role.slug, role.slug),
                  password=DEMO_STAFF_PASSWORD)
        for role in ROLES
    ]


def demo_store_code(merchant_no: str = DEMO_MERCHANT_NO):
    """The demo shop's first active store code, or None before the seed made it."""
    from trades.models.store_codes import StoreCode

    return (StoreCode.objects.filter(merchant__merchant_no=merchant_no, store__store_no=DEMO_STORE_NO, active=True)
            .order_by("pk").first())


"""Demo channel accounts (issue 3 "Demo seed"): WeChat ISV, Alipay ISV, Bank A and Bank B, all on the simulators.

Both banks serve WeChat, Alipay and UnionPay products at different costs (design §6: one bank protocol, several
accounts, so routing and switching are real). Credentials come from each simulator's ``provision()``, which plays
"the merchant sets up its account at the channel portal" over HTTP (channels.md). The seed runs before the web
server, so provisioning talks to a temporary simulator thread on a free port; it shares the state file with the
in-process mount (``AGGPAY_SIMULATOR_STATE``), which therefore knows the same accounts afterwards.

Each new account is enabled the way ops would do it: created disabled, its interface evaluation filled in and
taken live through the services, then enabled (an account takes traffic only once its evaluation is live, design
§1; channels.services.accounts.enable_refusal).

Idempotent: an account whose code exists is left alone (ops may have edited it), missing products are added; one
the seed made and a stopped run left disabled, never enabled or disabled since, is enabled once its evaluation is
live.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.urls import reverse

from channels.models import ChannelAccount, ChannelConfigInvalid
from channels.services.accounts import channel_account_create, channel_account_enable, enable_refusal
from channels.services.config import kind_adapter
from channels.services.evaluations import (
    interface_evaluation_approve,
    interface_evaluation_go_live,
    interface_evaluation_save,
    interface_evaluation_start,
    interface_evaluation_start_integrating,
)
from channels.services.products import channel_product_set
from merchants.services.contracts import default_rate, is_online

ACTOR = "demo-seed"

# Offline products (the payer scans a code, shows one, or pays on a store code's page) cost less than online ones
# (in an app or on a web page). Which is which is merchants.services.contracts' one definition (``is_online``), the
# one approval gives its default rates by: with a list of its own here, JSAPI cost the online price on the demo
# while approval defaulted it to the offline rate, and risk could approve no merchant asking for one-code-pay.
IN_WALLET = frozenset({"wechat.jsapi", "wechat.mini", "alipay.jsapi"})  # DemoAccount.in_wallet_rate


# The demo WeChat Pay ISV account (DEMO_ACCOUNTS), whose official-account appid (``sp_appid``, issued by the
# simulator when the seed provisions it) the demo bank contracts name as their ``sub_appid``: demo_bank_sub_appid.
DEMO_WECHAT_ACCOUNT = "wechatpay-isv"


@dataclass(frozen=True)
class DemoAccount:
    code: str
    kind: str
    name: str
    notes: str
    offline_rate: Decimal
    online_rate: Decimal
    rebate_offline: Decimal = Decimal("0")
    rebate_online: Decimal = Decimal("0")
    unionpay_rate: Decimal | None = None  # bank accounts: UnionPay QR is priced apart from the wallets
    # Paying inside the wallet on a page (JSAPI, mini program; offline by ``is_online``): Bank B prices it apart, so
    # that on the demo it holds those orders — one-code-pay's among them — and routing between banks is visible.
    in_wallet_rate: Decimal | None = None
    max_amount: int = 5_000_000  # 50,000.00 yuan per transaction
    daily_cap: int | None = None


DEMO_ACCOUNTS = (
    DemoAccount("wechatpay-isv", "wechatpay", "WeChat Pay ISV",
                "Our 服务商 account at WeChat Pay (API v3, public-key mode). Official rates with ISV rebate.",
                offline_rate=Decimal("0.0038"), online_rate=Decimal("0.0060"),
                rebate_offline=Decimal("0.0008"), rebate_online=Decimal("0.0020")),
    DemoAccount("alipay-isv", "alipay", "Alipay ISV",
                "Our ISV app at the Alipay open platform (直付通). Official rates with ISV rebate.",
                offline_rate=Decimal("0.0038"), online_rate=Decimal("0.0055"),
                rebate_offline=Decimal("0.0010"), rebate_online=Decimal("0.0015")),
    DemoAccount("bank-a", "bank", "Bank A",
                "Indirect acquiring through Bank A: cheapest for offline scanning.",
                offline_rate=Decimal("0.0020"), online_rate=Decimal("0.0030"), unionpay_rate=Decimal("0.0020"),
                daily_cap=100_000_000),
    DemoAccount("bank-b", "bank", "Bank B",
                "Indirect acquiring through Bank B: cheaper online and in the wallet (JSAPI, mini program), dearer "
                "for scanning than Bank A.",
                offline_rate=Decimal("0.0023"), online_rate=Decimal("0.0028"), unionpay_rate=Decimal("0.0025"),
                in_wallet_rate=Decimal("0.0018"), max_amount=2_000_000, daily_cap=50_000_000),
)


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # account code → why
    products_added: int = 0
    evaluations_added: int = 0

    def lines(self) -> list[str]:
        out = [f"channel account {code}: created" for code in self.created]
        out += [f"channel account {code}: exists, left as is" for code in self.existing]
        out += [f"channel account {code}: skipped — {why}" for code, why in self.skipped.items()]
        out.append(f"channel products added: {self.products_added}, evaluations added: {self.evaluations_added}")
        return out


def _product_terms(spec: DemoAccount, product: str) -> dict:
    offline = not is_online(product)
    rate = spec.offline_rate if offline else spec.online_rate
    if product.startswith("unionpay.") and spec.unionpay_rate is not None:
        rate = spec.unionpay_rate
    if product in IN_WALLET and spec.in_wallet_rate is not None:
        rate = spec.in_wallet_rate
    rebate = spec.rebate_offline if offline else spec.rebate_online
    # New merchants are onboarded onto the two ISV accounts and Bank A; Bank B takes traffic only by switching.
    return {"cost_rate": rate, "isv_rebate_rate": rebate, "max_amount": spec.max_amount,
            "daily_cap": spec.daily_cap, "onboards_merchants": spec.code != "bank-b"}


def _provision_function(kind: str):
    """``channels.simulators.<kind>.provision`` or None if that simulator is not written yet."""
    module_name = f"channels.simulators.{kind}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, "provision", None)


def _rebase(config: dict, provisioned_at: str, served_at: str) -> dict:
    """URLs in a provisioned config (e.g. WeChat's OAuth endpoints) that name the temporary provisioning server
    are moved to the simulators the application will actually call."""
    return {key: served_at + value[len(provisioned_at):] if isinstance(value, str) and value.startswith(provisioned_at)
            else value for key, value in config.items()}


# How the demo's channels review onboarding on their own, so a demo user sees contracts move without driving the
# simulators' control API: WeChat approves then waits for the merchant to sign on its sign page; Alipay approves;
# the bank approves after 10 s (its own default).
DEMO_REVIEWS = {
    "wechatpay": ("sp_mchid", {"auto_review": {"delay_seconds": 5, "outcome": "approve"},
                               "settlement_review": {"delay_seconds": 5, "outcome": "approve"}}),
    "alipay": ("app_id", {"auto_review": {"delay_seconds": 5, "outcome": "approve"}}),
}


def _demo_reviews(root: str, kind: str, config: dict) -> None:
    import requests

    if kind not in DEMO_REVIEWS:
        return
    id_field, settings_body = DEMO_REVIEWS[kind]
    response = requests.post(f"{root.rstrip('/')}/{kind}/_control/accounts/{config[id_field]}/settings",
                             json=settings_body, timeout=10)
    response.raise_for_status()


@contextmanager
def provisioning_simulators(simulator_root: str | None = None):
    """The simulators' root URL for set-up calls made before the web server runs (the demo seed): a temporary
    server on the shared state file, so the in-process mount later sees what was set up."""
    if simulator_root is not None:
        yield simulator_root.rstrip("/")
        return
    from channels.simulators.server import SimulatorThread
    from channels.simulators.store import Store

    server = SimulatorThread(Store(settings.AGGPAY_SIMULATOR_STATE)).start()
    try:
        yield server.base_url
    finally:
        server.stop()


def demo_channel_accounts_seed(*, simulator_root: str | None = None) -> SeedReport:
    """Create the four demo accounts and their products (idempotent). Returns what happened.

    ``simulator_root``: a running simulator server to provision at (tests); by default a temporary one is
    started on the shared state file and stopped afterwards.
    """
    report = SeedReport()
    todo = []
    for spec in DEMO_ACCOUNTS:
        if ChannelAccount.objects.filter(code=spec.code).exists():
            report.existing.append(spec.code)
            continue
        provision = _provision_function(spec.kind)
        if provision is None:
            report.skipped[spec.code] = f"the {spec.kind} simulator (channels/simulators/{spec.kind}.py) is not there yet"
            continue
        try:
            kind_adapter(spec.kind)
        except ChannelConfigInvalid as exc:
            report.skipped[spec.code] = exc.message
            continue
        todo.append((spec, provision))

    if todo:
        with provisioning_simulators(simulator_root) as root:
            served = settings.AGGPAY_SIMULATOR_BASE_URL.rstrip("/")
            for spec, provision in todo:
                extra = {}
                if spec.kind == "alipay":
                    # Alipay sends its 蚂蚁消息 (zft onboarding results, B.4/B.7) to the app's gateway URL, set once
                    # in the portal: point it at this account's callback URL.
                    extra["message_url"] = (settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/")
                                            + reverse("channel-callback", args=[spec.code]))
                config = _rebase(provision(root, name=spec.name, **extra), root.rstrip("/"), served)
                _demo_reviews(root, spec.kind, config)
                channel_account_create(
                    actor=ACTOR, kind=spec.kind, code=spec.code, name=spec.name, config=config,
                    base_url=served + "/" + spec.kind, notes=spec.notes, reason="demo seed",
                )
                report.created.append(spec.code)

    for spec in DEMO_ACCOUNTS:
        account = ChannelAccount.objects.filter(code=spec.code).first()
        if account is None:
            continue
        have = set(account.products.values_list("product", flat=True))
        try:
            products = kind_adapter(account.kind).products
        except ChannelConfigInvalid:
            continue
        for product in products:
            if product in have:
                continue
            channel_product_set(account_id=account.pk, product=product, actor=ACTOR, reason="demo seed",
                                **_product_terms(spec, product))
            report.products_added += 1
        if not account.evaluations.exists():
            _seed_evaluation(account)
            report.evaluations_added += 1
        if _made_here_and_never_switched(account) and not enable_refusal(account):
            channel_account_enable(account_id=account.pk, actor=ACTOR,
                                   reason="demo seed: interface evaluation live, products and rates set")
    return report


def _made_here_and_never_switched(account: ChannelAccount) -> bool:
    """A disabled account the seed created that nobody has enabled or disabled since: the seed's own, new now or
    left by a run stopped before its end (the steps above commit one by one) — enabled then, as "running it again
    adds what is missing" (README). One that ops disabled keeps their decision."""
    changes = account.changes
    return (not account.enabled and changes.filter(action="account.created", actor_label=ACTOR).exists()
            and not changes.filter(action__in=("account.enabled", "account.disabled")).exists())


# Findings as ops would write them after reading the channel's documents (channel-protocols.md sections).
_FINDINGS = {
    "wechatpay": {
        "products": ("Partner JSAPI, mini program, APP, H5, Native and codepay (A.7, A.11).", 5),
        "signing": ("WECHATPAY2-SHA256-RSA2048 requests; responses verified with the WeChat Pay public key (A.2, A.3).", 5),
        "notification": ("AES-256-GCM encrypted callbacks, ack with 200/204, retries over ~24 h (A.4).", 4),
        "refund": ("Partial refunds allowed, up to 50 per trade, within 1 year (A.10).", 4),
        "cancel_reverse": ("Close unpaid trades; reverse codepay trades the same day (A.8).", 4),
        "bill": ("Trade bill after 10:00 next day, backtick-prefixed CSV (A.12).", 4),
        "settlement": ("D+1 to the sub-merchant's account by WeChat.", 4),
        "limits": ("Per-merchant limits set by WeChat risk control; none on our side.", 3),
        "card_rules": ("No card binding or SMS on our side: the wallet handles it.", 5),
        "fees": ("0.38% offline / 0.60% online, ISV rebate paid monthly.", 4),
        "contacts": ("WeChat Pay ISV manager; technical support via the partner portal tickets.", 3),
    },
    "alipay": {
        "products": ("create (JSAPI), app, wap, precreate, pay (barcode) (B.5).", 5),
        "signing": ("RSA2 over sorted params; response verified over the raw _response substring (B.2, B.3).", 4),
        "notification": ("Form-encoded notifies signed RSA2; ack 'success'; 8 retries over 25 h (B.4).", 4),
        "refund": ("Partial refunds with out_request_no, within 3 months by default (B.5).", 4),
        "cancel_reverse": ("alipay.trade.cancel reverses barcode trades; close for unpaid (B.5).", 4),
        "bill": ("Zip of GBK CSVs from 09:00 next day (B.8).", 3),
        "settlement": ("直付通: settle to the smid's card, T+1.", 4),
        "limits": ("Per-smid limits from Alipay risk; ISV app QPS limit.", 3),
        "card_rules": ("Handled in the Alipay wallet.", 5),
        "fees": ("0.38% offline / 0.55% online with ISV rebate.", 4),
        "contacts": ("Alipay ISV manager; open platform work orders.", 3),
    },
    "bank": {
        "products": ("WeChat, Alipay and UnionPay QR/barcode through the bank's acquiring gateway (docs/channels/bank.md).", 4),
        "signing": ("Sorted k=v canonical string signed RSA-SHA256, bank public key verifies answers.", 4),
        "notification": ("JSON notify, plain-text SUCCESS ack, retries 6 times over 1 h.", 3),
        "refund": ("Partial refunds within 180 days; same-day refunds are reversals.", 4),
        "cancel_reverse": ("Reverse supported for barcode trades until 23:30 the same day.", 3),
        "bill": ("Daily CSV bill after 08:00.", 4),
        "settlement": ("T+1 to the merchant's settlement account by the bank.", 4),
        "limits": ("Per-transaction and daily caps per product as contracted.", 4),
        "card_rules": ("UnionPay card products need the payer's SMS confirmation in the bank app.", 3),
        "fees": ("Contracted cost rates per product; no rebate.", 4),
        "contacts": ("Bank account manager and 7×24 technical hotline.", 4),
    },
}


# What differs between the two banks' contracts (DEMO_ACCOUNTS' rates and caps).
_FINDINGS_OF_ACCOUNT = {
    "bank-a": {
        "limits": ("50,000 yuan per transaction; 1,000,000 yuan a day per product.", 4),
        "fees": ("0.20% offline and UnionPay QR, 0.30% online; no rebate. Our cheapest offline.", 5),
    },
    "bank-b": {
        "limits": ("20,000 yuan per transaction; 500,000 yuan a day per product: a second route only.", 3),
        "fees": ("0.23% scanning, 0.18% in the wallet (JSAPI, mini program), 0.28% online, 0.25% UnionPay QR; no "
                 "rebate. Cheaper than Bank A in the wallet and online.", 4),
    },
}


def _seed_evaluation(account: ChannelAccount) -> None:
    """A finished evaluation, every item answered, taken live through the services as ops would: the demo's
    accounts are in use, and an account takes traffic only once its evaluation is live (design §1)."""
    findings = {**_FINDINGS.get(account.kind, {}), **_FINDINGS_OF_ACCOUNT.get(account.code, {})}
    evaluation = interface_evaluation_start(account_id=account.pk, actor=ACTOR, reason="demo seed")
    checklist = {key: {"finding": finding, "score": score} for key, (finding, score) in findings.items()}
    interface_evaluation_save(evaluation_id=evaluation.pk, actor=ACTOR, checklist=checklist)
    interface_evaluation_approve(evaluation_id=evaluation.pk, actor=ACTOR, reason="meets our requirements")
    interface_evaluation_start_integrating(evaluation_id=evaluation.pk, actor=ACTOR, reason="demo seed")
    interface_evaluation_go_live(evaluation_id=evaluation.pk, actor=ACTOR, reason="joint tests passed")


def demo_merchant_contracts_seed(*, merchant, simulator_root: str | None = None) -> list[str]:
    """Give the demo merchant an active contract on each demo account, as if it had been onboarded before
    (idempotent): its sub-merchant exists at the simulators, so orders work at once. Onboarding a new merchant
    through the channels is what the clerk workbench and the sample batch show."""
    import requests

    from channels.simulators import alipay as alipay_sim
    from merchants.models import Contract
    from merchants.services.contracts import contract_register_existing

    done = []
    accounts = [a for a in ChannelAccount.objects.filter(code__in=[s.code for s in DEMO_ACCOUNTS]).order_by("code")
                if not Contract.objects.filter(merchant=merchant, channel_account=a).exists()]
    if not accounts:
        return done
    with provisioning_simulators(simulator_root) as root:
        for account in accounts:
            token = ""
            if account.kind == "wechatpay":
                sub_mchid = "1900000109"  # the simulator trades for any sub_mchid unless told to be strict
            elif account.kind == "alipay":
                sub = alipay_sim.provision_merchant(root, app_id=account.config["app_id"], name=merchant.short_name)
                sub_mchid, token = sub["sub_mchid"], sub["app_auth_token"]
            else:
                resp = requests.post(f"{root}/bank/_control/merchants", timeout=10,
                                     json={"org_no": account.config["org_no"], "name": merchant.legal_name,
                                           "short_name": merchant.short_name})
                resp.raise_for_status()
                sub_mchid = resp.json()["mch_no"]
            # The rates approval would give it (``default_rate``): not below any demo account's cost.
            rates = {p.product: str(default_rate(p.product)) for p in account.products.filter(enabled=True)}
            # At a bank, WeChat JSAPI names the merchant's own official-account appid (bank.md §6.2): without one
            # routing passes the bank over for wechat.jsapi (channels.routing.choose).
            sub_appid = demo_bank_sub_appid() if account.kind == "bank" else ""
            contract_register_existing(merchant=merchant, account=account, sub_mchid=sub_mchid, rates=rates,
                                       actor=ACTOR, reason="demo seed", app_auth_token=token, sub_appid=sub_appid)
            done.append(account.code)
    return done


def demo_bank_sub_appid() -> str:
    """The appid the demo bank contracts name (bank.md §6.2): our WeChat Pay ISV account's ``sp_appid``. A WeChat
    payer's openid is valid under one appid only (channel-protocols.md §E), and one-code-pay learns a bank's WeChat
    payers through that account's OAuth (trades.onecode.services.oauth_via), which only an appid the WeChat
    simulator issued gets through. Without the account (its simulator not there) the banks get no appid and routing
    passes them over for WeChat JSAPI (channels.routing.choose)."""
    wechat = ChannelAccount.objects.filter(code=DEMO_WECHAT_ACCOUNT, kind="wechatpay").first()
    return (wechat.config or {}).get("sp_appid", "") if wechat is not None else ""

"""Fixtures for trades: a shop that can take payments through the three channel kinds on the simulators."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from decimal import Decimal

import pytest
import requests

from aggpay.api.client import AggpayClient
from channels.models import ChannelAccount, ChannelProduct
from channels.simulators import alipay as alipay_sim
from channels.simulators import bank as bank_sim
from channels.simulators import wechatpay as wechat_sim
from merchants.models import Contract, ContractRate
from merchants.services.merchants import merchant_activate
from tests.factories import MerchantAppFactory, MerchantFactory
from tests.trades.failover_flow import bank_b  # noqa: F401 - a fixture of the failover tests

PRODUCTS = {
    "wechatpay": ("wechat.native", "wechat.jsapi", "wechat.app", "wechat.h5", "wechat.barcode"),
    "alipay": ("alipay.qr", "alipay.jsapi", "alipay.app", "alipay.wap", "alipay.barcode"),
    "bank": ("unionpay.qr", "unionpay.barcode"),
}


@dataclass
class Shop:
    merchant: object
    app: object
    client: AggpayClient
    root: str
    accounts: dict

    def wait_for(self, predicate, timeout: float = 10.0, message: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {message}")

    def sim(self, kind: str, path: str, **payload) -> dict:
        response = requests.post(f"{self.root}/{kind}{path}", json=payload, timeout=10)
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}


@pytest.fixture
def clear_of_midnight():
    """The test starts at least a minute before local midnight (settings.TIME_ZONE, Asia/Shanghai), waiting past it
    when it would not: for tests that read "today" after staging money now, whose day comes from a clock the
    ``local_midday`` fixture cannot move — PostgreSQL's (an event's time, trades.services.events._feed_position,
    dates a reversal on statements and the fee report) or another process's (the documented examples run as
    scripts). Begun in the last seconds of a day, such a test moved money on it and asked for the next one."""
    from django.utils import timezone

    now = timezone.localtime()
    next_day = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time.min, tzinfo=now.tzinfo)
    left = (next_day - now).total_seconds()
    if left < 60:
        time.sleep(left + 1)


@pytest.fixture
def agent(client, staff_member):
    """Persona: Zhou, a support agent (trades.view_order, trades.refund_order), logged in to the staff pages through
    ``client``."""
    user = staff_member("support_agent", username="zhou.support")
    client.force_login(user)
    return user


def _account(code, kind, root, config):
    return ChannelAccount.objects.create(code=code, kind=kind, name=code, base_url=f"{root}/{kind}", config=config,
                                         enabled=True)


@pytest.fixture
def shop(transactional_db, live_server, simulator_server, settings, callback_receiver):
    """Persona: 'Tea House', active, contracted on WeChat Pay (ISV), Alipay (ISV) and Bank A (UnionPay), with an
    HMAC payments app whose notify_url is ``callback_receiver``; the channels call back to ``live_server``."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    root = simulator_server.base_url
    merchant = merchant_activate(merchant_id=MerchantFactory(short_name="Tea House").pk, actor=None, reason="test")
    stamp = str(time.time_ns())[-8:]
    wechat = _account(f"wx-{stamp}", "wechatpay", root, wechat_sim.provision(root, name=f"wx{stamp}"))
    alipay = _account(f"ali-{stamp}", "alipay", root, alipay_sim.provision(
        root, name=f"ali{stamp}", message_url=f"{live_server.url}/callbacks/ali-{stamp}/"))
    bank = _account(f"bank-{stamp}", "bank", root, bank_sim.provision(root, name=f"bank{stamp}"))
    ali_merchant = alipay_sim.provision_merchant(root, app_id=alipay.config["app_id"], name="Tea House")
    bank_merchant = requests.post(f"{root}/bank/_control/merchants",
                                  json={"org_no": bank.config["org_no"], "name": "Tea House"}, timeout=10).json()
    subs = {"wechatpay": ("1900000109", ""), "alipay": (ali_merchant["sub_mchid"], ali_merchant["app_auth_token"]),
            "bank": (bank_merchant["mch_no"], "")}
    for account in (wechat, alipay, bank):
        sub_mchid, token = subs[account.kind]
        contract = Contract.objects.create(merchant=merchant, channel_account=account, state="active",
                                           business_code=f"B{account.code}", sub_mchid=sub_mchid,
                                           app_auth_token=token)
        for product in PRODUCTS[account.kind]:
            ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal("0.0020"),
                                          max_amount=5_000_000)
            ContractRate.objects.create(contract=contract, product=product, rate=Decimal("0.0038"))
    app = MerchantAppFactory(merchant=merchant, app_id=f"app_shop{stamp}", secret="shop-secret-0123456789abcdef",
                             notify_url=callback_receiver.url)
    client = AggpayClient(live_server.url, app.app_id, secret=app.secret)
    return Shop(merchant=merchant, app=app, client=client, root=root,
                accounts={"wechatpay": wechat, "alipay": alipay, "bank": bank})

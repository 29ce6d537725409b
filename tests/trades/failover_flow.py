"""Bank B and the failover helpers of the order-create failover tests (design §7 layer 4): a second bank where Tea
House is contracted too, faults injected on one bank account's creates, and what the bank simulator holds."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests

from channels.models import ChannelAccount, ChannelProduct
from channels.simulators import bank as bank_sim
from channels.simulators.bank_state import ns
from merchants.models import Contract, ContractRate
from tests.trades.bank_flow import bank_simulator


@pytest.fixture
def bank_b(shop):
    """Persona: Bank B, a second bank (its own org at the bank simulator) where Tea House is contracted too for
    UnionPay QR and payment codes, Alipay QR and WeChat JSAPI (through the merchant's own WeChat app) — dearer than
    Bank A, Alipay and WeChat Pay (cost 0.30% against their 0.20%, the merchant's rate 0.50% against 0.38%), so
    routing prefers those and has Bank B next."""
    stamp = str(time.time_ns())[-8:]
    account = ChannelAccount.objects.create(code=f"bankb-{stamp}", kind="bank", name="Bank B",
                                            base_url=f"{shop.root}/bank", enabled=True,
                                            config=bank_sim.provision(shop.root, name=f"bankb{stamp}"))
    sub = requests.post(f"{shop.root}/bank/_control/merchants",
                        json={"org_no": account.config["org_no"], "name": "Tea House"}, timeout=10).json()
    contract = Contract.objects.create(merchant=shop.merchant, channel_account=account, state="active",
                                       business_code=f"B{account.code}", sub_mchid=sub["mch_no"],
                                       sub_appid="wx5e1c0d2b7a9f3e11")
    for product in ("unionpay.qr", "unionpay.barcode", "alipay.qr", "wechat.jsapi"):
        ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal("0.0030"),
                                      max_amount=5_000_000)
        ContractRate.objects.create(contract=contract, product=product, rate=Decimal("0.0050"))
    return account


def create_order(shop, out_trade_no: str, product: str = "unionpay.qr", amount: int = 10_000, **extra):
    return shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea", **extra})


def bank_fault(shop, account, fault: str, **rule):
    """A fault on the creates of this bank account only (its org_no is in every request body, bank.md §3)."""
    shop.sim("bank", "/_control/faults", fault=fault,
             match={"path": "^/api/pay/", "contains": f'"org_no":"{account.config["org_no"]}"'}, **rule)


def rate_limited(shop, account):
    bank_fault(shop, account, "business_error", code="RATE_LIMITED", status=429)  # HTTP 429: slow down


def at_the_bank(simulator_server, account, what: str, number: str) -> dict | None:
    return bank_simulator(simulator_server).store.get(ns(what, account.config["org_no"]), number)

"""Helpers shared by the bank channel tests (no tests here): a fresh bank account per test on the session's
simulator, a merchant open at it, requests, and the simulator's control/payer endpoints over real HTTP."""

from __future__ import annotations

import datetime as dt
import secrets

import requests

from channels.adapters.bank import BankAdapter, BankConfig
from channels.adapters.base import PaymentRequest, SubMerchant, TradeRef
from channels.simulators.bank import provision

# Tests drive scheduled changes themselves; no background review unless a test asks for it.
FAST = {"auto_review": None, "refund_seconds": 0, "userpaying_seconds": 30, "settlement_seconds": 30,
        "intraday_bills": True}

_http = requests.Session()
_http.trust_env = False


def new_bank(simulator_server, *, name: str = "", read_timeout: float = 5.0, **settings) -> BankAdapter:
    config = BankConfig(**provision(simulator_server.base_url, name=name or "bank-" + secrets.token_hex(3),
                                    settings={**FAST, **settings}))
    return BankAdapter(config, base_url=simulator_server.base_url + "/bank", connect_timeout=2,
                       read_timeout=read_timeout)


def control(adapter: BankAdapter, path: str, payload: dict | None = None, method: str = "POST") -> requests.Response:
    return _http.request(method, adapter.base_url + path, json=payload, timeout=10, allow_redirects=False)


def form_post(adapter: BankAdapter, path: str, data: dict) -> requests.Response:
    """What a browser does with the simulator's HTML forms."""
    return _http.post(adapter.base_url + path, data=data, timeout=10)


def open_merchant(adapter: BankAdapter, **fields) -> SubMerchant:
    resp = control(adapter, "/_control/merchants", {"org_no": adapter.config.org_no, "name": "Tea House", **fields})
    assert resp.status_code == 201, resp.text
    return SubMerchant(sub_mchid=resp.json()["mch_no"], sub_appid="wx8888888888888888")


def out_no(prefix: str = "AGG") -> str:
    return prefix + secrets.token_hex(8).upper()


def payment(sub: SubMerchant, product: str = "wechat.native", *, amount: int = 1200, **fields) -> PaymentRequest:
    values = {
        "product": product, "sub_merchant": sub, "out_trade_no": out_no(), "amount": amount,
        "subject": "西湖龙井 250g", "notify_url": "http://127.0.0.1:9/notify",
        "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    }
    values.update(fields)
    return PaymentRequest(**values)


def ref(sub: SubMerchant, out_trade_no: str) -> TradeRef:
    return TradeRef(sub_merchant=sub, out_trade_no=out_trade_no)


def pay(adapter: BankAdapter, out_trade_no: str, outcome: str = "success", payer_id: str = "") -> dict:
    resp = control(adapter, "/_payer/pay", {"org_no": adapter.config.org_no, "out_trade_no": out_trade_no,
                                            "outcome": outcome, "payer_id": payer_id})
    assert resp.status_code == 200, resp.text
    return resp.json()


def fault(adapter: BankAdapter, fault_name: str, *, scope: str = "", **rule) -> None:
    """A fault for the next request whose body contains ``scope`` (default: this account's org_no, which is in
    every request and notify of the account) unless ``match`` says otherwise."""
    rule.setdefault("match", {"contains": scope or adapter.config.org_no})
    resp = control(adapter, "/_control/faults", {"fault": fault_name, **rule})
    assert resp.status_code == 201, resp.text


def flush(adapter: BankAdapter) -> dict:
    return control(adapter, "/_control/flush").json()


def today() -> dt.date:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()

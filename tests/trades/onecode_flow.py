"""Helpers for one-code-pay tests: a payer's phone as a ``requests`` session with a wallet's User-Agent."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

import requests

from channels.models import ChannelProduct
from merchants.models import Contract, ContractRate, Store
from trades.models.store_codes import StoreCode

# Literal samples (channel-protocols.md §E).
UA_WECHAT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN")
UA_ALIPAY = ("Mozilla/5.0 (Linux; Android 13; M2012K11AC) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/104.0 "
             "Mobile Safari/537.36 AliApp(AP/10.5.36.8100) AlipayClient/10.5.36.8100 Language/zh-Hans")
UA_UNIONPAY = ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Mobile/15E148 (com.unionpay.chsp) (UnionPay/1.0 CloudPay) (clientVersion 324)")
UA_WECOM = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148 wxwork/4.1.16 MicroMessenger/7.0.1 Language/zh ColorScheme/Light")
UA_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.0 Mobile/15E148 Safari/604.1")


def route_wallets_to_the_bank(shop) -> None:
    """Tea House's bank contract also sells WeChat and Alipay JSAPI, cheaper than the ISV accounts, so routing sends
    a store code's wallet payments to the bank (indirect mode), as the demo's routing does to Bank A. The contract
    names our WeChat ISV account's appid (bank.md §6.2): its WeChat payers' openids come from that appid's OAuth
    (channel-protocols.md §E, trades.onecode.services.oauth_via)."""
    bank = shop.accounts["bank"]
    contract = Contract.objects.get(merchant=shop.merchant, channel_account=bank)
    Contract.objects.filter(pk=contract.pk).update(sub_appid=shop.accounts["wechatpay"].config["sp_appid"])
    for product in ("wechat.jsapi", "alipay.jsapi"):
        ChannelProduct.objects.create(account=bank, product=product, cost_rate=Decimal("0.0010"), max_amount=5_000_000)
        ContractRate.objects.create(contract=contract, product=product, rate=Decimal("0.0038"))


def store_code_for(shop, *, store_no: str = "S001", name: str = "West Lake branch") -> StoreCode:
    store = Store.objects.create(merchant=shop.merchant, store_no=store_no, name=name)
    return StoreCode.objects.create(merchant=shop.merchant, store=store, batch="b_test")


def phone(user_agent: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only
    session.headers["User-Agent"] = user_agent
    return session


def csrf_token(page_html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page_html).group(1)


def attempt(page_html: str) -> str:
    """The amount form's one-time attempt token ("" on pages without one, e.g. a cashier order's)."""
    found = re.search(r'name="attempt" value="([^"]+)"', page_html)
    return html.unescape(found.group(1)) if found else ""


def bridge(page_html: str) -> dict:
    found = re.search(r'<script id="bridge" type="application/json">(.*?)</script>', page_html, re.S)
    return json.loads(html.unescape(found.group(1)))


def scan_and_authorise(session: requests.Session, base_url: str, code: str) -> requests.Response:
    """Open /c/<code>: our page → the wallet's OAuth (simulator) → back with the code → the amount page."""
    response = session.get(f"{base_url}/c/{code}", timeout=10)
    assert response.status_code == 200, response.text[:500]
    return response


def enter_amount(session: requests.Session, page: requests.Response, amount: str, *,
                 allow_redirects: bool = True) -> requests.Response:
    """Submit the amount form of ``page`` as the browser would (so submitting one page twice is a double submit)."""
    data = {"amount": amount, "csrfmiddlewaretoken": csrf_token(page.text)}
    if token := attempt(page.text):
        data["attempt"] = token
    return session.post(page.url, data=data, headers={"Referer": page.url}, timeout=20,
                        allow_redirects=allow_redirects)

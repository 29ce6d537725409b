"""A store code's WeChat and Alipay payments routed to a bank (indirect mode, docs/channels/bank.md §6.2): the demo's
wallet stand-in (templates/payer/pay.html) pays them at the bank simulator's payer endpoint exactly as the page's
script posts — a form with WeChat's ``prepay_id`` and the ``jsapi`` parameters, or Alipay's ``trade_no`` — and the
bank, as the wallet would, refuses parameters it did not sign. The demo routes both wallets to Bank A (cheapest),
where the stand-in used to answer 404 ``no such trade``."""

from __future__ import annotations

import json

import pytest
import requests

from tests.trades.onecode_flow import (
    UA_ALIPAY,
    UA_WECHAT,
    bridge,
    enter_amount,
    phone,
    route_wallets_to_the_bank,
    scan_and_authorise,
    store_code_for,
)
from trades.models import Order

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")

@pytest.fixture
def bank_wallets(shop):
    route_wallets_to_the_bank(shop)
    return shop


def _pay_page(shop, user_agent: str, amount: str):
    code = store_code_for(shop)
    payer = phone(user_agent)
    pay_page = enter_amount(payer, scan_and_authorise(payer, shop.client.base_url, code.code), amount)
    assert pay_page.status_code == 200 and "/pay/" in pay_page.url, pay_page.text[:500]
    return payer, bridge(pay_page.text)


def _stand_in(params: dict, **form) -> requests.Response:
    """POST to the stand-in URL as the page's script does: form-encoded, ``outcome=success``."""
    return requests.post(params["standin_url"], data={"outcome": "success", **form}, timeout=10)


def test_a_wechat_payer_pays_a_bank_routed_order_with_the_wallet_stand_in(bank_wallets):
    shop = bank_wallets
    payer, params = _pay_page(shop, UA_WECHAT, "12.34")
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.channel_account == shop.accounts["bank"]
    assert params["standin_url"].endswith("/bank/_payer/pay") and params["prepay_id"].startswith("wx")

    # The wallet checks the bank's paySign (bank.md §6.2): a tampered one, or another trade's package, pays nothing.
    forged = {**params["jsapi"], "paySign": params["jsapi"]["paySign"][::-1]}
    refused = _stand_in(params, prepay_id=params["prepay_id"], jsapi=json.dumps(forged))
    assert refused.status_code == 400 and "paySign" in refused.text
    moved = {**params["jsapi"], "package": "prepay_id=wxBQ0000"}
    assert _stand_in(params, prepay_id=params["prepay_id"], jsapi=json.dumps(moved)).status_code == 400
    assert Order.objects.get(pk=order.pk).state == "pending"

    paid = _stand_in(params, prepay_id=params["prepay_id"], jsapi=json.dumps(params["jsapi"]))

    assert paid.status_code == 200 and "SUCCESS" in paid.text
    shop.sim("bank", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")
    assert payer.get(shop.client.base_url + params["status_url"], timeout=10).json()["state"] == "succeeded"


def test_an_alipay_payer_pays_a_bank_routed_order_with_the_wallet_stand_in(bank_wallets):
    shop = bank_wallets
    payer, params = _pay_page(shop, UA_ALIPAY, "8.80")
    order = Order.objects.get(merchant=shop.merchant, product="alipay.jsapi")
    assert order.channel_account == shop.accounts["bank"]
    # Alipay's own trade number (tradeNO, bank.md §6.2) is what the wallet pays by, not the bank's B… number.
    assert params["trade_no"] and params["trade_no"] != order.channel_trade_no

    paid = _stand_in(params, trade_no=params["trade_no"])

    assert paid.status_code == 200 and "SUCCESS" in paid.text
    shop.sim("bank", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")
    assert payer.get(shop.client.base_url + params["status_url"], timeout=10).json()["state"] == "succeeded"

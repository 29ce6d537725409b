"""The Alipay simulator as a strict gateway (channel-protocols.md B.1–B.3, B.9) and its state across restarts."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import urlencode

import pytest
import requests

from channels.adapters.alipay import AlipayAdapter, AlipayConfig
from channels.adapters.alipay_sign import (
    load_private_key,
    load_public_key,
    request_sign_content,
    response_substring,
    rsa2_sign,
    rsa2_verify,
)
from channels.adapters.base import PaymentRequest, SubMerchant, TradeRef, TradeState
from channels.simulators.alipay import provision, provision_merchant
from channels.simulators.server import SimulatorThread
from channels.simulators.store import Store


def common(config: AlipayConfig, method: str, **extra) -> dict[str, str]:
    return {"app_id": config.app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
            "timestamp": "2024-05-01 12:00:00", "version": "1.0", **extra}


def signed(config: AlipayConfig, params: dict[str, str]) -> dict[str, str]:
    return {**params, "sign": rsa2_sign(load_private_key(config.app_private_key), request_sign_content(params))}


def gateway(server) -> str:
    return server.base_url + "/alipay/gateway.do"


def inner_of(config: AlipayConfig, text: str, key: str) -> dict:
    raw = response_substring(text, key)
    assert raw is not None, text
    assert rsa2_verify(load_public_key(config.alipay_public_key), raw, json.loads(text)["sign"])
    return json.loads(raw)


def test_it_accepts_the_official_sdk_layout_common_params_in_the_query_and_biz_content_in_the_body(
        alipay_config, alipay_merchant, simulator_server):
    params = signed(alipay_config, common(alipay_config, "alipay.trade.precreate",
                                          app_auth_token=alipay_merchant.app_auth_token,
                                          biz_content=json.dumps({"out_trade_no": "S1", "total_amount": "1.00",
                                                                  "subject": "茶"}, ensure_ascii=False)))
    body = {"biz_content": params.pop("biz_content")}
    answer = requests.post(gateway(simulator_server) + "?" + urlencode(params), data=body, timeout=10)
    assert answer.text.startswith('{"alipay_trade_precreate_response":{')  # B.3: response first, then sign
    assert inner_of(alipay_config, answer.text, "alipay_trade_precreate_response")["code"] == "10000"


def test_it_reads_a_gbk_form_when_the_charset_says_so(alipay_config, alipay_merchant, simulator_server):
    params = signed(alipay_config, common(alipay_config, "alipay.trade.precreate", charset="GBK",
                                          app_auth_token=alipay_merchant.app_auth_token,
                                          biz_content=json.dumps({"out_trade_no": "S2", "total_amount": "1.00",
                                                                  "subject": "普洱茶"}, ensure_ascii=False)))
    answer = requests.post(gateway(simulator_server), data=urlencode(params, encoding="gbk"), timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded;charset=GBK"})
    assert inner_of(alipay_config, answer.text, "alipay_trade_precreate_response")["code"] == "10000"


@pytest.mark.parametrize(("drop", "change", "code", "sub_code"), [
    ("method", {}, "40001", "isv.missing-method"),
    ("sign", {}, "40001", "isv.missing-signature"),
    ("timestamp", {}, "40001", "isv.missing-timestamp"),
    (None, {"timestamp": "2024/05/01"}, "40002", "isv.invalid-timestamp"),
    (None, {"sign_type": "RSA"}, "40002", "isv.invalid-signature-type"),
    (None, {"method": "alipay.trade.teleport"}, "40002", "isv.invalid-method"),
    (None, {"app_auth_token": "202401BBforged"}, "20001", "aop.invalid-app-auth-token"),
    (None, {"biz_content": "[1, 2]"}, "40002", "isv.invalid-parameter"),
])
def test_it_refuses_malformed_calls_as_alipay_does_and_signs_the_refusal(alipay_config, simulator_server, drop,
                                                                         change, code, sub_code):
    params = signed(alipay_config, {**common(alipay_config, "alipay.trade.query",
                                             biz_content='{"out_trade_no":"x"}'), **change})
    params.pop(drop, None)
    text = requests.get(gateway(simulator_server) + "?" + urlencode(params), timeout=10).text
    key = "alipay_trade_query_response" if "method" in params and sub_code != "isv.invalid-method" \
        else "error_response"
    inner = inner_of(alipay_config, text, key)
    assert (inner["code"], inner["sub_code"]) == (code, sub_code)


def test_an_unknown_app_gets_an_unsigned_refusal(alipay_config, simulator_server):
    params = signed(alipay_config, common(alipay_config, "alipay.trade.query", app_id="2021000000000000"))
    document = requests.get(gateway(simulator_server) + "?" + urlencode(params), timeout=10).json()
    assert "sign" not in document
    assert document["alipay_trade_query_response"]["sub_code"] == "isv.invalid-app-id"


def test_registering_an_app_needs_a_real_public_key(simulator_server):
    refused = requests.post(simulator_server.base_url + "/alipay/_control/accounts", timeout=10,
                            json={"name": "x", "app_public_key": "-----BEGIN PUBLIC KEY-----\nnope\n"})
    assert refused.status_code == 400


def test_trades_and_timed_events_survive_a_restart_of_the_simulator(tmp_path):
    path = tmp_path / "sim.sqlite3"
    first = SimulatorThread(Store(path)).start()
    config = AlipayConfig(**provision(first.base_url, name="restart"))
    made = provision_merchant(first.base_url, app_id=config.app_id)
    sub = SubMerchant(sub_mchid=made["sub_mchid"], app_auth_token=made["app_auth_token"])
    requests.post(f"{first.base_url}/alipay/_control/accounts/{config.app_id}/settings", timeout=10,
                  json={"user_paying_seconds": 0.5})
    adapter = AlipayAdapter(config, base_url=first.base_url + "/alipay")
    paying = adapter.create_payment(PaymentRequest(
        product="alipay.barcode", sub_merchant=sub, out_trade_no="RS1", amount=100, subject="tea", notify_url="",
        expires_at=dt.datetime.now(dt.UTC), auth_code="281234567890123456"))
    assert paying.state == TradeState.USER_PAYING
    first.stop()

    time.sleep(0.6)  # the payer confirmed while the simulator was down
    second = SimulatorThread(Store(path)).start()
    try:
        again = AlipayAdapter(config, base_url=second.base_url + "/alipay")
        assert again.query_payment(TradeRef(sub_merchant=sub, out_trade_no="RS1")).state == TradeState.SUCCEEDED
    finally:
        second.stop()

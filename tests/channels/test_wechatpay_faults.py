"""Injected faults and signature checks between WechatPayAdapter and the simulator (A.2, A.3, A.6; design §5 rule 2)."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests

from channels.adapters import wechatpay_crypto as wx
from channels.adapters.base import TradeRef, TradeState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.wechatpay import WechatPayAdapter
from channels.simulators import wechatpay_crypto as sim_crypto
from tests.channels.test_wechatpay_payments import SUB, payment, sim


def fault(server, rule: dict) -> None:
    assert sim(server, "POST", "/_control/faults", json=rule).status_code == 201


def test_it_treats_a_channel_that_does_not_answer_in_time_as_unknown(simulator_server, wechatpay_adapter):
    quick = WechatPayAdapter(wechatpay_adapter.config, base_url=wechatpay_adapter.base_url, read_timeout=0.3)
    request = payment("wechat.native")
    fault(simulator_server, {"fault": "timeout", "seconds": 1, "match": {"contains": request.out_trade_no}})
    started = time.monotonic()
    with pytest.raises(ChannelUnknown) as caught:
        quick.create_payment(request)
    assert time.monotonic() - started < 0.9
    assert caught.value.retryable and caught.value.code == "channel_unknown"


def test_it_still_answers_through_latency_below_the_timeout(simulator_server, wechatpay_adapter):
    request = payment("wechat.native")
    fault(simulator_server, {"fault": "latency", "seconds": 0.2, "match": {"contains": request.out_trade_no}})
    started = time.monotonic()
    assert wechatpay_adapter.create_payment(request).state == TradeState.PENDING
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("name", ["http_500", "http_503"])
def test_it_treats_a_5xx_as_unknown(simulator_server, wechatpay_adapter, name):
    request = payment("wechat.native")
    fault(simulator_server, {"fault": name, "match": {"contains": request.out_trade_no}})
    with pytest.raises(ChannelUnknown) as caught:
        wechatpay_adapter.create_payment(request)
    assert caught.value.http_status == int(name[-3:])


def test_it_treats_a_wrongly_signed_answer_as_unknown_even_when_it_says_success(simulator_server,
                                                                                 wechatpay_adapter):
    request = payment("wechat.barcode", auth_code="134567890123456780")
    fault(simulator_server, {"fault": "bad_signature", "match": {"contains": request.out_trade_no}})
    with pytest.raises(ChannelUnknown, match="does not verify"):
        wechatpay_adapter.create_payment(request)
    # The channel did act: the answer was only untrustworthy, so the trade must be queried, not failed.
    result = wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
    assert result.state == TradeState.SUCCEEDED


def test_it_fails_verification_of_a_signtest_probe(simulator_server, wechatpay_adapter):
    request = payment("wechat.native")
    wechatpay_adapter.create_payment(request)
    fault(simulator_server, {"fault": "signtest", "match": {"path": request.out_trade_no}})
    with pytest.raises(ChannelUnknown, match="SIGNTEST"):
        wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))


@pytest.mark.parametrize(("code", "status", "normalised", "permanent"), [
    ("NO_AUTH", 403, "no_permission", True),
    ("ACCOUNT_ERROR", 403, "merchant_limited", True),
    ("RULE_LIMIT", 403, "risk_rejected", True),
    ("FREQUENCY_LIMITED", 429, "rate_limited", False),
])
def test_it_maps_a_business_error_to_a_definite_channel_error(simulator_server, wechatpay_adapter, code, status,
                                                              normalised, permanent):
    request = payment("wechat.native")
    fault(simulator_server, {"fault": "business_error", "code": code, "status": status, "message": "模拟",
                             "match": {"contains": request.out_trade_no}})
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.create_payment(request)
    error = caught.value
    assert not isinstance(error, ChannelUnknown)
    assert (error.channel_code, error.code, error.permanent, error.http_status, error.channel_message) == (
        code, normalised, permanent, status, "模拟")


def test_it_treats_a_system_error_business_answer_as_unknown(simulator_server, wechatpay_adapter):
    request = payment("wechat.native")
    fault(simulator_server, {"fault": "business_error", "code": "SYSTEM_ERROR", "status": 500,
                             "match": {"contains": request.out_trade_no}})
    with pytest.raises(ChannelUnknown) as caught:
        wechatpay_adapter.create_payment(request)
    assert caught.value.channel_code == "SYSTEM_ERROR"


def test_it_is_refused_with_sign_error_when_signing_with_the_wrong_key(wechatpay_adapter):
    import dataclasses

    wrong = dataclasses.replace(wechatpay_adapter.config, private_key_pem=sim_crypto.new_key_pem())
    adapter = WechatPayAdapter(wrong, base_url=wechatpay_adapter.base_url)
    with pytest.raises(ChannelError) as caught:
        adapter.create_payment(payment("wechat.native"))
    assert (caught.value.http_status, caught.value.channel_code, caught.value.code) == (
        401, "SIGN_ERROR", "invalid_signature")


def test_it_refuses_answers_signed_by_a_key_other_than_the_configured_wechatpay_key(wechatpay_adapter):
    import dataclasses

    other = sim_crypto.public_pem(sim_crypto.new_key_pem())
    adapter = WechatPayAdapter(dataclasses.replace(wechatpay_adapter.config, wechatpay_public_key_pem=other),
                               base_url=wechatpay_adapter.base_url)
    with pytest.raises(ChannelUnknown, match="not verifiable"):
        adapter.create_payment(payment("wechat.native"))


def _raw_post(adapter, path: str, body: bytes, authorization: str, server) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.post(server.base_url + "/wechatpay" + path, data=body, timeout=10,
                        headers={"Authorization": authorization, "Content-Type": "application/json"})


def _native_body(config) -> bytes:
    return json.dumps({"sp_appid": config.sp_appid, "sp_mchid": config.sp_mchid, "sub_mchid": SUB.sub_mchid,
                       "description": "raw", "out_trade_no": "RAW" + secrets.token_hex(8),
                       "amount": {"total": 1, "currency": "CNY"}, "notify_url": "http://127.0.0.1:9/n"}).encode()


def test_the_simulator_reads_authorization_pairs_in_any_order(simulator_server, wechatpay_config, wechatpay_adapter):
    body = _native_body(wechatpay_config)
    timestamp, nonce = str(int(time.time())), wx.nonce_str()
    signature = wx.rsa_sign(wechatpay_config.private_key_pem, wx.request_message(
        "POST", "/wechatpay/v3/pay/partner/transactions/native", timestamp, nonce, body))
    # wechatpayv3's order: mchid, nonce_str, signature, timestamp, serial_no (A.2)
    header = (f'WECHATPAY2-SHA256-RSA2048 signature="{signature}",serial_no="{wechatpay_config.serial_no}",'
              f'timestamp="{timestamp}",nonce_str="{nonce}",mchid="{wechatpay_config.sp_mchid}"')
    answer = _raw_post(wechatpay_adapter, "/v3/pay/partner/transactions/native", body, header, simulator_server)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert answer.headers["Wechatpay-Serial"] == wechatpay_config.wechatpay_public_key_id


@pytest.mark.parametrize("change", ["stale_timestamp", "tampered_body", "other_path"])
def test_the_simulator_rejects_a_request_whose_signature_does_not_fit(simulator_server, wechatpay_config,
                                                                      wechatpay_adapter, change):
    body = _native_body(wechatpay_config)
    timestamp = str(int(time.time()) - (301 if change == "stale_timestamp" else 0))
    signed_path = "/wechatpay/v3/pay/partner/transactions/jsapi" if change == "other_path" else \
        "/wechatpay/v3/pay/partner/transactions/native"
    header = wx.authorization(mchid=wechatpay_config.sp_mchid, serial_no=wechatpay_config.serial_no,
                              private_key_pem=wechatpay_config.private_key_pem, method="POST", target=signed_path,
                              body=body, timestamp=timestamp)
    sent = body.replace(b'"total": 1', b'"total": 100') if change == "tampered_body" else body
    answer = _raw_post(wechatpay_adapter, "/v3/pay/partner/transactions/native", sent, header, simulator_server)
    assert answer.status_code == 401
    assert answer.json()["code"] == "SIGN_ERROR"

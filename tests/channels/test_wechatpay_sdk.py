"""An independent client proves the simulator speaks WeChat Pay v3: the PyPI SDK ``wechatpayv3`` (test-only
dependency, channel-protocols.md §D) creates, queries, closes and refunds partner orders against the simulator,
verifies every answer's signature with the WeChat Pay public key, downloads a bill, and verifies + decrypts a
callback with its own ``callback()``.

The SDK hard-codes its gateway in ``Core._gate_way`` and has no constructor option for it (§D), so the test sets
that attribute of the SDK object; the SDK then signs paths relative to the gateway, which the simulator accepts
as the path relative to its mount (see channels/simulators/wechatpay.py).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets

import pytest
from wechatpayv3 import WeChatPay, WeChatPayType

from tests.channels.test_wechatpay_faults import fault
from tests.channels.test_wechatpay_payments import sim


@pytest.fixture(autouse=True)
def no_stray_callbacks(simulator_server):
    """Cancel this test's pending callbacks: retries must not reach a later test's receiver on a reused port."""
    yield
    sim(simulator_server, "DELETE", "/_control/callbacks")


SUB_MCHID = "1600000301"


@pytest.fixture
def sdk(simulator_server, wechatpay_config, callback_receiver):
    client = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE, mchid=wechatpay_config.sp_mchid,
        private_key=wechatpay_config.private_key_pem, cert_serial_no=wechatpay_config.serial_no,
        appid=wechatpay_config.sp_appid, apiv3_key=wechatpay_config.apiv3_key, notify_url=callback_receiver.url,
        partner_mode=True, timeout=(3, 5), public_key=wechatpay_config.wechatpay_public_key_pem,
        public_key_id=wechatpay_config.wechatpay_public_key_id)
    client._core._gate_way = simulator_server.base_url + "/wechatpay"
    client._core._proxy = {"http": None, "https": None}  # loopback: ignore any environment proxy
    return client


def test_the_sdk_creates_queries_pays_and_refunds_a_native_order(simulator_server, sdk, callback_receiver):
    out_trade_no = "SDK" + secrets.token_hex(8)
    code, text = sdk.pay(description="SDK 龙井", out_trade_no=out_trade_no, amount={"total": 880, "currency": "CNY"},
                         sub_mchid=SUB_MCHID, pay_type=WeChatPayType.NATIVE)
    assert code == 200, text
    code_url = json.loads(text)["code_url"]

    code, text = sdk.query(out_trade_no=out_trade_no, sub_mchid=SUB_MCHID)
    assert code == 200 and json.loads(text)["trade_state"] == "NOTPAY"

    assert sim(simulator_server, "POST", "/_payer/pay", json={"code_url": code_url}).status_code == 200
    [delivery] = callback_receiver.wait_for(1)
    event = sdk.callback(headers=delivery["headers"], body=delivery["body"])
    assert event is not None, "the SDK could not verify or decrypt the simulator's callback"
    assert event["event_type"] == "TRANSACTION.SUCCESS"
    assert (event["resource"]["out_trade_no"], event["resource"]["trade_state"],
            event["resource"]["amount"]["total"], event["resource"]["sub_mchid"]) == (
        out_trade_no, "SUCCESS", 880, SUB_MCHID)
    tampered = delivery["body"].replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESX")
    assert sdk.callback(headers=delivery["headers"], body=tampered) is None

    out_refund_no = "SDKR" + secrets.token_hex(8)
    code, text = sdk.refund(out_refund_no=out_refund_no, amount={"refund": 300, "total": 880, "currency": "CNY"},
                            out_trade_no=out_trade_no, sub_mchid=SUB_MCHID)
    assert code == 200, text
    assert json.loads(text)["status"] == "PROCESSING"
    code, text = sdk.query_refund(out_refund_no=out_refund_no, sub_mchid=SUB_MCHID)
    assert code == 200 and json.loads(text)["amount"]["refund"] == 300
    code, text = sdk.query(out_trade_no=out_trade_no, sub_mchid=SUB_MCHID)
    assert json.loads(text)["trade_state"] == "REFUND"


def test_the_sdk_verifies_a_signed_204_and_refuses_a_wrongly_signed_answer(simulator_server, sdk):
    out_trade_no = "SDK" + secrets.token_hex(8)
    assert sdk.pay(description="close me", out_trade_no=out_trade_no, amount={"total": 1},
                   sub_mchid=SUB_MCHID)[0] == 200
    assert sdk.close(out_trade_no=out_trade_no, sub_mchid=SUB_MCHID)[0] == 204  # empty body, still verified
    fault(simulator_server, {"fault": "bad_signature", "match": {"path": out_trade_no}})
    with pytest.raises(Exception, match="failed to verify the signature"):
        sdk.query(out_trade_no=out_trade_no, sub_mchid=SUB_MCHID)


def test_the_sdk_downloads_a_bill_that_matches_its_hash(local_midday, sdk):
    import datetime as dt

    out_trade_no = "SDK" + secrets.token_hex(8)
    code, text = sdk.pay(description="bill", out_trade_no=out_trade_no, amount={"total": 2},
                         payer={"auth_code": "134567890123456781"}, scene_info={"store_info": {"id": "S1"}},
                         sub_mchid=SUB_MCHID, pay_type=WeChatPayType.CODEPAY)
    assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    code, text = sdk.trade_bill(bill_date=today, sub_mchid=SUB_MCHID)
    assert code == 200, text
    info = json.loads(text)
    code, content = sdk.download_bill(info["download_url"])
    assert code == 200
    raw = gzip.decompress(content)
    assert hashlib.sha1(raw).hexdigest() == info["hash_value"]
    assert out_trade_no in raw.decode("utf-8")

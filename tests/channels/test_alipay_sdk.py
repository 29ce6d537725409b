"""An independent client proves the Alipay simulator speaks the real wire format (issue 3 "How it is checked").

python-alipay-sdk (fzlee, test-only dependency) is pointed at the simulator by setting its ``_gateway``
attribute — the SDK hard-codes openapi.alipay.com there and has no constructor option (channel-protocols.md D).
It signs its own requests (GET with every param in the query, no ``format``), verifies the simulator's answers
over the raw ``…_response`` substring with its own brace matcher, and verifies a notify with ``verify()``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
import requests
from alipay import ISVAliPay
from alipay.exceptions import AliPayValidationError

from channels.simulators.alipay import provision, provision_merchant


@pytest.fixture
def sdk(simulator_server, request, callback_receiver):
    config = provision(simulator_server.base_url, name=request.node.name[:60])
    merchant = provision_merchant(simulator_server.base_url, app_id=config["app_id"], name="SDK merchant")
    client = ISVAliPay(
        appid=config["app_id"], app_notify_url=callback_receiver.url,
        app_private_key_string=config["app_private_key"], alipay_public_key_string=config["alipay_public_key"],
        sign_type="RSA2", app_auth_token=merchant["app_auth_token"],
    )
    client._gateway = simulator_server.base_url + "/alipay/gateway.do"  # the SDK's only way to change its host
    return client


def _pay(simulator_server, **ident):
    response = requests.post(simulator_server.base_url + "/alipay/_payer/pay", json={**ident, "outcome": "success"},
                             timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_sdk_precreates_queries_and_refunds_through_the_simulator(sdk, simulator_server):
    created = sdk.api_alipay_trade_precreate(subject="乌龙茶", out_trade_no="SDK-T1", total_amount="12.30")
    assert created["code"] == "10000"
    assert created["out_trade_no"] == "SDK-T1"

    # B.5: nobody scanned yet, so Alipay has no trade — the answer is signed and the SDK accepts it.
    before = sdk.api_alipay_trade_query(out_trade_no="SDK-T1")
    assert (before["code"], before["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")

    _pay(simulator_server, qr_code=created["qr_code"])
    paid = sdk.api_alipay_trade_query(out_trade_no="SDK-T1")
    assert paid["trade_status"] == "TRADE_SUCCESS"
    assert paid["total_amount"] == "12.30"

    refunded = sdk.api_alipay_trade_refund(refund_amount="2.30", out_trade_no="SDK-T1", out_request_no="SDK-R1")
    assert (refunded["code"], refunded["fund_change"], refunded["refund_fee"]) == ("10000", "Y", "2.30")
    status = sdk.api_alipay_trade_fastpay_refund_query("SDK-R1", out_trade_no="SDK-T1")
    assert (status["refund_status"], status["refund_amount"]) == ("REFUND_SUCCESS", "2.30")


def test_the_sdk_verifies_a_simulator_notify(sdk, simulator_server, callback_receiver):
    callback_receiver.body = b"success"
    created = sdk.api_alipay_trade_precreate(subject="tea", out_trade_no="SDK-N1", total_amount="0.01")
    _pay(simulator_server, qr_code=created["qr_code"])
    requests.post(simulator_server.base_url + "/alipay/_control/flush", timeout=10)
    received = [r for r in callback_receiver.wait_for(1) if b"SDK-N1" in r["body"]]
    assert received, "the notify did not arrive"
    data = dict(parse_qsl(received[0]["body"].decode("ascii")))
    assert data["trade_status"] == "TRADE_SUCCESS"
    signature = data.pop("sign")
    assert sdk.verify(dict(data), signature) is True  # the SDK pops sign_type itself (B.4)
    data["total_amount"] = "100.00"
    assert sdk.verify(dict(data), signature) is False


def test_the_sdk_rejects_an_answer_the_simulator_signed_wrongly(sdk, simulator_server):
    requests.post(simulator_server.base_url + "/alipay/_control/faults", timeout=10, json={
        "fault": "bad_signature", "match": {"contains": "SDK-BAD1"}})
    with pytest.raises(AliPayValidationError):
        sdk.api_alipay_trade_precreate(subject="tea", out_trade_no="SDK-BAD1", total_amount="0.01")


def test_the_simulator_refuses_a_request_signed_with_another_key(sdk, simulator_server):
    # The SDK's signature is checked: a client holding a different private key gets 40002 isv.invalid-signature.
    intruder = provision(simulator_server.base_url, name="intruder")
    forged = ISVAliPay(appid=sdk.appid, app_private_key_string=intruder["app_private_key"],
                       alipay_public_key_string=intruder["alipay_public_key"], app_auth_token=sdk._app_auth_token)
    forged._gateway = sdk._gateway
    url = forged._gateway + "?" + forged.sign_data(forged.build_body("alipay.trade.query", {"out_trade_no": "x"}))
    answer = requests.get(url, timeout=10).text
    assert '"sub_code":"isv.invalid-signature"' in answer
    # …and the answer itself is signed with the app's Alipay key, so the genuine app can trust the refusal.
    verified = sdk._verify_and_return_sync_response(answer, "alipay_trade_query_response")
    assert verified["code"] == "40002"


def test_a_wap_order_string_built_by_the_sdk_opens_the_simulator_cashier(sdk, simulator_server):
    signed = sdk.api_alipay_trade_wap_pay(subject="tea", out_trade_no="SDK-W1", total_amount="8.00",
                                          return_url="https://shop.example/return")
    page = requests.get(simulator_server.base_url + "/alipay/gateway.do?" + signed, timeout=10)
    assert page.status_code == 200
    assert "收银台" in page.text and "8.00" in page.text
    paid = _pay(simulator_server, out_trade_no="SDK-W1", app_id=sdk.appid)
    assert paid["trade_status"] == "TRADE_SUCCESS"

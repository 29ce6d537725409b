"""WechatPayAdapter payment and refund verbs against the WeChat Pay simulator over real HTTP (A.7-A.10)."""

from __future__ import annotations

import datetime as dt
import secrets
import time

import pytest
import requests

from channels.adapters import wechatpay_crypto as wx
from channels.adapters.base import (
    PaymentRequest,
    RefundRequest,
    RefundState,
    SubMerchant,
    TradeRef,
    TradeState,
)
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.wechatpay import WechatPayAdapter, WechatPayConfig
from channels.simulators.wechatpay import provision

SUB = SubMerchant(sub_mchid="1600000101")


def sim(server, method: str, path: str, **kwargs) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.request(method, f"{server.base_url}/wechatpay{path}", timeout=10, **kwargs)


def otn(prefix: str = "T") -> str:
    return prefix + secrets.token_hex(10)


def payment(product: str, **overrides) -> PaymentRequest:
    fields = {"product": product, "sub_merchant": SUB, "out_trade_no": otn(), "amount": 1234, "subject": "龙井 250g",
              "notify_url": "http://127.0.0.1:9/notify", "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
              "payer_id": "oSpOpenid0001", "client_ip": "203.0.113.7"}
    return PaymentRequest(**{**fields, **overrides})


def test_it_creates_a_native_payment_and_queries_it_as_pending(wechatpay_adapter):
    request = payment("wechat.native")
    result = wechatpay_adapter.create_payment(request)
    assert result.state == TradeState.PENDING
    assert result.pay_params["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    queried = wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
    assert (queried.state, queried.amount, queried.sub_mchid, queried.out_trade_no) == (
        TradeState.PENDING, 1234, SUB.sub_mchid, request.out_trade_no)
    assert queried.raw["trade_type"] == "NATIVE"


def test_it_sees_a_native_payment_succeed_after_the_payer_scans(simulator_server, wechatpay_adapter):
    request = payment("wechat.native")
    code_url = wechatpay_adapter.create_payment(request).pay_params["code_url"]
    paid = sim(simulator_server, "POST", "/_payer/pay", json={"code_url": code_url, "payer_id": "oPayer42"})
    assert paid.status_code == 200, paid.text
    result = wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
    assert result.state == TradeState.SUCCEEDED
    assert result.channel_trade_no == paid.json()["transaction_id"]
    assert result.payer_id == "oPayer42"
    assert result.paid_at is not None and abs((dt.datetime.now(dt.UTC) - result.paid_at).total_seconds()) < 60


def test_it_returns_jsapi_params_that_the_payers_wallet_accepts(simulator_server, wechatpay_adapter, wechatpay_config):
    request = payment("wechat.jsapi")
    result = wechatpay_adapter.create_payment(request)
    params = result.pay_params["jsapi"]
    assert params["appId"] == wechatpay_config.sp_appid  # sp_openid ⇒ sp_appid (A.9)
    assert params["package"] == "prepay_id=" + result.pay_params["prepay_id"] and params["signType"] == "RSA"
    tampered = {**params, "nonceStr": params["nonceStr"][::-1]}
    refused = sim(simulator_server, "POST", "/_payer/pay", json={"prepay_id": result.pay_params["prepay_id"],
                                                                 "jsapi": tampered})
    assert refused.status_code == 400 and "paySign" in refused.json()["message"]
    paid = sim(simulator_server, "POST", "/_payer/pay", json={"prepay_id": result.pay_params["prepay_id"],
                                                              "jsapi": params})
    assert paid.status_code == 200, paid.text
    queried = wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
    assert queried.state == TradeState.SUCCEEDED and queried.payer_id == "oSpOpenid0001"


def test_it_uses_sub_openid_and_sub_appid_for_a_mini_program(wechatpay_adapter):
    sub = SubMerchant(sub_mchid="1600000102", sub_appid="wxminiprogram0001")
    request = payment("wechat.mini", sub_merchant=sub, payer_id="oSubOpenid")
    result = wechatpay_adapter.create_payment(request)
    assert result.pay_params["jsapi"]["appId"] == "wxminiprogram0001"
    queried = wechatpay_adapter.query_payment(TradeRef(sub_merchant=sub, out_trade_no=request.out_trade_no))
    assert queried.raw["sub_appid"] == "wxminiprogram0001" and queried.raw["trade_type"] == "JSAPI"


def test_it_signs_app_params_over_appid_timestamp_nonce_and_prepayid(wechatpay_adapter, wechatpay_config):
    params = wechatpay_adapter.create_payment(payment("wechat.app")).pay_params["app"]
    assert params["partnerid"] == SUB.sub_mchid and params["package"] == "Sign=WXPay"
    message = f"{params['appid']}\n{params['timestamp']}\n{params['noncestr']}\n{params['prepayid']}\n".encode()
    public = wx.public_key(wx.private_key(wechatpay_config.private_key_pem).public_key().public_bytes(
        wx.serialization.Encoding.PEM, wx.serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    assert wx.rsa_verify(public, message, params["sign"])


def test_it_returns_an_h5_url_that_comes_back_to_the_return_url(wechatpay_adapter):
    result = wechatpay_adapter.create_payment(payment("wechat.h5", return_url="https://shop.example/done?o=1"))
    assert result.pay_params["h5_url"].endswith("&redirect_url=https%3A%2F%2Fshop.example%2Fdone%3Fo%3D1")


def test_it_refuses_an_h5_payment_without_the_payers_ip_before_calling(wechatpay_adapter):
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.create_payment(payment("wechat.h5", client_ip=""))
    assert caught.value.code == "invalid_params" and not isinstance(caught.value, ChannelUnknown)


def test_it_gets_the_same_prepay_answer_for_the_same_order_and_a_refusal_for_a_changed_one(wechatpay_adapter):
    request = payment("wechat.native")
    first = wechatpay_adapter.create_payment(request)
    assert wechatpay_adapter.create_payment(request).pay_params == first.pay_params
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.create_payment(payment("wechat.native", out_trade_no=request.out_trade_no, amount=999))
    assert (caught.value.channel_code, caught.value.code, caught.value.http_status) == (
        "OUT_TRADE_NO_USED", "invalid_params", 403)


@pytest.mark.parametrize(("auth_code", "state", "failure_code"), [
    ("134567890123456780", TradeState.SUCCEEDED, ""),
    ("134567890123456789", TradeState.FAILED, "payment_failed"),
    ("134567890123456787", TradeState.FAILED, "insufficient_balance"),
    ("134567890123456788", TradeState.FAILED, "auth_code_invalid"),
    ("99999", TradeState.FAILED, "auth_code_invalid"),
])
def test_it_charges_a_payment_code_with_the_scenario_its_last_digit_picks(wechatpay_adapter, auth_code, state,
                                                                          failure_code):
    result = wechatpay_adapter.create_payment(payment("wechat.barcode", auth_code=auth_code))
    assert (result.state, result.failure_code) == (state, failure_code)
    if state == TradeState.SUCCEEDED:
        assert result.channel_trade_no and result.amount == 1234 and result.raw["trade_type"] == "MICROPAY"


def test_it_polls_a_user_paying_code_until_it_succeeds(simulator_server, fresh_wechatpay_adapter):
    wechatpay_adapter = fresh_wechatpay_adapter
    sim(simulator_server, "POST", f"/_control/accounts/{wechatpay_adapter.config.sp_mchid}/settings",
        json={"userpaying_seconds": 0.3})
    request = payment("wechat.barcode", auth_code="134567890123456785")
    assert wechatpay_adapter.create_payment(request).state == TradeState.USER_PAYING
    ref = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    assert wechatpay_adapter.query_payment(ref).state == TradeState.USER_PAYING
    time.sleep(0.35)
    assert wechatpay_adapter.query_payment(ref).state == TradeState.SUCCEEDED


def test_it_sees_a_user_paying_code_fail_when_the_payer_gives_up(simulator_server, wechatpay_adapter):
    request = payment("wechat.barcode", auth_code="134567890123456786")
    assert wechatpay_adapter.create_payment(request).state == TradeState.USER_PAYING
    ref = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    with pytest.raises(ChannelError) as caught:  # A.6: closing while the payer confirms is 202 USERPAYING
        wechatpay_adapter.close_payment(ref)
    assert caught.value.code == "user_paying" and caught.value.retryable
    sim(simulator_server, "POST", "/_payer/pay", json={"out_trade_no": request.out_trade_no, "outcome": "fail"})
    result = wechatpay_adapter.query_payment(ref)
    assert (result.state, result.failure_code) == (TradeState.FAILED, "payment_failed")
    assert result.failure_message and result.raw["trade_state"] == "PAYERROR"


def test_it_reverses_a_paid_payment_code_trade(wechatpay_adapter):
    request = payment("wechat.barcode", auth_code="104567890123456781")
    assert wechatpay_adapter.create_payment(request).state == TradeState.SUCCEEDED
    ref = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    assert wechatpay_adapter.reverse_payment(ref).state == TradeState.REVERSED
    assert wechatpay_adapter.query_payment(ref).state == TradeState.REVERSED


def test_it_reports_an_unknown_trade_as_not_found(wechatpay_adapter):
    result = wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=otn("NONE")))
    assert (result.state, result.failure_code) == (TradeState.NOT_FOUND, "ORDER_NOT_EXIST")


def test_it_closes_an_unpaid_trade_which_then_cannot_be_paid(simulator_server, wechatpay_adapter):
    request = payment("wechat.native")
    wechatpay_adapter.create_payment(request)
    ref = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    assert wechatpay_adapter.close_payment(ref) is None  # 204, signed over an empty body
    assert wechatpay_adapter.query_payment(ref).state == TradeState.CLOSED
    refused = sim(simulator_server, "POST", "/_payer/pay", json={"out_trade_no": request.out_trade_no})
    assert refused.json()["code"] == "ORDER_CLOSED"


def test_it_cannot_close_a_paid_trade(simulator_server, wechatpay_adapter):
    request = payment("wechat.native")
    wechatpay_adapter.create_payment(request)
    sim(simulator_server, "POST", "/_payer/pay", json={"out_trade_no": request.out_trade_no})
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.close_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
    assert (caught.value.code, caught.value.permanent) == ("order_paid", True)


def _paid_trade(adapter) -> TradeRef:
    request = payment("wechat.barcode", auth_code="134567890123456781", amount=1000)
    result = adapter.create_payment(request)
    return TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no, channel_trade_no=result.channel_trade_no)


def test_it_refunds_partially_and_sees_the_refund_succeed(simulator_server, fresh_wechatpay_adapter):
    wechatpay_adapter = fresh_wechatpay_adapter
    sim(simulator_server, "POST", f"/_control/accounts/{wechatpay_adapter.config.sp_mchid}/settings",
        json={"refund_delay_seconds": 0.3})
    trade = _paid_trade(wechatpay_adapter)
    refund = wechatpay_adapter.refund(RefundRequest(trade=trade, out_refund_no=otn("R"), amount=400, total_amount=1000))
    assert (refund.state, refund.amount) == (RefundState.PROCESSING, 400) and refund.channel_refund_no
    assert wechatpay_adapter.query_payment(trade).raw["trade_state"] == "REFUND"  # A.8: SUCCESS → REFUND
    assert wechatpay_adapter.query_payment(trade).state == TradeState.SUCCEEDED
    time.sleep(0.35)
    queried = wechatpay_adapter.query_refund(trade=trade, out_refund_no=refund.out_refund_no)
    assert (queried.state, queried.amount) == (RefundState.SUCCEEDED, 400) and queried.succeeded_at is not None


def test_it_repeats_a_refund_idempotently_and_refuses_one_beyond_the_refundable_amount(wechatpay_adapter):
    trade = _paid_trade(wechatpay_adapter)
    request = RefundRequest(trade=trade, out_refund_no=otn("R"), amount=700, total_amount=1000)
    first = wechatpay_adapter.refund(request)
    assert wechatpay_adapter.refund(request).channel_refund_no == first.channel_refund_no
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.refund(RefundRequest(trade=trade, out_refund_no=otn("R"), amount=301, total_amount=1000))
    assert caught.value.channel_code == "INVALID_REQUEST" and caught.value.permanent


@pytest.mark.parametrize(("status", "state", "code"), [("ABNORMAL", RefundState.ABNORMAL, "ABNORMAL"),
                                                      ("CLOSED", RefundState.CLOSED, "channel_error")])
def test_it_reports_refunds_the_channel_could_not_complete(simulator_server, wechatpay_adapter, wechatpay_config,
                                                           status, state, code):
    trade = _paid_trade(wechatpay_adapter)
    refund = wechatpay_adapter.refund(RefundRequest(trade=trade, out_refund_no=otn("R"), amount=100, total_amount=1000))
    sim(simulator_server, "POST", f"/_control/refunds/{refund.out_refund_no}",
        json={"sp_mchid": wechatpay_config.sp_mchid, "status": status})
    queried = wechatpay_adapter.query_refund(trade=trade, out_refund_no=refund.out_refund_no)
    assert (queried.state, queried.failure_code, queried.raw["status"]) == (state, code, status)


def test_it_reports_an_unknown_refund_as_not_found(wechatpay_adapter):
    trade = _paid_trade(wechatpay_adapter)
    assert wechatpay_adapter.query_refund(trade=trade, out_refund_no=otn("R")).state == RefundState.NOT_FOUND


def test_it_cannot_refund_an_unpaid_trade(wechatpay_adapter):
    request = payment("wechat.native")
    wechatpay_adapter.create_payment(request)
    trade = TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.refund(RefundRequest(trade=trade, out_refund_no=otn("R"), amount=1, total_amount=1234))
    assert caught.value.channel_code == "TRADE_ERROR"


def test_it_is_told_the_sub_merchant_does_not_exist_when_the_channel_checks(simulator_server,
                                                                            fresh_wechatpay_adapter):
    wechatpay_adapter = fresh_wechatpay_adapter
    sim(simulator_server, "POST", f"/_control/accounts/{wechatpay_adapter.config.sp_mchid}/settings",
        json={"strict_sub_mchid": True, "sub_mchids": ["1600000999"]})
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.create_payment(payment("wechat.native"))
    assert (caught.value.code, caught.value.channel_code) == ("merchant_not_found", "MCH_NOT_EXISTS")
    ok = wechatpay_adapter.create_payment(payment("wechat.native", sub_merchant=SubMerchant(sub_mchid="1600000999")))
    assert ok.state == TradeState.PENDING


def test_it_works_in_platform_certificate_mode(simulator_server):
    config = WechatPayConfig(**provision(simulator_server.base_url, name="certificate-mode", mode="certificate"))
    assert not config.wechatpay_public_key_id
    adapter = WechatPayAdapter(config, base_url=simulator_server.base_url + "/wechatpay")
    request = payment("wechat.native")
    assert adapter.create_payment(request).state == TradeState.PENDING
    serial, pem = adapter.encryption_key()
    assert "BEGIN CERTIFICATE" in pem and serial == wx.certificate_serial(pem)
    assert adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no)).state == \
        TradeState.PENDING


def test_answers_naming_unknown_serials_refetch_the_certificates_at_most_once_a_minute(simulator_server, monkeypatch):
    from channels.adapters import wechatpay

    config = WechatPayConfig(**provision(simulator_server.base_url, name="serial-flood", mode="certificate"))
    adapter = WechatPayAdapter(config, base_url=simulator_server.base_url + "/wechatpay")
    downloads = []
    download = WechatPayAdapter._download_certificates
    monkeypatch.setattr(WechatPayAdapter, "_download_certificates",
                        lambda self: downloads.append(1) or download(self))  # counts, then fetches for real
    assert adapter.create_payment(payment("wechat.native")).state == TradeState.PENDING
    assert len(downloads) == 1  # the first verification fetches the list

    forged = {"Wechatpay-Timestamp": str(int(time.time())), "Wechatpay-Nonce": secrets.token_hex(16),
              "Wechatpay-Signature": "AAAA", "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}
    for _ in range(5):  # a flood of answers or callbacks with serials nobody issued
        with pytest.raises(wx.CryptoError):
            adapter._check_signature({**forged, "Wechatpay-Serial": secrets.token_hex(20).upper()}, b"{}")
    assert len(downloads) == 1  # fetched a minute ago: not again

    monkeypatch.setattr(wechatpay, "CERTIFICATE_REFETCH_SECONDS", 0.0)  # a minute later
    with pytest.raises(wx.CryptoError):
        adapter._check_signature({**forged, "Wechatpay-Serial": secrets.token_hex(20).upper()}, b"{}")
    assert len(downloads) == 2  # a rotated certificate is still picked up


def test_the_simulator_keeps_its_trades_across_a_restart(tmp_path):
    from channels.simulators.server import SimulatorThread
    from channels.simulators.store import Store

    state = tmp_path / "simulators.sqlite3"
    first = SimulatorThread(Store(state)).start()
    try:
        config = WechatPayConfig(**provision(first.base_url, name="restart"))
        request = payment("wechat.native")
        WechatPayAdapter(config, base_url=first.base_url + "/wechatpay").create_payment(request)
    finally:
        first.stop()
    second = SimulatorThread(Store(state)).start()  # a new process would open the same file
    try:
        adapter = WechatPayAdapter(config, base_url=second.base_url + "/wechatpay")
        result = adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
        assert (result.state, result.amount) == (TradeState.PENDING, 1234)
    finally:
        second.stop()


def test_it_signs_and_the_simulator_verifies_an_out_trade_no_that_needs_percent_encoding(wechatpay_adapter):
    request = payment("wechat.native", out_trade_no="T*" + secrets.token_hex(6) + "|x-_")
    wechatpay_adapter.create_payment(request)
    result = wechatpay_adapter.query_payment(TradeRef(sub_merchant=SUB, out_trade_no=request.out_trade_no))
    assert (result.state, result.out_trade_no) == (TradeState.PENDING, request.out_trade_no)


# --- which openid (A.7, §E) -----------------------------------------------------------------------------------
def _oauth_openid(adapter) -> str:
    """An openid from the simulator's snsapi_base OAuth under the provider's app (sp_appid), as one-code-pay gets."""
    url = adapter.oauth_authorize_url(redirect_uri="http://127.0.0.1:9/back", state="s")
    session = requests.Session()
    session.trust_env = False
    back = session.get(url.split("#")[0], allow_redirects=False, timeout=10).headers["Location"]
    return adapter.oauth_payer_id(code=back.split("code=")[1].split("&")[0])


def test_an_openid_of_unstated_kind_is_a_sub_openid_when_the_contract_has_a_sub_appid(wechatpay_adapter):
    sub = SubMerchant(sub_mchid="1600000103", sub_appid="wxsubofficial0001")
    request = payment("wechat.jsapi", sub_merchant=sub, payer_id="oSubOpenidFromMerchant")  # the merchant API's
    result = wechatpay_adapter.create_payment(request)
    assert result.pay_params["jsapi"]["appId"] == "wxsubofficial0001"
    queried = wechatpay_adapter.query_payment(TradeRef(sub_merchant=sub, out_trade_no=request.out_trade_no))
    assert queried.raw["sub_appid"] == "wxsubofficial0001"


def test_an_sp_openid_is_sent_as_sp_openid_and_invoked_with_sp_appid_even_when_the_contract_has_a_sub_appid(
        simulator_server, wechatpay_adapter, wechatpay_config):
    sub = SubMerchant(sub_mchid="1600000104", sub_appid="wxsubofficial0002")
    openid = _oauth_openid(wechatpay_adapter)
    request = payment("wechat.jsapi", sub_merchant=sub, payer_id=openid, payer_id_kind="sp")
    result = wechatpay_adapter.create_payment(request)
    params = result.pay_params["jsapi"]
    assert params["appId"] == wechatpay_config.sp_appid  # A.9: the appid the openid belongs to
    paid = sim(simulator_server, "POST", "/_payer/pay", json={"prepay_id": result.pay_params["prepay_id"],
                                                              "jsapi": params})
    assert paid.status_code == 200, paid.text
    queried = wechatpay_adapter.query_payment(TradeRef(sub_merchant=sub, out_trade_no=request.out_trade_no))
    assert queried.state == TradeState.SUCCEEDED and queried.raw["payer"] == {"sp_openid": openid}


def test_the_simulator_refuses_an_openid_its_oauth_issued_for_sp_appid_sent_as_sub_openid(wechatpay_adapter):
    sub = SubMerchant(sub_mchid="1600000105", sub_appid="wxsubofficial0003")
    openid = _oauth_openid(wechatpay_adapter)
    with pytest.raises(ChannelError) as refused:
        wechatpay_adapter.create_payment(payment("wechat.jsapi", sub_merchant=sub, payer_id=openid))
    assert refused.value.channel_code == "PARAM_ERROR" and "sub_openid" in str(refused.value)


def test_the_simulator_refuses_an_openid_issued_for_another_accounts_appid(simulator_server, wechatpay_adapter):
    other = WechatPayAdapter(WechatPayConfig(**provision(simulator_server.base_url, name="otherappid")),
                             base_url=simulator_server.base_url + "/wechatpay")
    openid = _oauth_openid(other)
    with pytest.raises(ChannelError) as refused:
        wechatpay_adapter.create_payment(payment("wechat.jsapi", payer_id=openid, payer_id_kind="sp"))
    assert refused.value.channel_code == "PARAM_ERROR" and "sp_openid" in str(refused.value)

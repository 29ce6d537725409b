"""Injected faults against every Alipay adapter verb (issue 3; design §5 rule 2: no answer is never a failure)."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import requests

from channels.adapters.alipay import AlipayAdapter, AlipayConfig
from channels.adapters.base import PaymentRequest, RefundRequest, SubMerchant, TradeRef, TradeState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.simulators.alipay import provision, provision_merchant

READ_TIMEOUT = 0.3


# One app for the module (key generation is the slow part); every fault rule matches this app's id and is
# consumed by the very request it targets, and every test uses its own trade numbers.
@pytest.fixture(scope="module")
def alipay_config(simulator_server):
    return AlipayConfig(**provision(simulator_server.base_url, name="fault tests"))


@pytest.fixture(scope="module")
def alipay_merchant(simulator_server, alipay_config):
    made = provision_merchant(simulator_server.base_url, app_id=alipay_config.app_id, name="Fault shop")
    return SubMerchant(sub_mchid=made["sub_mchid"], app_auth_token=made["app_auth_token"])


@pytest.fixture(scope="module")
def adapter(simulator_server, alipay_config):
    return AlipayAdapter(alipay_config, base_url=simulator_server.base_url + "/alipay", read_timeout=READ_TIMEOUT)


@pytest.fixture
def paid(adapter, alipay_merchant):
    """A paid barcode trade (its own number per test) to query, refund, reverse."""
    out_trade_no = "P" + uuid.uuid4().hex[:16]
    adapter.create_payment(PaymentRequest(
        product="alipay.barcode", sub_merchant=alipay_merchant, out_trade_no=out_trade_no, amount=500,
        subject="tea", notify_url="", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
        auth_code="281234567890123450"))
    return TradeRef(sub_merchant=alipay_merchant, out_trade_no=out_trade_no)


VERBS = {
    "create_payment": lambda a, t: a.create_payment(PaymentRequest(
        product="alipay.qr", sub_merchant=t.sub_merchant, out_trade_no="N" + t.out_trade_no, amount=100, subject="tea",
        notify_url="http://127.0.0.1:9/n", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))),
    "query_payment": lambda a, t: a.query_payment(t),
    "close_payment": lambda a, t: a.close_payment(t),
    "reverse_payment": lambda a, t: a.reverse_payment(t),
    "refund": lambda a, t: a.refund(RefundRequest(trade=t, out_refund_no="P1-r", amount=100, total_amount=500)),
    "query_refund": lambda a, t: a.query_refund(trade=t, out_refund_no="P1-r"),
    "download_bill": lambda a, t: a.download_bill(bill_date=dt.date.today(), app_auth_token=t.sub_merchant.app_auth_token),
    "oauth_payer_id": lambda a, t: a.oauth_payer_id(code="whatever"),
}


def inject(server, app_id: str, fault: str, **rule) -> None:
    response = requests.post(server.base_url + "/alipay/_control/faults", timeout=10,
                             json={"fault": fault, "match": {"contains": app_id, "path": "gateway"}, **rule})
    assert response.status_code == 201


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_timeout_is_unknown_and_quick(adapter, paid, alipay_config, simulator_server, verb):
    inject(simulator_server, alipay_config.app_id, "timeout", seconds=1.5)
    started = time.monotonic()
    with pytest.raises(ChannelUnknown):
        VERBS[verb](adapter, paid)
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("fault", ["http_500", "http_503"])
@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_server_error_is_unknown(adapter, paid, alipay_config, simulator_server, verb, fault):
    inject(simulator_server, alipay_config.app_id, fault)
    with pytest.raises(ChannelUnknown) as caught:
        VERBS[verb](adapter, paid)
    assert caught.value.http_status == int(fault[-3:])


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_wrongly_signed_answer_is_rejected_as_unknown(adapter, paid, alipay_config, simulator_server, verb):
    inject(simulator_server, alipay_config.app_id, "bad_signature")
    with pytest.raises(ChannelUnknown) as caught:
        VERBS[verb](adapter, paid)
    assert caught.value.code == "invalid_signature"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_business_error_carries_alipays_sub_code(adapter, paid, alipay_config, simulator_server, verb):
    inject(simulator_server, alipay_config.app_id, "business_error", code="ACQ.REASON_TRADE_BEEN_FREEZEN",
           message="交易被冻结")
    with pytest.raises(ChannelError) as caught:
        VERBS[verb](adapter, paid)
    error = caught.value
    assert not isinstance(error, ChannelUnknown)
    assert (error.channel_code, error.code, error.channel_message) == (
        "ACQ.REASON_TRADE_BEEN_FREEZEN", "merchant_limited", "交易被冻结")
    assert error.permanent


def test_alipays_system_error_is_unknown_not_a_refusal(adapter, paid, alipay_config, simulator_server):
    inject(simulator_server, alipay_config.app_id, "business_error", code="ACQ.SYSTEM_ERROR")
    with pytest.raises(ChannelUnknown) as caught:
        adapter.refund(RefundRequest(trade=paid, out_refund_no="P1-r", amount=100, total_amount=500))
    assert caught.value.channel_code == "ACQ.SYSTEM_ERROR" and caught.value.retryable


def test_a_barcode_pay_that_times_out_is_unknown_and_the_query_finds_it(adapter, alipay_merchant, alipay_config,
                                                                        simulator_server):
    # The answer comes too late for us but Alipay did charge the payer: unknown, and the query tells the truth.
    inject(simulator_server, alipay_config.app_id, "latency", seconds=0.6)
    request = PaymentRequest(product="alipay.barcode", sub_merchant=alipay_merchant, out_trade_no="L" + uuid.uuid4().hex[:16], amount=100,
                             subject="tea", notify_url="", auth_code="281234567890123451",
                             expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    with pytest.raises(ChannelUnknown):
        adapter.create_payment(request)
    time.sleep(0.5)  # the slow answer completes at the simulator
    found = adapter.query_payment(TradeRef(sub_merchant=alipay_merchant, out_trade_no=request.out_trade_no))
    assert found.state == TradeState.SUCCEEDED


def test_a_little_latency_is_tolerated(adapter, paid, alipay_config, simulator_server):
    inject(simulator_server, alipay_config.app_id, "latency", seconds=0.1)
    assert adapter.query_payment(paid).state == TradeState.SUCCEEDED

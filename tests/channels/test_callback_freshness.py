"""A genuine Alipay notify is verified for freshness as well as signature (design §5 rule 4): one stamped further
back than Alipay's retries can reach is refused like a bad signature — recorded as a security event, answered
``fail``, nothing changed — while one as old as a late retry is still applied (channels/adapters/alipay_notify.py
explains the window). The simulator signs every notify with its real Alipay key, stamped when it is first sent
(a held-back one when it is released); ``stale_callback`` stamps it in the past."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from urllib.parse import parse_qsl, quote

import pytest
import requests

from aggpay.models import AuditLog
from channels.adapters.alipay_wire import BEIJING, parse_time
from channels.adapters.base import CallbackKind
from channels.adapters.errors import SignatureError
from channels.models import CallbackOutcome, ChannelCallback
from tests.channels.test_alipay_callbacks import paid_qr
from tests.trades import conftest as trades_fixtures
from trades.models import Order

shop = trades_fixtures.shop  # the Tea House persona, contracted on every channel, called back at the live server
HOUR = 3600


def _alipay_qr_order(shop, out_trade_no: str) -> dict:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": "alipay.qr", "subject": "tea"})
    assert status == 201, order
    return order


def _stamped_hours_ago(simulator_server, hours: float, needle: str) -> None:
    requests.post(f"{simulator_server.base_url}/alipay/_control/faults", timeout=10, json={
        "fault": "stale_callback", "phase": "callback", "seconds": hours * HOUR, "match": {"contains": needle}},
    ).raise_for_status()


def _first_answer(shop, order_id: str) -> dict:
    """The simulator's record of the first delivery of the notify about ``order_id``, once it has our answer."""
    url = f"{shop.root}/alipay/_control/callbacks?contains={quote(f'out_trade_no={order_id}&')}"

    def answered():
        deliveries = requests.get(url, timeout=10).json()["callbacks"]
        return deliveries[0] if len(deliveries) == 1 and deliveries[0]["log"] else None

    return shop.wait_for(answered, message="the simulator to record our answer")


@pytest.fixture
def alipay_sim(simulator_server):
    """The Alipay simulator; afterwards, the retries of notifies we refused are called off, so they do not reach
    the live server while a later test's database is being flushed."""
    sim = simulator_server.app.apps["alipay"]
    yield sim
    for item in sim.notifier.pending():
        sim.store.update(sim.notifier.ns, item["id"], acked=True, cancelled=True)


def test_a_genuine_alipay_notify_older_than_the_retry_window_is_refused_and_changes_nothing(
        shop, simulator_server, alipay_sim):
    order = _alipay_qr_order(shop, "FRESH0001")
    _stamped_hours_ago(simulator_server, 27, order["id"])  # beyond the 25 h of retries and the hour of slack

    shop.sim("alipay", "/_payer/pay", qr_code=order["pay_params"]["code_url"])

    account = shop.accounts["alipay"]
    refused = shop.wait_for(lambda: ChannelCallback.objects.filter(account=account,
                                                                   outcome=CallbackOutcome.REJECTED).first(),
                            message="the stale notify to be refused")
    assert "stale" in refused.message and "notify_time" in refused.message, refused.message
    assert refused.event_id == ""  # refused before anything in it was read
    assert AuditLog.objects.filter(action="security.callback.unverified", target_id=str(refused.pk)).exists()
    assert not ChannelCallback.objects.filter(account=account, outcome=CallbackOutcome.APPLIED).exists()
    paid = Order.objects.get(pk=order["id"])
    assert (paid.state, paid.paid_at, paid.channel_trade_no) == ("pending", None, "")
    assert _first_answer(shop, order["id"])["log"][0]["response"] == "fail"  # as for a bad signature: Alipay retries


def test_a_genuine_alipay_notify_as_old_as_a_late_retry_is_applied(shop, simulator_server, alipay_sim):
    order = _alipay_qr_order(shop, "FRESH0002")
    # Alipay's last retry comes 24 h 24 min after the first send (4m+10m+10m+1h+2h+6h+15h, B.4); if it carries
    # the first send's notify_time, it must still be applied.
    _stamped_hours_ago(simulator_server, 24.5, order["id"])

    shop.sim("alipay", "/_payer/pay", qr_code=order["pay_params"]["code_url"])

    # The callback's record is written once the order's change is committed: wait for the record.
    applied = shop.wait_for(lambda: ChannelCallback.objects.filter(account=shop.accounts["alipay"],
                                                                   outcome=CallbackOutcome.APPLIED).first(),
                            message="the late retry to be applied")
    assert order["id"] in applied.message and applied.event_id
    paid = Order.objects.get(pk=order["id"])
    assert paid.state == "succeeded" and paid.channel_trade_no
    assert not ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED).exists()
    delivery = _first_answer(shop, order["id"])
    assert delivery["acked"] and delivery["log"][0]["response"] == "success"


def _zft_message(alipay_sim, alipay_config, receiver, order_id: str) -> None:
    """The simulator sends a 直付通 review message (蚂蚁消息, B.4/B.7), signed with its key for our app."""
    app = alipay_sim.store.get(alipay_sim.APPS, alipay_config.app_id)
    alipay_sim.send_signed_notify(app, receiver.url, {
        "msg_method": "ant.merchant.expand.indirect.zft.passed", "notify_id": uuid.uuid4().hex,
        "biz_content": json.dumps({"order_id": order_id, "smid": "2088000000000777", "external_id": "AGGZFT1"}),
        "utc_timestamp": "0", "app_id": alipay_config.app_id, "version": "1.1", "charset": "utf-8",
        "sign_type": "RSA2"}, thread=order_id)


@pytest.mark.parametrize(("hours", "fresh"), [(27, False), (20, True), (-1, False)])
def test_an_alipay_message_is_judged_by_its_utc_timestamp(alipay_sim, alipay_adapter, alipay_config,
                                                          callback_receiver, simulator_server, hours, fresh):
    callback_receiver.body = b"success"
    order_id = "2026ZFT" + uuid.uuid4().hex[:12]
    _stamped_hours_ago(simulator_server, hours, order_id)  # -1: an hour in the future

    _zft_message(alipay_sim, alipay_config, callback_receiver, order_id)

    [delivery] = callback_receiver.wait_for(1)
    if fresh:
        event = alipay_adapter.parse_callback(headers=delivery["headers"], body=delivery["body"])
        assert event.kind == CallbackKind.ONBOARDING and event.data["application_id"] == order_id
    else:
        with pytest.raises(SignatureError, match="utc_timestamp"):
            alipay_adapter.parse_callback(headers=delivery["headers"], body=delivery["body"])


def test_a_held_back_alipay_notify_is_stamped_when_it_is_finally_sent(alipay_adapter, alipay_merchant,
                                                                      callback_receiver, simulator_server):
    callback_receiver.body = b"success"
    out_trade_no = "HELD" + uuid.uuid4().hex[:12]
    requests.post(f"{simulator_server.base_url}/alipay/_control/faults", timeout=10, json={
        "fault": "out_of_order_callback", "phase": "callback", "match": {"contains": out_trade_no}},
    ).raise_for_status()
    paid_qr(alipay_adapter, alipay_merchant, callback_receiver, simulator_server, out_trade_no)
    time.sleep(1.2)  # notify_time has whole seconds
    released_at = dt.datetime.now(BEIJING).replace(microsecond=0)

    requests.post(f"{simulator_server.base_url}/alipay/_control/flush", json={}, timeout=10).raise_for_status()

    [delivery] = callback_receiver.wait_for(1)
    assert parse_time(dict(parse_qsl(delivery["body"].decode()))["notify_time"]) >= released_at
    event = alipay_adapter.parse_callback(headers=delivery["headers"], body=delivery["body"])
    assert event.payment.out_trade_no == out_trade_no

"""The demo's trades (aggpay/management/demo_trades.py): ``seed_demo`` makes a morning of Demo Tea House's sales
through the public interfaces only — signed merchant-API calls, the simulators' payer endpoints, their fault rules
and settings — against the real application and simulators, so each order has its channel calls, callbacks,
events and deliveries; the support agent's queues each hold their case — the exhausted deliveries after a day of
real retries on the ladder — and running it again adds nothing.

PostgreSQL here (the demo itself runs on SQLite: README.md), live HTTP, the simulators on their own port."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
from contextlib import closing
from itertools import pairwise

import pytest
import requests
from django.core.management import CommandError, call_command

from aggpay.management import demo, demo_trades
from aggpay.models import AuditLog
from channels.models import ChannelAccount, ChannelCallback
from channels.services.demo import (
    DEMO_WECHAT_ACCOUNT,
    demo_channel_accounts_seed,
    demo_merchant_contracts_seed,
)
from merchants.models import Merchant
from trades import workbench
from trades.models import ChannelCall, Delivery, DeliveryAttempt, Event, LatePayment, Order, Refund
from trades.services.events import MAX_ATTEMPTS, RETRY_DELAYS, deliveries_resend

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_channels")]

EXPECTED_STATE = {"pay": "succeeded", "reverse": "reversed", "refused": "failed", "close": "closed",
                  "leave": "pending", "unknown": "pending", "late": "closed"}


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_merchant(transactional_db, simulator_server, settings):
    """What ``seed_demo`` makes before the trades: the merchant, its app, the demo channel accounts at the
    simulators and the merchant's contracts on them."""
    settings.AGGPAY_SIMULATOR_BASE_URL = simulator_server.base_url
    call_command("seed_demo", "--allow-published-passwords", "--skip-channels", "--skip-staff", stdout=io.StringIO())
    demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
    merchant = Merchant.objects.get(merchant_no=demo.DEMO_MERCHANT_NO)
    demo_merchant_contracts_seed(merchant=merchant, simulator_root=simulator_server.base_url)
    return merchant


def _order(no: str) -> Order:
    return Order.objects.get(merchant__merchant_no=demo.DEMO_MERCHANT_NO, out_trade_no=no)


def _event_types(order: Order) -> list[str]:
    return [event.type for event in workbench.order_events(order, list(order.refunds.all()))]


def _footprint() -> tuple[int, ...]:
    return (Order.objects.count(), Refund.objects.count(), ChannelCall.objects.count(),
            ChannelCallback.objects.count(), Event.objects.count(), Delivery.objects.count(),
            LatePayment.objects.count(), AuditLog.objects.count())


def test_it_makes_the_morning_through_the_public_interfaces_and_a_second_run_adds_nothing(
        demo_merchant, live_server, simulator_server, settings, callback_receiver):
    """One seeding (it takes ~10 s), checked part by part below."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    report = demo_trades.demo_trades_seed(merchant=demo_merchant, base_url=live_server.url,
                                          simulator_root=simulator_server.base_url, notify_url=callback_receiver.url)
    assert report.made == demo_trades.planned_numbers() and not report.existing and not report.notes

    every_sale_ends_in_the_state_of_its_story()
    each_paid_order_has_its_channel_calls_callback_events_and_notification(callback_receiver)
    the_refused_notify_url_shows_failing_attempts_on_the_retry_ladder()
    the_shops_switched_off_server_exhausted_two_notifications_after_a_day_of_real_retries()
    its_refunds_are_partial_full_twice_partial_and_one_abnormal()
    the_support_agents_queues_each_hold_their_case()
    the_simulated_banks_answer_normally_again_afterwards(simulator_server)

    before = _footprint()
    again = demo_trades.demo_trades_seed(merchant=demo_merchant, base_url=live_server.url,
                                         simulator_root=simulator_server.base_url, notify_url=callback_receiver.url)
    assert again.made == [] and again.existing == demo_trades.planned_numbers()
    assert _footprint() == before


def every_sale_ends_in_the_state_of_its_story():
    states = dict(Order.objects.filter(merchant__merchant_no=demo.DEMO_MERCHANT_NO)
                  .values_list("out_trade_no", "state"))
    assert states == {sale.no: EXPECTED_STATE[sale.then] for sale in demo_trades.SALES}
    products = set(Order.objects.values_list("channel_product", flat=True))
    assert {"wechat.native", "alipay.qr", "unionpay.qr", "wechat.barcode", "alipay.barcode", "unionpay.barcode",
            "wechat.app", "alipay.wap", "alipay.jsapi"} <= products
    accounts = set(Order.objects.values_list("channel_account__code", flat=True))
    assert accounts == {"bank-a", "bank-b", "wechatpay-isv", "alipay-isv"}
    assert _order("DEMO-0016").failure_code == "insufficient_balance"  # the payer's balance was short
    assert "order.reversed" in _event_types(_order("DEMO-0017"))  # the till cancelled a paid code
    assert "order.closed" in _event_types(_order("DEMO-0024"))


def each_paid_order_has_its_channel_calls_callback_events_and_notification(callback_receiver):
    paid = [sale for sale in demo_trades.SALES if sale.then in ("pay", "reverse")]
    for sale in paid:
        order = _order(sale.no)
        assert order.channel_trade_no, sale.no
        assert order.channel_calls.filter(verb="create").exists(), sale.no
        assert "order.succeeded" in _event_types(order), sale.no
        delivery = Delivery.objects.get(event__object_id=order.pk, event__type="order.succeeded")
        assert delivery.attempt_log.exists(), sale.no
        # REFUSED_NOTIFY_URL: nothing listens — on the retry ladder, or at its end after a day of retries.
        expected = "exhausted" if sale.notify_exhausted else "pending" if sale.notify_refused else "delivered"
        assert delivery.state == expected, sale.no
        if sale.product != "barcode":  # paid by the payer after the create: the channel called back
            callbacks = workbench.order_callbacks(order, list(order.refunds.all()))
            assert any(c.outcome == "applied" for c in callbacks), sale.no
    # The shop's order server received the notifications of its orders.
    received = [json.loads(r["body"]) for r in callback_receiver.requests]
    assert {n["data"]["object"]["out_trade_no"] for n in received if n["type"] == "order.succeeded"} == {
        sale.no for sale in paid if not sale.notify_refused}


def the_refused_notify_url_shows_failing_attempts_on_the_retry_ladder():
    refused = [sale.no for sale in demo_trades.SALES if sale.notify_refused and not sale.notify_exhausted]
    assert len(refused) >= 1
    for no in refused:
        delivery = Delivery.objects.get(event__object_id=_order(no).pk)
        assert delivery.url == demo_trades.REFUSED_NOTIFY_URL
        assert delivery.state == "pending" and delivery.next_attempt_at is not None
        attempt = DeliveryAttempt.objects.get(delivery=delivery)
        assert attempt.status_code is None and attempt.error and attempt.finished_at


def the_shops_switched_off_server_exhausted_two_notifications_after_a_day_of_real_retries():
    """The seed plays the whole ladder of merchant-api.md "Notifications and events" for these orders through the
    delivery service, its clock set to each retry's due time: every attempt a real POST the notify URL refused,
    spaced exactly as the contract says, so the support agent's queue has deliveries to resend."""
    exhausted = [sale.no for sale in demo_trades.SALES if sale.notify_exhausted]
    assert len(exhausted) >= 2  # one to resend alone, and the rest of the merchant's with one click
    assert all(sale.notify_refused for sale in demo_trades.SALES if sale.notify_exhausted)
    for no in exhausted:
        order = _order(no)
        delivery = Delivery.objects.get(event__object_id=order.pk)
        assert delivery.url == demo_trades.REFUSED_NOTIFY_URL
        assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("exhausted", MAX_ATTEMPTS, None)
        attempts = list(delivery.attempt_log.order_by("number"))
        assert [a.number for a in attempts] == list(range(1, MAX_ATTEMPTS + 1))
        for attempt in attempts:  # refused at the TCP level: no status, the client's error, a recorded answer
            assert attempt.status_code is None and "ConnectionError" in attempt.error, (no, attempt.number)
            assert attempt.finished_at >= attempt.started_at, (no, attempt.number)
        # Each retry started when the ladder said, after the previous answer.
        waits = [later.started_at - earlier.finished_at for earlier, later in pairwise(attempts)]
        assert waits == list(RETRY_DELAYS), no
        # The first attempt was the real one, right after the payment; the day of retries follows it.
        paid = Event.objects.get(object_id=order.pk, type="order.succeeded")
        assert dt.timedelta(0) <= attempts[0].started_at - paid.created_at < dt.timedelta(minutes=1), no
        assert attempts[-1].finished_at - attempts[0].started_at > dt.timedelta(hours=24), no
    assert sorted(d.event.data["out_trade_no"] for d in workbench.exhausted_deliveries()) == exhausted


def its_refunds_are_partial_full_twice_partial_and_one_abnormal():
    def refunds(no):
        return [(r.out_refund_no, r.amount, r.state, r.abnormal)
                for r in _order(no).refunds.order_by("out_refund_no")]

    assert refunds("DEMO-0001") == [("DEMO-0001-R1", 500, "succeeded", False)]
    assert refunds("DEMO-0004") == [("DEMO-0004-R1", 12800, "succeeded", False)]
    assert refunds("DEMO-0008") == [("DEMO-0008-R1", 1000, "succeeded", False),
                                    ("DEMO-0008-R2", 1500, "succeeded", False)]
    assert refunds("DEMO-0019") == [("DEMO-0019-R1", 990, "succeeded", False)]  # WeChat Pay ISV's notice
    assert refunds("DEMO-0021") == [("DEMO-0021-R1", 3500, "succeeded", False)]  # Alipay ISV
    assert refunds("DEMO-0023") == [("DEMO-0023-R1", 4200, "pending", True)]  # Bank B could not return it
    assert _order("DEMO-0008").refunded_amount == 2500
    assert Refund.objects.count() == 7
    for refund in Refund.objects.all():
        assert refund.channel_calls.filter(verb="refund").exists(), refund.out_refund_no
    assert _event_types(_order("DEMO-0008")).count("refund.succeeded") == 2


def the_support_agents_queues_each_hold_their_case():
    unknown = list(workbench.unknown_orders())
    assert [o.out_trade_no for o in unknown] == ["DEMO-0029"]
    assert unknown[0].sync_state == "unknown" and unknown[0].next_query_at is not None
    # The bank answered the close's query with a 503: an unknown outcome, and no close was sent.
    assert list(unknown[0].channel_calls.values_list("verb", "outcome")) == [("create", "pending"),
                                                                             ("query", "unknown")]

    late = list(workbench.open_late_payments())
    assert [lp.order.out_trade_no for lp in late] == ["DEMO-0030"]
    assert late[0].state == "open" and late[0].refund_attempts == 1 and "refund failed" in late[0].resolution
    # The bank answered the close "already closed" (the staged fault) while its trade was still open.
    assert _order("DEMO-0030").channel_calls.filter(verb="close", channel_code="ORDER_CLOSED").exists()
    assert AuditLog.objects.filter(action="trades.late_payment.refund", target_id=late[0].order_id).exists()

    assert [r.out_refund_no for r in workbench.abnormal_refunds()] == ["DEMO-0023-R1"]
    assert workbench.queue_counts() == {"unknown": 1, "late": 1, "abnormal": 1, "exhausted": 2}


def the_simulated_banks_answer_normally_again_afterwards(simulator_server):
    """The settings the demo changed to stage the failed and the abnormal refund are put back: a refund the shop
    or support asks for later succeeds."""
    for code in ("bank-a", "bank-b"):
        org = Order.objects.filter(channel_account__code=code).first().channel_account.config["org_no"]
        answer = requests.get(f"{simulator_server.base_url}/bank/_control/accounts/{org}", timeout=10).json()
        assert answer["settings"]["refund_outcome"] == "SUCCESS", code


def test_seed_demo_serves_the_app_itself_on_the_public_address_for_the_traffic(demo_merchant, settings):
    """``make demo``'s seed runs before runserver: the command serves AGGPAY_PUBLIC_BASE_URL itself while the
    traffic runs, then frees the port; a second run finds the trades and leaves them alone."""
    port = _free_port()
    settings.AGGPAY_SIMULATORS = True
    settings.AGGPAY_PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-staff", stdout=out)
    text = out.getvalue()
    assert f"making the demo trades against http://127.0.0.1:{port}" in text
    assert f"created {len(demo_trades.SALES)} demo trades" in text
    assert "queues: unknown outcomes 1, late payments 1, abnormal refunds 1, exhausted deliveries 2" in text
    assert Order.objects.count() == len(demo_trades.SALES)
    # Every callback came to the command's own server, on the demo's port.
    assert ChannelCallback.objects.filter(outcome="applied").count() >= 10
    with closing(socket.socket()) as sock:
        # Freed for runserver, which binds as this does (SO_REUSEADDR): a connection the seed's server accepted
        # may still be closing, and a plain bind would fail on it, though runserver would not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()

    before = _footprint()
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-staff", stdout=out)
    assert f"exists  {len(demo_trades.SALES)} demo trades" in out.getvalue()
    assert _footprint() == before


def test_the_support_agent_can_resend_the_seeded_exhausted_deliveries_one_and_then_all_of_the_merchant(
        demo_merchant, live_server, simulator_server, settings, callback_receiver, staff_member):
    """What the demo's "Exhausted deliveries" queue is for: the agent resends one delivery, then the rest of the
    merchant's. The notify URL still refuses, so each resend is a new round of the ladder with one failed attempt."""
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    demo_trades.demo_trades_seed(merchant=demo_merchant, base_url=live_server.url,
                                 simulator_root=simulator_server.base_url, notify_url=callback_receiver.url)
    agent = staff_member("support_agent")
    first, *rest = workbench.exhausted_deliveries()
    assert rest

    deliveries_resend(delivery_id=first.pk, actor=agent, reason="the shop says its server is back")
    first.refresh_from_db()
    assert (first.state, first.attempts) == ("pending", 1) and first.next_attempt_at is not None
    assert first.attempt_log.count() == MAX_ATTEMPTS + 1  # the day's attempts stay, the new round's follows
    assert [d.pk for d in workbench.exhausted_deliveries()] == [d.pk for d in rest]

    deliveries_resend(merchant=demo_merchant, actor=agent, reason="all of Demo Tea House's, once more")
    assert not workbench.exhausted_deliveries().exists()
    assert AuditLog.objects.filter(action="trades.delivery.resent").count() == 1 + len(rest)


def test_seed_demo_says_clearly_when_the_demo_port_is_taken(demo_merchant, settings):
    settings.AGGPAY_SIMULATORS = True
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings.AGGPAY_PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
        with pytest.raises(CommandError, match=rf"127\.0\.0\.1:{port} is in use.*PORT={port + 1} make demo"):
            call_command("seed_demo", "--allow-published-passwords", "--skip-staff", stdout=io.StringIO())
    assert not Order.objects.exists()


def test_seed_demo_makes_no_trades_without_the_in_process_simulators(demo_merchant, settings):
    """``make seed`` points at another database and simulators that nothing in this process serves."""
    settings.AGGPAY_SIMULATORS = False
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-staff", stdout=out)
    assert "skipped demo trades" in out.getvalue()
    assert not Order.objects.exists()


def test_the_demo_merchant_can_take_wechat_jsapi_at_its_cheapest_bank(demo_merchant, live_server, settings):
    """The demo's bank contracts carry the merchant's WeChat appid (bank.md §6.2): a wechat.jsapi order goes to the
    cheapest account and gets its JS-bridge parameters. Without the appid every such order failed at the bank
    ("sub_appid is required")."""
    from aggpay.api.client import AggpayClient

    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    client = AggpayClient(base_url=live_server.url, app_id=demo.DEMO_APP_ID, secret=demo.DEMO_APP_SECRET)
    status, _, order = client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "DEMO-JSAPI-1", "amount": 1200, "product": "wechat.jsapi", "subject": "Longjing tea",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}})
    assert status == 201, order
    wechat_appid = ChannelAccount.objects.get(code=DEMO_WECHAT_ACCOUNT).config["sp_appid"]
    assert order["state"] == "pending" and order["pay_params"]["jsapi"]["appId"] == wechat_appid
    assert Order.objects.get(pk=order["id"]).channel_account.kind == "bank"

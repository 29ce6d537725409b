"""Payment-code (barcode) orders follow the channel's flow (issue 5, design §5 rule 2, channel-protocols.md A.11,
B.5, bank.md §6.3): the payer confirming (USERPAYING, Alipay 10003) is queried every 5 s up to the limit, and an
order still unpaid then is reversed; a create with no definite answer is queried before anything else. Over
signed HTTP against the simulators, the ladder's rungs brought forward by hand (no timed waits)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
import redis
from django.core.cache import cache
from django.utils import timezone

from tests.trades.order_steps import call_outcomes as _calls
from tests.trades.test_deliveries_worker import BROKER_URL, _new_prefix, publishing_to
from trades.models import Event, Order
from trades.services.orders import QUERY_CLAIM_PREFIX
from trades.tasks_orders import sync_due_orders

pytestmark = pytest.mark.usefixtures("quiet_channels")

NEVER = 600  # seconds: the simulators' payer takes this long to confirm, i.e. not within the test


def _create(shop, out_trade_no, auth_code, product="barcode", amount=1500):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": product, "subject": "tea", "auth_code": auth_code})
    assert status == 201, order
    return order


def _rung_due(order_id):
    """The next rung of the ladder is due now (the 5 s wait, skipped)."""
    Order.objects.filter(pk=order_id).update(next_query_at=timezone.now() - dt.timedelta(seconds=1))


def _ladder_over(order_id):
    """The order is older than the barcode ladder's minute, and its next rung is due."""
    old = timezone.now() - dt.timedelta(minutes=2)
    Order.objects.filter(pk=order_id).update(created_at=old, expires_at=old + dt.timedelta(seconds=60),
                                             next_query_at=timezone.now() - dt.timedelta(seconds=1))


# --- Alipay 10003: the payer confirms in the wallet, queried on the ladder -----------------------------------------
def test_it_keeps_querying_an_alipay_code_the_payer_is_still_confirming_every_rung_of_the_ladder(shop):
    shop.sim("alipay", f"/_control/accounts/{shop.accounts['alipay'].config['app_id']}/settings",
             user_paying_seconds=NEVER)
    order = _create(shop, "PCA00001", "281234567890123456")  # ending 6: 10003, the payer confirms later
    assert order["state"] == "pending"

    for _ in range(3):  # Alipay answers WAIT_BUYER_PAY while the payer confirms (B.5): ask again 5 s later
        _rung_due(order["id"])
        sync_due_orders()
        stored = Order.objects.get(pk=order["id"])
        assert stored.state == "pending" and stored.next_query_at is not None, stored.sync_state
        assert stored.next_query_at > timezone.now()
    assert _calls(order["id"], "query") == ["pending"] * 3


def test_it_reverses_an_alipay_code_still_unpaid_when_the_ladder_ends(shop):
    shop.sim("alipay", f"/_control/accounts/{shop.accounts['alipay'].config['app_id']}/settings",
             user_paying_seconds=NEVER)
    order = _create(shop, "PCA00002", "281234567890123456")
    _rung_due(order["id"])
    sync_due_orders()
    _ladder_over(order["id"])
    sync_due_orders()

    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed" and stored.sync_state == "ok", (stored.state, stored.sync_state)
    assert _calls(order["id"], "reverse") == ["reversed"]
    assert Event.objects.filter(object_id=order["id"], type="order.reversed").count() == 1


# --- WeChat USERPAYING ---------------------------------------------------------------------------------------------
def test_it_settles_a_wechat_code_paid_while_the_ladder_polls(shop):
    order = _create(shop, "PCW00001", "134567890123456785")  # ending 5: USERPAYING, paid after 2 s
    assert order["state"] == "pending"

    def a_rung_finds_it_paid():
        _rung_due(order["id"])
        sync_due_orders()
        return Order.objects.get(pk=order["id"]).state == "succeeded"

    shop.wait_for(a_rung_finds_it_paid, timeout=15, message="paid during polling")
    assert _calls(order["id"], "reverse") == []


def test_it_reverses_a_wechat_code_never_confirmed(shop):
    shop.sim("wechatpay", f"/_control/accounts/{shop.accounts['wechatpay'].config['sp_mchid']}/settings",
             userpaying_seconds=NEVER)
    order = _create(shop, "PCW00002", "134567890123456785")
    _rung_due(order["id"])
    sync_due_orders()
    assert Order.objects.get(pk=order["id"]).next_query_at > timezone.now()
    _ladder_over(order["id"])
    sync_due_orders()
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed", (stored.state, stored.sync_state)


# --- a create with no definite answer is queried first -----------------------------------------------------------
def test_a_bank_code_whose_create_answers_unknown_is_queried_and_found_paid_never_reversed(shop):
    order = _create(shop, "PCB00001", "6212345678901234569")  # ending 9: paid, but the answer is UNKNOWN
    assert order["state"] == "pending"
    stored = Order.objects.get(pk=order["id"])
    assert stored.sync_state == "unknown" and stored.next_query_at is not None
    _rung_due(order["id"])
    sync_due_orders()
    assert Order.objects.get(pk=order["id"]).state == "succeeded"
    assert _calls(order["id"], "reverse") == [] and _calls(order["id"], "close") == []


def test_a_wechat_code_whose_create_answers_system_error_is_pending_unknown_not_failed(shop):
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="SYSTEM_ERROR", message="系统繁忙",
             status=500, match={"path": "transactions/codepay$"})
    order = _create(shop, "PCW00003", "134567890123456780")
    assert order["state"] == "pending"
    stored = Order.objects.get(pk=order["id"])
    assert stored.sync_state == "unknown" and _calls(order["id"], "reverse") == []


# --- expiry meets the ladder ---------------------------------------------------------------------------------------
def test_a_code_whose_expiry_comes_before_the_ladders_last_rung_is_still_reversed_by_the_ladder(shop):
    shop.sim("wechatpay", f"/_control/accounts/{shop.accounts['wechatpay'].config['sp_mchid']}/settings",
             userpaying_seconds=NEVER)
    order = _create(shop, "PCW00004", "134567890123456785")
    now = timezone.now()
    # 61 s old: expired (a payment code lives 60 s), its last rung (asked at 58 s) due in 2 s.
    Order.objects.filter(pk=order["id"]).update(created_at=now - dt.timedelta(seconds=61),
                                                expires_at=now - dt.timedelta(seconds=1),
                                                next_query_at=now + dt.timedelta(seconds=2))
    sync_due_orders()  # the expiry sweeper reaches the order first
    if Order.objects.get(pk=order["id"]).next_query_at is not None:
        _rung_due(order["id"])  # the last rung, 2 s later
    sync_due_orders()
    stored = Order.objects.get(pk=order["id"])
    assert stored.state == "reversed", (stored.state, stored.sync_state, stored.next_query_at)


# --- the merchant polling a code the payer is confirming -----------------------------------------------------------
def _barcode_steps_published(prefix):
    """The barcode_step tasks published to the broker under ``prefix`` (nothing consumes them in this test)."""
    client = redis.Redis.from_url(BROKER_URL)
    steps = 0
    for key in client.scan_iter(match=f"{prefix}*"):
        if client.type(key) != b"list":
            continue
        for raw in client.lrange(key, 0, -1):
            steps += json.loads(raw)["headers"]["task"].endswith(".barcode_step")
    return steps


@contextlib.contextmanager
def _dropped_afterwards(prefix):
    try:
        yield
    finally:
        client = redis.Redis.from_url(BROKER_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


def test_the_merchant_polling_a_code_being_confirmed_does_not_start_a_second_ladder(shop):
    """Each GET /orders/{no} that asked the channel and heard USERPAYING queued one more 5-second chain of
    barcode_step tasks beside the ladder's own: a till polling every 3 s for the payer's minute left some twenty
    chains asking the channel about one order (and reversing it twenty times at the end)."""
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {BROKER_URL} ({exc})")
    shop.sim("wechatpay", f"/_control/accounts/{shop.accounts['wechatpay'].config['sp_mchid']}/settings",
             userpaying_seconds=NEVER)
    prefix = _new_prefix()
    with publishing_to(BROKER_URL, prefix), _dropped_afterwards(prefix):
        order = _create(shop, "PCW00005", "134567890123456785")
        assert _barcode_steps_published(prefix) == 1  # the ladder's first rung
        for _ in range(3):  # the till asks; each GET is let through the per-order rate limit
            cache.delete(f"{QUERY_CLAIM_PREFIX}{order['id']}")
            Order.objects.filter(pk=order["id"]).update(last_queried_at=None)
            status, _, polled = shop.client.request("GET", "/api/v1/orders/PCW00005")
            assert status == 200 and polled["state"] == "pending"
        assert _calls(order["id"], "query") == ["user_paying"] * 3
        assert _barcode_steps_published(prefix) == 1

"""Query budgets (issue 5 "How it is checked"): order create ≤ 12 queries, order query ≤ 4, payment callback ≤ 12,
whatever the data size. Each request runs in this thread through Django's test client (so CaptureQueriesContext
sees every query), signed like a merchant's; the channels are the simulators over real HTTP.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from channels.models import CallbackOutcome, ChannelCallback
from trades.models import Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

CREATE_BUDGET, QUERY_BUDGET, CALLBACK_BUDGET = 12, 4, 12


def _signed(shop, method: str, path: str, body: dict | None = None):
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    auth = shop.client.authorization(method, path, raw)
    client = Client()
    if method == "GET":
        return client.get(path, HTTP_AUTHORIZATION=auth, HTTP_ACCEPT="application/json")
    return client.generic(method, path, raw, content_type="application/json; charset=utf-8",
                          HTTP_AUTHORIZATION=auth, HTTP_ACCEPT="application/json")


def _create(shop, out_trade_no: str, product: str = "alipay.qr"):
    return _signed(shop, "POST", "/api/v1/orders", {"out_trade_no": out_trade_no, "amount": 990,
                                                    "product": product, "subject": "tea"})


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def _counted(call):
    """(response, statements that read or write data, all statements). Transaction control (BEGIN, SAVEPOINT…)
    is listed but not counted against the budget: it carries no data and costs no index or table access."""
    with CaptureQueriesContext(connection) as queries:
        response = call()
    sql = [q["sql"] for q in queries.captured_queries]
    data = [q for q in sql if not q.startswith(TRANSACTION_CONTROL)]
    return response, len(data), [q[:160] for q in sql]


@pytest.fixture
def broker_not_eager():
    """Tasks are enqueued (to an in-memory broker) instead of run inline on commit: the merchant notification a
    callback queues is the worker's work, not the callback's (design §5 rule 8)."""
    from aggpay.celery import app

    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager, app.conf.broker_url = False, "memory://"
    yield
    app.conf.task_always_eager, app.conf.broker_url = saved


def _paid_order_with_held_callback(shop, simulator_server, out_trade_no):
    response = _create(shop, out_trade_no)
    assert response.status_code == 201, response.content
    order = response.json()
    shop.sim("alipay", "/_control/faults", fault="out_of_order_callback", phase="callback",
             match={"contains": order["id"]})
    shop.sim("alipay", "/_payer/pay", qr_code=order["pay_params"]["code_url"])
    held = simulator_server.app.apps["alipay"].held_notifies(order["id"])
    return order, held[0]


def _post_callback(item):
    path = "/" + item["url"].split("/", 3)[3]
    return Client().generic("POST", path, item["body"].encode("ascii"),
                            content_type="application/x-www-form-urlencoded; charset=utf-8")


@pytest.mark.parametrize("earlier", [1, 25])
def test_create_query_and_callback_stay_within_their_budgets_whatever_the_data_size(shop, simulator_server,
                                                                                    broker_not_eager, earlier):
    for i in range(earlier):  # data size: earlier orders, some paid (events, deliveries, callbacks)
        if i % 5 == 0:
            _paid_order_with_held_callback(shop, simulator_server, f"QCOLD{i:03d}")
        else:
            assert _create(shop, f"QCOLD{i:03d}").status_code == 201

    response, count, sql = _counted(lambda: _create(shop, "QCNEW001"))
    assert response.status_code == 201, response.content
    assert count <= CREATE_BUDGET, "\n".join(sql)

    response, count, sql = _counted(lambda: _signed(shop, "GET", "/api/v1/orders/QCNEW001"))
    assert response.status_code == 200 and response.json()["state"] == "pending"
    assert count <= QUERY_BUDGET, "\n".join(sql)

    order, item = _paid_order_with_held_callback(shop, simulator_server, "QCPAID01")
    applied = ChannelCallback.objects.filter(outcome=CallbackOutcome.APPLIED, account=shop.accounts["alipay"])
    before = applied.count()
    response, count, sql = _counted(lambda: _post_callback(item))
    assert response.status_code == 200 and response.content.strip() == b"success", response.content
    assert Order.objects.get(pk=order["id"]).state == "succeeded"
    assert applied.count() == before + 1
    assert count <= CALLBACK_BUDGET, "\n".join(sql)

    response, count, sql = _counted(lambda: _signed(shop, "GET", "/api/v1/orders/QCPAID01"))
    assert response.status_code == 200 and response.json()["state"] == "succeeded"
    assert count <= QUERY_BUDGET, "\n".join(sql)

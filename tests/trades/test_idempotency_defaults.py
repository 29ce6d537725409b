"""A retried create that spells out a default it left out the first time is the same request (merchant-api.md
"Errors": ``409 idempotency_conflict`` is for the same ``out_trade_no`` / ``out_refund_no`` with *different*
parameters; design §5 rule 5). SDKs do this: ``"currency": "CNY"``, ``"metadata": {}``. Over signed HTTP against the
simulators: omitted and explicit default replay (``200``, ``Idempotent-Replayed: true``) in both orders, a real
difference is still a 409 naming the key, and an order stored before the change (fingerprint of the old scheme)
still replays."""

from __future__ import annotations

import hashlib
import json

import pytest

from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

PAID_AT_ONCE = "134567890123456780"  # a WeChat payment code the simulator charges at once (ends in 0)
OTHER_URL = "https://shop.example.com/aggpay/notify"


def _body(out_trade_no: str, **fields) -> dict:
    return {"out_trade_no": out_trade_no, "amount": 1500, "product": "alipay.qr", "subject": "Longjing tea",
            **fields}


def _create(shop, body: dict):
    return shop.client.request("POST", "/api/v1/orders", json=body)


def _assert_replayed(answer, first: dict) -> None:
    status, headers, body = answer
    assert status == 200, body
    assert headers["Idempotent-Replayed"] == "true"
    assert body["id"] == first["id"]


def _assert_conflict(answer, param: str) -> None:
    status, headers, body = answer
    assert status == 409, body
    assert (body["error"]["code"], body["error"]["param"]) == ("idempotency_conflict", param)
    assert "Idempotent-Replayed" not in headers


# Each optional field with a default (merchant-api.md "Orders"), spelled out as the default it stands for.
DEFAULTS = {
    "currency": ("alipay.qr", {"currency": "CNY"}),
    "description": ("alipay.qr", {"description": ""}),
    "metadata": ("alipay.qr", {"metadata": {}}),
    "payer": ("alipay.qr", {"payer": {}}),
    "store_id": ("alipay.qr", {"store_id": ""}),
    "terminal_id": ("alipay.qr", {"terminal_id": ""}),
    "expire_seconds": ("alipay.qr", {"expire_seconds": 7200}),
    "expire_seconds of a payment code": ("barcode", {"expire_seconds": 60, "auth_code": PAID_AT_ONCE}),
    "expire_seconds of the cashier": ("cashier", {"expire_seconds": 7200}),
    "all of them at once": ("alipay.qr", {"currency": "CNY", "description": "", "metadata": {}, "payer": {},
                                          "store_id": "", "terminal_id": "", "expire_seconds": 7200}),
}


@pytest.mark.parametrize("explicit_first", [False, True], ids=["omitted-first", "explicit-first"])
@pytest.mark.parametrize("case", list(DEFAULTS))
def test_it_replays_an_order_whether_a_default_is_omitted_or_spelled_out(shop, case, explicit_first):
    product, spelled = DEFAULTS[case]
    omitted = {k: v for k, v in spelled.items() if k == "auth_code"}  # the payment code is no default
    number = "T-DEFAULT-1"  # each test has its own database (the shop's transactional_db)
    bodies = [_body(number, product=product, **omitted), _body(number, product=product, **spelled)]
    if explicit_first:
        bodies.reverse()
    status, _, first = _create(shop, bodies[0])
    assert status == 201, first

    _assert_replayed(_create(shop, bodies[1]), first)
    assert Order.objects.filter(merchant=shop.merchant, out_trade_no=number).count() == 1


def test_it_replays_an_order_whose_notify_url_is_the_apps_spelled_out(shop):
    status, _, first = _create(shop, _body("TD-NOTIFY-1"))
    assert status == 201, first
    _assert_replayed(_create(shop, _body("TD-NOTIFY-1", notify_url=shop.app.notify_url)), first)

    status, _, second = _create(shop, _body("TD-NOTIFY-2", notify_url=shop.app.notify_url))
    assert status == 201, second
    _assert_replayed(_create(shop, _body("TD-NOTIFY-2")), second)


def test_it_still_replays_the_same_request_after_the_apps_notify_url_changed(shop):
    # The retry is compared with what the order was made with, not with the app as it is now: a byte-for-byte
    # retry is the same request whatever the app's settings became meanwhile.
    status, _, first = _create(shop, _body("TD-MOVED-1"))
    assert status == 201, first
    app_url = shop.app.notify_url
    type(shop.app).objects.filter(pk=shop.app.pk).update(notify_url=OTHER_URL)

    _assert_replayed(_create(shop, _body("TD-MOVED-1")), first)
    _assert_replayed(_create(shop, _body("TD-MOVED-1", notify_url=app_url)), first)
    # The app's new URL is not what the order notifies: asked for explicitly, it is another request.
    _assert_conflict(_create(shop, _body("TD-MOVED-1", notify_url=OTHER_URL)), "out_trade_no")
    assert Order.objects.get(pk=first["id"]).notify_url == app_url


@pytest.mark.parametrize("first_fields, retry_fields", [
    ({}, {"amount": 1501}),
    ({}, {"subject": "Biluochun"}),
    ({}, {"notify_url": OTHER_URL}),
    ({"notify_url": OTHER_URL}, {}),
    ({}, {"metadata": {"table": "7"}}),
    ({}, {"description": "two cups"}),
    ({}, {"expire_seconds": 600}),
    ({"expire_seconds": 600}, {}),
    ({}, {"store_id": "S001"}),
    ({}, {"currency": "CNY", "metadata": {}, "terminal_id": "T1"}),
], ids=["amount", "subject", "notify_url-added", "notify_url-dropped", "metadata", "description",
        "expire_seconds-added", "expire_seconds-dropped", "store_id", "defaults-and-one-real-change"])
def test_it_still_answers_a_real_difference_with_a_409_naming_out_trade_no(shop, first_fields, retry_fields):
    number = "T-DIFFERS-1"
    status, _, first = _create(shop, _body(number, **first_fields))
    assert status == 201, first
    _assert_conflict(_create(shop, _body(number, **retry_fields)), "out_trade_no")


def _fingerprint_before_the_change(data: dict) -> str:
    """How orders were fingerprinted before omitted and default were the same request: the validated fields as
    given (the API fills in currency), absent ones as null."""
    fields = ("out_trade_no", "amount", "currency", "product", "subject", "description", "metadata", "notify_url",
              "return_url", "expire_seconds", "client_ip", "payer", "auth_code", "store_id", "terminal_id")
    canonical = json.dumps({k: data.get(k) for k in fields}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_it_still_replays_an_order_stored_with_a_fingerprint_of_the_old_scheme(shop):
    body = _body("TD-LEGACY-1", metadata={"table": "7"})
    status, _, first = _create(shop, body)
    assert status == 201, first
    legacy = _fingerprint_before_the_change({**body, "currency": "CNY"})
    order = Order.objects.get(pk=first["id"])
    assert order.request_fingerprint != legacy  # the schemes differ for this request (description etc. omitted)
    Order.objects.filter(pk=order.pk).update(request_fingerprint=legacy)

    _assert_replayed(_create(shop, body), first)
    _assert_replayed(_create(shop, {**body, "currency": "CNY", "description": "", "store_id": ""}), first)
    _assert_conflict(_create(shop, {**body, "amount": 1501}), "out_trade_no")


# --- refunds ----------------------------------------------------------------------------------------------------
def _paid(shop, out_trade_no: str, **fields) -> dict:
    status, _, order = _create(shop, {"out_trade_no": out_trade_no, "amount": 1500, "product": "barcode",
                                      "subject": "tea", "auth_code": PAID_AT_ONCE, **fields})
    assert status == 201 and order["state"] == "succeeded", order
    return order


def _refund(shop, out_trade_no: str, body: dict):
    return shop.client.request("POST", f"/api/v1/orders/{out_trade_no}/refunds", json=body)


@pytest.mark.parametrize("spelled", [{"reason": ""}, {"notify_url": OTHER_URL}], ids=["reason", "notify_url"])
@pytest.mark.parametrize("explicit_first", [False, True], ids=["omitted-first", "explicit-first"])
def test_it_replays_a_refund_whether_a_default_is_omitted_or_spelled_out(shop, spelled, explicit_first):
    # A refund's notifications go to the order's notify_url unless it names its own (docs/api.md "Notifications
    # and events"): the order's URL spelled out is that default. Here the order has its own URL, not the app's.
    number = "T-REFUND-1"
    order = _paid(shop, number, notify_url=OTHER_URL)
    bodies = [{"out_refund_no": f"R-{number}", "amount": 500}, {"out_refund_no": f"R-{number}", "amount": 500,
                                                                **spelled}]
    if explicit_first:
        bodies.reverse()
    status, _, first = _refund(shop, number, bodies[0])
    assert status == 201, first

    status, headers, again = _refund(shop, number, bodies[1])
    assert status == 200, again
    assert headers["Idempotent-Replayed"] == "true" and again["id"] == first["id"]
    assert Refund.objects.filter(order_id=order["id"]).count() == 1


@pytest.mark.parametrize("retry", [{"amount": 400}, {"reason": "one cup short"}, {"notify_url": OTHER_URL}],
                         ids=["amount", "reason", "notify_url"])
def test_it_still_answers_a_refund_that_really_differs_with_a_409_naming_out_refund_no(shop, retry):
    number = "T-REFUND-2"
    _paid(shop, number)  # notifies the app's URL: OTHER_URL is another one
    status, _, first = _refund(shop, number, {"out_refund_no": f"R-{number}", "amount": 500})
    assert status == 201, first
    _assert_conflict(_refund(shop, number, {"out_refund_no": f"R-{number}", "amount": 500, **retry}),
                     "out_refund_no")


def test_it_still_replays_a_refund_stored_with_a_fingerprint_of_the_old_scheme(shop):
    # The old scheme kept an explicit notify_url as given, even the order's own.
    order = _paid(shop, "TR-LEGACY", notify_url=OTHER_URL)
    body = {"out_refund_no": "R-TR-LEGACY", "amount": 500, "notify_url": OTHER_URL}
    status, _, first = _refund(shop, "TR-LEGACY", body)
    assert status == 201, first
    canonical = json.dumps({"out_refund_no": "R-TR-LEGACY", "amount": 500, "reason": "", "notify_url": OTHER_URL},
                           sort_keys=True, ensure_ascii=False)
    legacy = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert Refund.objects.get(pk=first["id"]).request_fingerprint != legacy
    Refund.objects.filter(pk=first["id"]).update(request_fingerprint=legacy)

    status, headers, again = _refund(shop, "TR-LEGACY", body)
    assert status == 200 and headers["Idempotent-Replayed"] == "true" and again["id"] == first["id"], again
    status, _, omitted = _refund(shop, "TR-LEGACY", {"out_refund_no": "R-TR-LEGACY", "amount": 500})
    assert status == 200 and omitted["id"] == first["id"], omitted
    assert Refund.objects.filter(order_id=order["id"]).count() == 1

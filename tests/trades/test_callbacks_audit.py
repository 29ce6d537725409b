"""Callbacks are cross-checked against the order before anything changes, refunds included, and whatever state the
order or refund is already in (design §5 rule 4; issue 5 "Callbacks"): a verified notice that names another trade,
another sub-merchant, another amount — or a trade number another order holds — is refused in the channel's format,
stored raw and recorded as a security event, and changes nothing.

Each notice is signed (and for WeChat Pay encrypted) with the simulator's own keys for the shop's account and posted
over HTTP to the account's callback URL on the live server, so the adapters verify them as they would any notice.
The orders and refunds are written as the services leave them (paid, a refund pending at the channel)."""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest
import requests
from django.utils import timezone

from aggpay.models import AuditLog
from channels.callbacks import callback_url
from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import alipay_trades, bank_wire
from channels.simulators import wechatpay_crypto as wechat_sim_crypto
from merchants.models import Contract
from trades import workbench
from trades.models import Event, Order, Refund
from trades.services.refunds import refund_fingerprint

pytestmark = pytest.mark.usefixtures("quiet_channels")

PRODUCTS = {"wechatpay": "wechat.native", "alipay": "alipay.qr", "bank": "unionpay.qr"}
# What each channel is answered when a notice is refused, and when it is taken (A.4, B.4, bank.md §11.3).
REFUSED = {"wechatpay": (400, b'{"code": "FAIL", "message": "does not match our records"}'),
           "alipay": (200, b"fail"), "bank": (500, b"FAIL")}
TAKEN = {"wechatpay": (204, b""), "alipay": (200, b"success"), "bank": (200, b"SUCCESS")}


def _paid(shop, kind: str, out_trade_no: str, *, amount: int = 1500, state: str = "succeeded") -> Order:
    account = shop.accounts[kind]
    contract = Contract.objects.get(channel_account=account)
    return Order.objects.create(
        merchant=shop.merchant, app=shop.app, out_trade_no=out_trade_no, amount=amount, product=PRODUCTS[kind],
        subject="tea", request_fingerprint="x" * 64, expires_at=timezone.now() + dt.timedelta(hours=2),
        channel_account=account, contract=contract, sub_mchid=contract.sub_mchid, state=state,
        channel_trade_no=("42" + secrets.token_hex(13)) if state == "succeeded" else "",
        paid_at=timezone.now() if state == "succeeded" else None)


def _pending_refund(order: Order, out_refund_no: str, amount: int) -> Refund:
    refund = Refund.objects.create(
        order=order, merchant=order.merchant, out_refund_no=out_refund_no, amount=amount, requested_by="api:x",
        request_fingerprint=refund_fingerprint(out_refund_no=out_refund_no, amount=amount, reason="", notify_url=""))
    Order.objects.filter(pk=order.pk).update(refund_reserved=amount)
    return refund


# --- the channels' notices, signed with the simulators' keys -------------------------------------------------------
def _wechat(shop, simulator_server, *, event_type: str, resource: dict) -> requests.Response:
    sim = simulator_server.app.apps["wechatpay"]
    account = sim.account(shop.accounts["wechatpay"].config["sp_mchid"])
    original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
    plaintext = json.dumps(resource, separators=(",", ":")).encode()
    body = json.dumps({
        "id": "EV-" + secrets.token_hex(12).upper(), "create_time": "2026-11-26T10:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": event_type, "summary": "ok",
        "resource": {"original_type": original_type,
                     **wechat_sim_crypto.aes_encrypt(account["apiv3_key"], plaintext, original_type)},
    }, separators=(",", ":")).encode()
    headers = {**sim.signature_headers(account, body), "Content-Type": "application/json"}
    return requests.post(callback_url(shop.accounts["wechatpay"]), data=body, headers=headers, timeout=10)


def _alipay(shop, simulator_server, params: dict) -> requests.Response:
    sim = simulator_server.app.apps["alipay"]
    app = sim.store.get(sim.APPS, shop.accounts["alipay"].config["app_id"])
    common = {"notify_time": alipay_trades.fmt(alipay_trades.now_bj()), "notify_type": "trade_status_sync",
              "notify_id": secrets.token_hex(16), "app_id": app["app_id"], "charset": "utf-8", "version": "1.0",
              "sign_type": "RSA2"}
    body = alipay_trades.form_body(alipay_trades.signed_params(app, {**common, **params}))
    return requests.post(callback_url(shop.accounts["alipay"]), data=body, timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


def _bank(shop, simulator_server, notify_type: str, fields: dict) -> requests.Response:
    sim = simulator_server.app.apps["bank"]
    account = sim.account(shop.accounts["bank"].config["org_no"])
    message = {"version": "1.0", "org_no": account["org_no"], "notify_id": "N" + secrets.token_hex(12),
               "notify_type": notify_type, "notify_time": bank_wire.now_text(), "sign_type": "RSA2",
               "key_id": account["bank_key_id"], **fields}
    message["sign"] = bank_wire.rsa2_sign(bank_wire.sign_content(message), account["bank_private_key_pem"])
    return requests.post(callback_url(shop.accounts["bank"]), json=message, timeout=10)


def _refund_notice(shop, simulator_server, kind: str, refund: Refund, *, on: Order, sub_mchid: str = "",
                   refund_amount: int | None = None) -> requests.Response:
    """The channel's notice that ``refund`` succeeded, naming the trade ``on`` (and ``sub_mchid``, if given)."""
    sub_mchid = sub_mchid or on.sub_mchid
    amount = refund.amount if refund_amount is None else refund_amount
    if kind == "wechatpay":
        return _wechat(shop, simulator_server, event_type="REFUND.SUCCESS", resource={
            "sp_mchid": shop.accounts["wechatpay"].config["sp_mchid"], "sub_mchid": sub_mchid,
            "out_trade_no": on.pk, "transaction_id": on.channel_trade_no, "out_refund_no": refund.pk,
            "refund_id": "50" + secrets.token_hex(13), "refund_status": "SUCCESS",
            "success_time": "2026-11-26T10:05:00+08:00", "user_received_account": "支付用户零钱",
            "amount": {"total": on.amount, "refund": amount, "payer_total": on.amount, "payer_refund": amount}})
    if kind == "alipay":  # B.4: a partial refund is a TRADE_SUCCESS notify carrying out_biz_no / refund_fee
        return _alipay(shop, simulator_server, {
            "trade_no": on.channel_trade_no, "out_trade_no": on.pk, "seller_id": sub_mchid,
            "trade_status": "TRADE_SUCCESS", "total_amount": f"{on.amount / 100:.2f}",
            "gmt_payment": "2026-11-26 10:00:00", "out_biz_no": refund.pk, "refund_fee": f"{amount / 100:.2f}",
            "gmt_refund": "2026-11-26 10:05:00.000"})
    return _bank(shop, simulator_server, "REFUND_RESULT", {
        "mch_no": sub_mchid, "out_trade_no": on.pk, "trade_no": on.channel_trade_no, "out_refund_no": refund.pk,
        "refund_no": "R" + secrets.token_hex(10), "refund_amount": amount, "refund_state": "SUCCESS",
        "success_time": bank_wire.now_text()})


def _refused_and_recorded(shop, kind: str, response, *, names: str) -> ChannelCallback:
    assert (response.status_code, response.content) == REFUSED[kind]
    record = ChannelCallback.objects.get(account=shop.accounts[kind])
    assert record.outcome == CallbackOutcome.REJECTED and names in record.message, record.message
    assert record.body  # the raw notice is kept
    assert AuditLog.objects.filter(action="security.callback.mismatch", target_id=str(record.pk)).exists()
    return record


# --- refunds -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wechatpay", "alipay", "bank"])
def test_it_refuses_a_refund_notice_that_puts_our_refund_on_another_order(shop, simulator_server, kind):
    order, other = _paid(shop, kind, "AUD-R1"), _paid(shop, kind, "AUD-R2")
    refund = _pending_refund(order, "AUD-RF1", 500)

    response = _refund_notice(shop, simulator_server, kind, refund, on=other)

    record = _refused_and_recorded(shop, kind, response, names=f"out_trade_no {other.pk}, not {order.pk}")
    assert Refund.objects.get(pk=refund.pk).state == "pending"
    assert Order.objects.get(pk=order.pk).refunded_amount == 0
    assert Order.objects.get(pk=other.pk).refunded_amount == 0
    assert not Event.objects.filter(type="refund.succeeded").exists()
    assert record in workbench.order_callbacks(order, [refund])  # support sees it on the trade's timeline


@pytest.mark.parametrize("kind", ["wechatpay", "alipay", "bank"])
def test_it_applies_a_refund_notice_that_names_the_refunds_own_order(shop, simulator_server, kind):
    order = _paid(shop, kind, "AUD-R3")
    refund = _pending_refund(order, "AUD-RF3", 500)

    response = _refund_notice(shop, simulator_server, kind, refund, on=order)

    assert (response.status_code, response.content) == TAKEN[kind]
    assert Refund.objects.get(pk=refund.pk).state == "succeeded"
    assert Order.objects.get(pk=order.pk).refunded_amount == 500


@pytest.mark.parametrize("kind", ["wechatpay", "alipay", "bank"])
def test_it_refuses_a_refund_notice_of_another_sub_merchant(shop, simulator_server, kind):
    order = _paid(shop, kind, "AUD-R4")
    refund = _pending_refund(order, "AUD-RF4", 500)
    stranger = {"wechatpay": "1900009999", "alipay": "2088000000009999", "bank": "826581000009999"}[kind]

    response = _refund_notice(shop, simulator_server, kind, refund, on=order, sub_mchid=stranger)

    _refused_and_recorded(shop, kind, response, names=f"sub-merchant {stranger} is not {order.sub_mchid}")
    assert Refund.objects.get(pk=refund.pk).state == "pending"
    assert Order.objects.get(pk=order.pk).refunded_amount == 0


@pytest.mark.parametrize("kind", ["wechatpay", "bank"])
def test_it_refuses_a_refund_notice_of_another_amount_even_once_the_refund_has_succeeded(shop, simulator_server,
                                                                                         kind):
    order = _paid(shop, kind, "AUD-R5")
    refund = _pending_refund(order, "AUD-RF5", 500)
    assert _refund_notice(shop, simulator_server, kind, refund, on=order).status_code == TAKEN[kind][0]

    response = _refund_notice(shop, simulator_server, kind, refund, on=order, refund_amount=1500)

    assert (response.status_code, response.content) == REFUSED[kind]
    refused = ChannelCallback.objects.get(account=shop.accounts[kind], outcome=CallbackOutcome.REJECTED)
    assert "refund amount 1500, ours is 500" in refused.message, refused.message
    assert AuditLog.objects.filter(action="security.callback.mismatch", target_id=str(refused.pk)).exists()
    assert Order.objects.get(pk=order.pk).refunded_amount == 500


# --- payments ------------------------------------------------------------------------------------------------------
def _transaction(shop, order: Order, **changes) -> dict:
    return {"sp_mchid": shop.accounts["wechatpay"].config["sp_mchid"], "sub_mchid": order.sub_mchid,
            "out_trade_no": order.pk, "transaction_id": order.channel_trade_no or "42" + secrets.token_hex(13),
            "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
            "success_time": "2026-11-26T10:00:00+08:00", "payer": {"sp_openid": "o" + secrets.token_hex(13)},
            "amount": {"total": order.amount, "currency": "CNY", "payer_total": order.amount,
                       "payer_currency": "CNY"}, **changes}


@pytest.mark.parametrize(("changes", "names"), [
    ({"amount": {"total": 1, "currency": "CNY"}}, "amount 1 differs from the order's 1500"),
    ({"sub_mchid": "1900009999"}, "sub-merchant 1900009999 is not 1900000109"),
])
def test_it_refuses_a_copy_of_a_success_that_no_longer_matches_the_paid_order(shop, simulator_server, changes,
                                                                              names):
    order = _paid(shop, "wechatpay", "AUD-P1")

    response = _wechat(shop, simulator_server, event_type="TRANSACTION.SUCCESS",
                       resource=_transaction(shop, order, **changes))

    _refused_and_recorded(shop, "wechatpay", response, names=names)
    assert Order.objects.get(pk=order.pk).state == "succeeded"


def test_it_still_acknowledges_a_true_copy_of_the_success_as_a_duplicate(shop, simulator_server):
    order = _paid(shop, "wechatpay", "AUD-P2")

    response = _wechat(shop, simulator_server, event_type="TRANSACTION.SUCCESS", resource=_transaction(shop, order))

    assert (response.status_code, response.content) == TAKEN["wechatpay"]
    assert ChannelCallback.objects.get(account=shop.accounts["wechatpay"]).outcome == CallbackOutcome.DUPLICATE


def test_it_refuses_a_success_whose_trade_number_another_order_already_holds(shop, simulator_server):
    order = _paid(shop, "wechatpay", "AUD-P3", state="pending")
    other = _paid(shop, "wechatpay", "AUD-P4")

    response = _wechat(shop, simulator_server, event_type="TRANSACTION.SUCCESS",
                       resource=_transaction(shop, order, transaction_id=other.channel_trade_no))

    _refused_and_recorded(shop, "wechatpay", response,
                          names=f"trade number {other.channel_trade_no} is already another order's")
    assert Order.objects.get(pk=order.pk).state == "pending"
    assert not Event.objects.filter(type="order.succeeded").exists()

"""Orders: unified create, query/sync, close, expire, reverse — design §2 (the pipeline) and §5 (the rules).

Shape of every channel interaction (rule 7): a short transaction records intent, the adapter is called with no row
lock held, a second short locked transaction applies the answer through the order's transitions. A timeout,
connection error, 5xx or unverifiable answer (``ChannelUnknown``) never fails an order: it stays pending with
``sync_state = unknown`` and is queried on the ladder (rule 2). Only an explicit answer fails it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import can_proceed

from aggpay.audit import AuditNote, audit_log
from aggpay.errors import (
    ApplicationError,
    ChannelRefused,
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    InvalidState,
    NotFound,
    ProductNotAvailable,
)
from aggpay.fingerprints import request_print
from channels.adapters.base import PaymentRequest, PaymentResult, SubMerchant, TradeRef, TradeState
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.http import Exchange, recording_exchanges
from channels.callbacks import callback_url
from channels.models import ChannelAccount
from channels.routing import Candidate, RoutingDecision, choose
from channels.services.volume import account_volume_add
from channels.sql import prepared_cursor
from merchants.models import Contract, MerchantState
from trades.models import ChannelCall, LatePayment, Order, OrderState, RefundState, SyncState
from trades.products import JSAPI_PRODUCTS, barcode_product
from trades.services.channel_calls import call_fields
from trades.services.events import event_emit
from trades.services.fees import fees_for_payment
from trades.services.ladder import BARCODE_SPAN, close_retry_waits, ladder_start, next_query_at, next_watch_at
from trades.services.representation import order_as_api, state_words

logger = logging.getLogger(__name__)

# How a refusal names the payment code a product takes, with its article ("a alipay payment code" read badly).
WALLET_PAYMENT_CODES = {"wechat.barcode": "a WeChat payment code", "alipay.barcode": "an Alipay payment code",
                        "unionpay.barcode": "a UnionPay payment code"}
DEFAULT_EXPIRE = dt.timedelta(seconds=7200)
BARCODE_EXPIRE = dt.timedelta(seconds=60)
QUERY_MIN_INTERVAL = dt.timedelta(seconds=3)  # GET /orders/{no} asks the channel at most this often per order
QUERY_CLAIM_PREFIX = "trades:order-query:"  # + order id: the rate-limited query's claim (order_sync)
FINGERPRINT_FIELDS = ("out_trade_no", "amount", "currency", "product", "subject", "description", "metadata",
                      "notify_url", "return_url", "expire_seconds", "client_ip", "payer", "auth_code", "store_id",
                      "terminal_id")
# The optional fields the fingerprint's old scheme hashed as null when omitted (_legacy_prints). Not currency: the
# API's serializer always filled it in, so every stored order's print has "CNY".
_OMITTABLE = ("description", "metadata", "notify_url", "return_url", "expire_seconds", "client_ip", "payer",
              "auth_code", "store_id", "terminal_id")


def fingerprint(data: dict, *, default_notify_url: str | None) -> str:
    """sha256 of what a create asks for, for idempotency (design §5 rule 5): its *effective* parameters, each
    optional field as the order is made with it. merchant-api.md "Errors" keeps ``409 idempotency_conflict`` for
    *different* parameters, and a retry that spells out a default it left out the first time (SDKs send
    ``"currency": "CNY"``, ``"metadata": {}``) asks for the same order.

    ``default_notify_url`` is the URL an omitted ``notify_url`` stands for ("default from the app"): given equal to
    it, ``notify_url`` counts as omitted. A create passes the app's URL, which the order then stores; a retry is
    compared with the URL the order stored (``_request_prints``)."""
    return request_print(_effective(data, default_notify_url))


def _effective(data: dict, default_notify_url: str | None) -> dict:
    """The create's parameters with each default of merchant-api.md "Orders" filled in, as _prepare and
    cashier_order_create make the order: omitted, null and the default are one value."""
    product = data.get("product")
    notify_url = data.get("notify_url") or None
    barcode = product == "barcode" or str(product).endswith(".barcode")  # "barcode" resolves to a *.barcode
    return {
        "out_trade_no": data.get("out_trade_no"), "amount": data.get("amount"), "product": product,
        "subject": data.get("subject"),
        "currency": data.get("currency") or "CNY",
        "description": data.get("description") or "",  # free text: none is empty
        "metadata": data.get("metadata") or {},  # "echoed back": none comes back as {}
        "notify_url": None if notify_url == (default_notify_url or None) else notify_url,
        "return_url": data.get("return_url") or "",  # the app has no return URL: none is empty (_prepare)
        "expire_seconds": data.get("expire_seconds") or int((BARCODE_EXPIRE if barcode else DEFAULT_EXPIRE)
                                                            .total_seconds()),  # "default 7200 (barcode: 60)"
        # No defaults but "none": the order stores null / {} / "" for them.
        "client_ip": data.get("client_ip") or None, "payer": data.get("payer") or {},
        "auth_code": data.get("auth_code") or "", "store_id": data.get("store_id") or "",
        "terminal_id": data.get("terminal_id") or "",
    }


def _request_prints(order: Order, data: dict) -> tuple[str, ...]:
    """The prints under which ``data`` is the request that made ``order`` (only a replay computes them; a new order
    computes one print).

    ``notify_url`` is resolved against the URL the order stored, not against the app's URL now: the app's may have
    changed between the request and its retry, and a retry sent byte for byte must still be the same request. So an
    omitted ``notify_url`` and the URL the order notifies are one request whatever the app says now, while the
    app's new URL spelled out is not what the order notifies: another request, a 409. The second print keeps
    ``notify_url`` as given, for a first request that named a URL other than its app's: its print kept that URL,
    and a retry naming it is the same request."""
    return (fingerprint(data, default_notify_url=order.notify_url), fingerprint(data, default_notify_url=None),
            *_legacy_prints(order, data))


def _legacy_prints(order: Order, data: dict) -> tuple[str, str]:
    """Prints of the old scheme (each field as given, an omitted one null), which orders made before effective
    parameters carry: of the retry as sent, and with each default it spells out left out — as an SDK's first
    request mostly had it. Remove after 2027-03-01: an order lives at most 24 h (expire_seconds ≤ 86400) and a
    merchant retries a create within it; three months later no retry of an order of the old scheme is pending."""
    defaults = _effective({"product": data.get("product")}, order.notify_url)
    effective = _effective(data, order.notify_url)
    minimal = {k: None if k in _OMITTABLE and effective[k] == defaults[k] else data.get(k)
               for k in FINGERPRINT_FIELDS}
    return request_print({k: data.get(k) for k in FINGERPRINT_FIELDS}), request_print(minimal)


def _payer_key(product: str) -> str:
    """The key of ``payer`` that names the payer in the product's wallet (merchant-api.md "Orders")."""
    return {"wechat": "openid", "alipay": "buyer_id", "unionpay": "user_id"}[product.split(".", 1)[0]]


def _payer_id(product: str, payer: dict) -> str:
    return str((payer or {}).get(_payer_key(product)) or "")


# --- create ---------------------------------------------------------------------------------------------------
def order_create(*, app, data: dict, routing_token: int | None = None, only_account_id: int | None = None,
                 payer_id_kind: str = "") -> tuple[Order, bool]:
    """Create (or replay) an order for ``app``'s merchant. Returns (order, replayed).

    ``data`` has passed the API's field validation. ``routing_token``: the merchant API's generation token of this
    request, under which routing may reuse what this process read (channels.routing.choose). Raises
    IdempotencyConflict, Forbidden (merchant not active), RiskRejected, ProductNotAvailable, InvalidRequest, or
    ChannelRefused (the channel refused definitively — or retryably with no other contract left to fail over to,
    _create_at_channel; the order is then ``failed`` and a retry of the same request replays it).

    One-code-pay only (the merchant API passes neither): ``only_account_id`` routes to that channel account alone
    (the one whose OAuth issued the payer id; channels.routing.choose), ``payer_id_kind`` says which app the payer id
    belongs to (channels.adapters.base.PaymentRequest).
    """
    merchant = app.merchant
    print_ = fingerprint(data, default_notify_url=app.notify_url)
    if data["product"] == "cashier":
        existing = _existing(merchant, data["out_trade_no"])
        if existing is not None:
            return _replay(existing, data), True
        # Routed when the payer opens the hosted page (trades.services.cashier, issue 5 "One-code-pay").
        from trades.services.cashier import cashier_order_create

        return cashier_order_create(app=app, data=data, print_=print_)
    # A retry is recognised by the INSERT below (ON CONFLICT on merchant + out_trade_no), not by a read before it:
    # new orders, nearly all of them, save that statement. A check that refuses the request first looks whether
    # it is the retry of an order made earlier (which it then replays, as the read-first order would have).
    try:
        values, decision = _prepare(app=app, merchant=merchant, data=data, print_=print_, token=routing_token,
                                     only_account_id=only_account_id)
    except ApplicationError:
        existing = _existing(merchant, data["out_trade_no"])
        if existing is not None:
            return _replay(existing, data), True
        raise
    order = _insert_order(values)
    if order is None:
        # The out_trade_no is taken: a retry, or a concurrent identical create that won (design §5 rule 5).
        existing = Order.objects.get(merchant=merchant, out_trade_no=data["out_trade_no"])
        return _replay(existing, data), True

    order = _create_at_channel(order, decision, data=data, payer_id_kind=payer_id_kind)
    if order.state == OrderState.FAILED:
        raise ChannelRefused(order.failure_message or "the channel refused the payment",
                             channel_code=order.failure_code, channel_message=order.failure_message,
                             extra={"order": order_as_api(order)})
    return order, False


def _not_available(decision: RoutingDecision, *, product: str, amount: int) -> ProductNotAvailable:
    """No contract takes the order. When a contract would take it at another amount (passed over only for its
    per-transaction limits), the amount is what to change: named as the field, with the amounts that would be taken.
    Bug: 5000001 fen on wechat.native was "no active contract can take wechat.native", param product."""
    if decision.amount_ranges and any(c["reason"].startswith("amount outside") for c in decision.candidates):
        low = min(lo for lo, _ in decision.amount_ranges)
        high = max(hi for _, hi in decision.amount_ranges)
        return ProductNotAvailable(f"amount: {amount} fen is outside the amounts {product} takes for this merchant "
                                   f"({low}–{high} fen)", param="amount")
    return ProductNotAvailable(f"no active contract can take {product} for {amount} fen", param="product")


def _create_at_channel(order: Order, decision: RoutingDecision, *, data: dict, payer_id_kind: str) -> Order:
    """Ask the chosen contract's channel to create the trade; on a retryable refusal, the next eligible contract's
    (design §7 layer 4: "failover on retryable errors before the payer is involved").

    A refusal the channel calls temporary (a rate limit, bank HTTP 429, Alipay's ACQ.REQUEST_TOO_FAST…: the
    adapters' ``permanent=False``) says nothing about the other accounts, and nothing was created at this one, so
    the order moves to the next candidate in routing's priority order (order_fail_over) and that one is asked —
    each at most once. Never after a timeout or an unclear answer (ChannelUnknown): the channel may hold the trade,
    and a second one elsewhere could be paid twice (design §5 rule 2); the order stays pending, unknown, as before.
    Never for a payment code: the payer has shown the code to this channel's wallet (``*.barcode`` keeps its path).
    A permanent refusal fails the order, as does the last retryable one when no candidate is left."""
    contract = decision.contract
    fallbacks = None  # built at the first retryable refusal: nearly every order never needs them
    may_fail_over = bool(decision.others) and not _is_barcode(order)
    while True:
        order.contract = contract
        request = _payment_request(order, contract, data=data, payer_id_kind=payer_id_kind)
        try:
            return _call_and_apply(order, contract.channel_account, verb="create", fail_over=may_fail_over,
                                   call=lambda adapter, request=request: adapter.create_payment(request))
        except RefusedRetryably as refused:
            if fallbacks is None:
                fallbacks = _fallbacks(decision, order)
            if not fallbacks:
                return _create_refused(order.pk, refused)
            candidate, next_contract = fallbacks.pop(0)
            order = order_fail_over(order_id=order.pk, refused=refused, account=contract.channel_account,
                                    to=candidate)
            if order.contract_id != candidate.contract_id:
                return order  # changed meanwhile (closed, or answered): nothing more to ask
            contract, may_fail_over = next_contract, bool(fallbacks)


def _payment_request(order: Order, contract: Contract, *, data: dict, payer_id_kind: str) -> PaymentRequest:
    channel_product = order.channel_product
    return PaymentRequest(
        product=channel_product, sub_merchant=_sub_merchant(contract), out_trade_no=order.id, amount=order.amount,
        # The account's own callback URL: the channel that takes the trade calls back where its notices are
        # verified (channels.callbacks), so after a failover the payment's callback matches the new account.
        subject=order.subject, notify_url=callback_url(contract.channel_account), expires_at=order.expires_at,
        currency=order.currency, client_ip=data.get("client_ip") or "", payer_id=_payer_id(channel_product,
                                                                                           order.payer),
        auth_code=data.get("auth_code") or "", return_url=order.return_url, store_id=order.store_id,
        terminal_id=order.terminal_id, payer_id_kind=payer_id_kind,
    )


# Products whose pay parameters belong to one app of the merchant (the contract's sub_appid): _fallbacks.
APP_BOUND_PRODUCTS = frozenset({*JSAPI_PRODUCTS, "wechat.app"})


def _fallbacks(decision: RoutingDecision, order: Order) -> list[tuple[Candidate, Contract]]:
    """The contracts a create refused retryably may move to, in routing's priority order. A JSAPI order carries the
    payer's id in one app (the contract's sub_appid; without one, the account's own app — channel-protocols.md §E,
    channels.adapters.base.PaymentRequest), and WeChat APP pay signs the merchant's mobile app's appid into what
    that app hands the SDK (A.9 APP): only a contract with that same sub_appid can serve either."""
    fallbacks = decision.fallbacks()
    if order.channel_product in APP_BOUND_PRODUCTS:
        appid = decision.contract.sub_appid
        fallbacks = [(c, contract) for c, contract in fallbacks if appid and contract.sub_appid == appid]
    return fallbacks


class RefusedRetryably(Exception):
    """A create the channel refused with a retryable error, while another contract may take the order: raised by
    _call_and_apply (``fail_over``) before anything is written; ``call`` is the ChannelCall row's fields."""

    def __init__(self, error: ChannelError, call: dict):
        super().__init__(error.message)
        self.error, self.call = error, call

    @property
    def code(self) -> str:
        return self.error.channel_code or self.error.code

    @property
    def message(self) -> str:
        return self.error.channel_message or self.error.message


def _create_refused(order_id: str, refused: RefusedRetryably) -> Order:
    """The order fails with this refusal, as _call_and_apply fails one without candidates left."""
    with transaction.atomic():
        ChannelCall.objects.create(order_id=order_id, **refused.call)
        return _apply_failure(order_id, code=refused.code, message=refused.message)


def order_fail_over(*, order_id: str, refused: RefusedRetryably, account: ChannelAccount, to: Candidate) -> Order:
    """Move a new order whose create ``account`` refused retryably to the contract ``to`` (design §7 layer 4).

    Under the order's lock, re-checked: still pending, still on ``account``, with no channel trade and no pay
    params (nothing at any channel to keep). The order stays pending — no transition — and takes the new contract,
    account and sub-merchant, with its fee snapshot priced at the new contract's rates (design §5 rule 1: the
    snapshot is what this trade costs where it is made). Append-only in what it records: the refused call's
    ChannelCall row, and in the routing record (layer ``failover``) the hop with the refusal's code — the refused
    candidate stays in the record with why it was left. An order changed meanwhile is returned as it is, with the
    call recorded."""
    with transaction.atomic():
        ChannelCall.objects.create(order_id=order_id, **refused.call)
        order = _locked(order_id)
        if (order.state != OrderState.PENDING or order.channel_account_id != account.pk or order.channel_trade_no
                or order.pay_params):
            return order
        logger.info("order %s: %s refused the create for now (%s); failing over to %s", order.pk, account.code,
                    refused.code, to.account_code)
        fees = fees_for_payment(amount=order.amount, merchant_rate=to.merchant_rate, cost_rate=to.cost_rate,
                                rebate_rate=to.rebate_rate)
        order.routing = _failover_record(order.routing, refused=refused, account=account, to=to,
                                         from_contract=order.contract_id)
        order.channel_account_id, order.contract_id, order.sub_mchid = to.account_id, to.contract_id, to.sub_mchid
        order.merchant_rate, order.merchant_fee = fees.merchant_rate, fees.merchant_fee
        order.cost_rate, order.channel_cost = fees.cost_rate, fees.channel_cost
        order.rebate_rate, order.rebate, order.profit = fees.rebate_rate, fees.rebate, fees.profit
        order.save(update_fields=["routing", "channel_account", "contract", "sub_mchid", "merchant_rate",
                                  "merchant_fee", "cost_rate", "channel_cost", "rebate_rate", "rebate", "profit",
                                  "updated_at"])
        return order


def _failover_record(routing: dict | None, *, refused: RefusedRetryably, account: ChannelAccount, to: Candidate,
                     from_contract: int | None) -> dict:
    """The routing record after a failover: the hop appended to ``failover`` (from, to, the refusal's code and
    words, when), the new account ``chosen`` by layer ``failover``, and each of the two candidates' reasons saying
    what happened to it."""
    record = dict(routing or {})
    hop = {"from": account.code, "to": to.account_code, "code": refused.code[:64], "message": refused.message[:256],
           "at": timezone.now().isoformat()}
    record["failover"] = [*(record.get("failover") or []), hop]
    record["layer"], record["chosen"] = "failover", to.account_code
    candidates = []
    for candidate in record.get("candidates") or []:
        candidate = dict(candidate)
        if candidate.get("contract") == from_contract:
            candidate["reason"] = f"{candidate.get('reason', '')}; refused {hop['code']} (retryable): failed over"
        elif candidate.get("contract") == to.contract_id:
            candidate["reason"] = f"{candidate.get('reason', '')}; chosen on failover from {account.code}"
        candidates.append(candidate)
    record["candidates"] = candidates
    return record


def _prepare(*, app, merchant, data: dict, print_: str, token: int | None,
             only_account_id: int | None = None) -> tuple[dict, RoutingDecision]:
    """Validate, risk-check, route and price a new order: the Order's column values and the routing decision."""
    if merchant.state != MerchantState.ACTIVE:
        raise Forbidden(f"merchant {merchant.merchant_no} is {merchant.state}; it cannot take payments")
    product = data["product"]
    if (product == "barcode" or product.endswith(".barcode")) and not data.get("auth_code"):
        # Before the wallet is read from the code: a missing code is missing, not "not a payment code".
        raise InvalidRequest("auth_code is required for payment-code products", param="auth_code")
    channel_product = barcode_product(data.get("auth_code", "")) if product == "barcode" else product
    if product != "barcode" and channel_product.endswith(".barcode") and barcode_product(
            data["auth_code"]) != channel_product:
        # Another wallet's code: the channel would only refuse it (a failed order, 502). Say so, naming the field,
        # before writing anything (design §5 rule 12).
        words = WALLET_PAYMENT_CODES.get(channel_product, f"a {channel_product} payment code")
        raise InvalidRequest(f"auth_code is not {words}", param="auth_code")
    if channel_product in JSAPI_PRODUCTS and not _payer_id(channel_product, data.get("payer") or {}):
        # Named down to the key this wallet pays by: a payer with another wallet's id (an openid on alipay.jsapi)
        # was sent, and "payer is required" would send the developer looking for the wrong mistake.
        field = f"payer.{_payer_key(channel_product)}"
        raise InvalidRequest(f"{field} is required for {channel_product}: the payer's id in that wallet", param=field)
    if channel_product == "wechat.h5" and not data.get("client_ip"):
        # WeChat refuses H5 orders without the payer's IP (channel-protocols.md A.7): say so before writing an
        # order the channel would only fail (design §5 rule 12).
        raise InvalidRequest("client_ip (the payer's IP) is required for WeChat H5 payments", param="client_ip")

    from risk.services.pretrade import check_trade

    check_trade(merchant=merchant, product=channel_product, amount=data["amount"], payer=data.get("payer") or {})
    decision = choose(merchant=merchant, product=channel_product, amount=data["amount"], token=token,
                      only_account_id=only_account_id)
    if decision.chosen is None:
        raise _not_available(decision, product=channel_product, amount=data["amount"])
    chosen = decision.chosen
    fees = fees_for_payment(amount=data["amount"], merchant_rate=chosen.merchant_rate, cost_rate=chosen.cost_rate,
                            rebate_rate=chosen.rebate_rate)
    barcode = channel_product.endswith(".barcode")
    expire = dt.timedelta(seconds=data["expire_seconds"]) if data.get("expire_seconds") else (
        BARCODE_EXPIRE if barcode else DEFAULT_EXPIRE)
    if barcode:
        # A payment code still unpaid is reversed when its query ladder runs out, BARCODE_SPAN after creation
        # (order_barcode_step, _reverse_unpaid_code), whatever expire_seconds asked: expires_at says that time, not
        # a later one the till would wait for in vain. Bug: expire_seconds 300 answered created + 5 min while the
        # order was reversed at + 65 s. (The request keeps what was asked: it is the request, for idempotency.)
        expire = min(expire, BARCODE_SPAN)
    auth_code = data.get("auth_code") or ""
    values = dict(
        merchant=merchant, app=app, out_trade_no=data["out_trade_no"], amount=data["amount"],
        currency=data.get("currency") or "CNY", product=product, channel_product=channel_product,
        subject=data["subject"], description=data.get("description") or "",
        metadata=data.get("metadata") or {}, notify_url=data.get("notify_url") or app.notify_url,
        return_url=data.get("return_url") or "", client_ip=data.get("client_ip") or None,
        payer=data.get("payer") or {}, auth_code_masked=(auth_code[:4] + "…" + auth_code[-2:]) if auth_code else "",
        store_id=data.get("store_id") or "", terminal_id=data.get("terminal_id") or "",
        expires_at=timezone.now() + expire, request_fingerprint=print_,
        channel_account_id=chosen.account_id, contract_id=chosen.contract_id, sub_mchid=chosen.sub_mchid,
        routing=decision.as_record(),
        merchant_rate=fees.merchant_rate, merchant_fee=fees.merchant_fee, cost_rate=fees.cost_rate,
        channel_cost=fees.channel_cost, rebate_rate=fees.rebate_rate, rebate=fees.rebate, profit=fees.profit,
    )
    return values, decision


def _existing(merchant, out_trade_no: str) -> Order | None:
    return Order.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()


@functools.cache
def _order_insert() -> tuple[str, tuple]:
    """``INSERT … ON CONFLICT (merchant_id, out_trade_no) DO NOTHING RETURNING id`` over every column, written out
    once per process: the ORM compiled this statement anew for each order, at more cost than PostgreSQL's."""
    fields = tuple(Order._meta.concrete_fields)
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(Order._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) "
           f"ON CONFLICT ({quote('merchant_id')}, {quote('out_trade_no')}) DO NOTHING RETURNING {quote('id')}")
    return sql, fields


@functools.cache
def _order_layout() -> tuple[tuple[str, str, object, bool], ...]:
    """(name, attname, field, is a relation) of each of Order's columns, in the model's field order."""
    return tuple((f.name, f.attname, f, f.is_relation) for f in Order._meta.concrete_fields)


def _new_order(values: dict) -> Order:
    """``Order(**values)`` through the model's positional constructor (the one the ORM uses for rows read): the
    keyword one matched 48 fields against the keywords one by one, 5% of an order create's CPU (py-spy,
    docs/benchmarks.md). Related objects may be given by name (``merchant=``) or id (``contract_id=``); fields not
    given get their defaults, as with keywords."""
    args, related = [], []
    for name, attname, field, is_relation in _order_layout():
        if attname in values:
            args.append(values[attname])
        elif name in values:
            value = values[name]
            if is_relation:
                related.append((field, value))
                value = None if value is None else value.pk
            args.append(value)
        else:
            args.append(field.get_default())
    order = Order(*args)
    for field, value in related:
        field.set_cached_value(order, value)
    return order


def _insert_order(values: dict) -> Order | None:
    """One INSERT; None when the merchant already has an order with this out_trade_no (the unique constraint,
    design §5 rule 5). No error to recover from, so no savepoint inside a caller's transaction either. Values go
    through each field's ``pre_save`` and ``get_db_prep_save``, as ``Model.save`` does (defaults, auto_now, JSON,
    decimals); nothing listens to Order's save signals. Keeps order create within its budget (issue 5: ≤ 12)."""
    order = _new_order(values)
    sql, fields = _order_insert()
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: each attribute read through the proxy costs a lookup
    params = [field.get_db_prep_save(field.pre_save(order, True), db) for field in fields]
    with prepared_cursor(sql) as cursor:
        cursor.execute(sql, params)
        if cursor.fetchone() is None:
            return None
    order._state.adding, order._state.db = False, connection.alias
    return order


def _replay(order: Order, data: dict) -> Order:
    """``order`` if ``data`` is the request that made it (design §5 rule 5), else IdempotencyConflict."""
    if order.request_fingerprint not in _request_prints(order, data):
        raise IdempotencyConflict(f"out_trade_no {order.out_trade_no} was used with different parameters",
                                  param="out_trade_no")
    return order


def _sub_merchant(contract: Contract) -> SubMerchant:
    return SubMerchant(sub_mchid=contract.sub_mchid, sub_appid=contract.sub_appid,
                       app_auth_token=contract.app_auth_token or "")


def _trade_ref(order: Order) -> TradeRef:
    return TradeRef(sub_merchant=_sub_merchant(order.contract), out_trade_no=order.id,
                    channel_trade_no=order.channel_trade_no, amount=order.amount)


def _record_call(order_id: str, *, verb: str, outcome: str, started: float, result: PaymentResult | None = None,
                 error: ChannelError | None = None, sent: list[Exchange] | None = None) -> None:
    fields = call_fields(verb=verb, outcome=outcome, started=started, result=result, error=error, sent=sent)
    if verb == "query":
        _record_query(order_id, fields)
    else:
        ChannelCall.objects.create(order_id=order_id, **fields)


def _record_query(order_id: str, fields: dict) -> None:
    """Record a query in the trade's timeline and count it on the order, in ONE statement (a data-modifying CTE):
    ``GET /orders/{no}`` of a pending order asks the channel and must stay within 4 queries (issue 5). SQLite (the
    demo) has no data-modifying CTE: there it takes two statements."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        ChannelCall.objects.create(order_id=order_id, **fields)
        Order.objects.filter(pk=order_id).update(last_queried_at=now, query_attempts=F("query_attempts") + 1)
        return
    sql = _record_query_sql()
    with prepared_cursor(sql) as cursor:
        cursor.execute(sql, [*_call_values(order_id, fields, now), now, order_id])


def _call_cte() -> str:
    """The ChannelCall INSERT the PostgreSQL records below start with (its values: ``_call_values``)."""
    return (f"WITH call AS (INSERT INTO {ChannelCall._meta.db_table} (order_id, verb, outcome, channel_code, message, "
            f"request, answer, elapsed_ms, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)) ")


def _call_values(order_id: str, fields: dict, now) -> list:
    return [order_id, fields["verb"], fields["outcome"], fields["channel_code"], fields["message"],
            fields["request"], fields["answer"], fields["elapsed_ms"], now]


@functools.cache
def _record_query_sql() -> str:
    return (_call_cte() + f"UPDATE {Order._meta.db_table} SET last_queried_at = %s, "
            f"query_attempts = query_attempts + 1 WHERE id = %s")


def _changes_nothing(order: Order, result: PaymentResult) -> bool:
    """A query answer that order_apply_result would not act on: still pending (or not at the channel yet), nothing
    new, and we already knew that. Skipping the lock for it is safe: had the order changed meanwhile, such an
    answer would change nothing either."""
    return (result.state in (TradeState.PENDING, TradeState.NOT_FOUND) and order.state == OrderState.PENDING
            and not _is_barcode(order)  # a payment code not paid yet takes the ladder's next rung: see below
            and order.sync_state == SyncState.OK and (not result.pay_params or bool(order.pay_params))
            and (not result.channel_trade_no or bool(order.channel_trade_no))
            and (not result.wallet_trade_no or bool(order.wallet_trade_no)))


def _call_and_apply(order: Order, account: ChannelAccount, *, verb: str, call, fail_over: bool = False) -> Order:
    """Call the channel (no lock held), then apply the typed answer under a lock (design §5 rule 7).

    ``fail_over`` (a create that another contract may take): a retryable refusal raises RefusedRetryably, nothing
    written, instead of failing the order (_create_at_channel)."""
    started = time.perf_counter()
    try:
        with recording_exchanges() as sent:
            result = call(account.adapter())
    except ChannelUnknown as exc:
        with transaction.atomic():
            _record_call(order.pk, verb=verb, outcome="unknown", started=started, error=exc, sent=sent)
            return _mark_unknown(order.pk)
    except ChannelError as exc:
        if fail_over and verb == "create" and exc.retryable:
            raise RefusedRetryably(exc, call_fields(verb=verb, outcome="error", started=started, error=exc,
                                                    sent=sent)) from exc
        with transaction.atomic():
            _record_call(order.pk, verb=verb, outcome="error", started=started, error=exc, sent=sent)
            if verb == "create":
                return _apply_failure(order.pk, code=exc.channel_code or exc.code,
                                      message=exc.channel_message or exc.message)
            if verb == "query":
                # The channel refused to say (merchant limited, a parameter it no longer accepts...): the outcome is
                # still not known, so the order takes its next rung of the ladder, and the manual queue after the
                # last (design §5 rule 2) — never stays first in the sweeper's line, never stops it.
                logger.warning("query of order %s refused: %s", order.pk, exc.message)
                return _mark_unknown(order.pk)
        raise
    if verb == "query" and _changes_nothing(order, result):
        _record_call(order.pk, verb=verb, outcome=result.state, started=started, result=result, sent=sent)
        return order
    if verb == "create" and result.state == TradeState.PENDING:
        # The common answer to a create (a QR code or prepay id to hand over): no row lock — the conditional
        # UPDATE only fills what is still empty on a pending order, so a callback or query that got there first
        # wins (design §5 rule 4), and order creation keeps its throughput (bench/bench_orders.py).
        _record_created(order, result, call_fields(verb=verb, outcome=result.state, started=started,
                                                   result=result, sent=sent))
        return order
    try:
        with transaction.atomic():
            _record_call(order.pk, verb=verb, outcome=result.state, started=started, result=result, sent=sent)
            return order_apply_result(order_id=order.pk, result=result, source=verb)
    except CrossCheckFailed as exc:
        return _answer_refused(order, account, verb=verb, result=result, reason=str(exc), started=started,
                               sent=sent)


def _answer_refused(order: Order, account: ChannelAccount, *, verb: str, result: PaymentResult, reason: str,
                    started: float, sent: list[Exchange]) -> Order:
    """A signed answer (a query's, or a payment code's create) whose success fails the cross-check (design §5 rule
    4): refused like such a callback — the order is not changed, the mismatch is recorded as a security event with
    the same service channels.callbacks uses for a refused callback (``audit_log``, ``security.<verb>.mismatch``,
    on the order so its trade timeline shows it), and the call counts as no answer: the order takes the next rung
    of the ladder, or the manual queue after the last (rule 2). Bug: CrossCheckFailed, caught only by the callback
    handler, escaped order_sync — GET /orders/{no}, the staff "Sync now" and the close answered 500, and the
    sweepers logged a crash for the order every minute."""
    fields = call_fields(verb=verb, outcome="mismatch", started=started, result=result, sent=sent)
    fields["message"] = reason[:512]
    logger.warning("%s of order %s: the channel's answer does not match the order: %s", verb, order.pk, reason)
    with transaction.atomic():
        if verb == "query":
            _record_query(order.pk, fields)
        else:
            ChannelCall.objects.create(order_id=order.pk, **fields)
        audit_log(actor=f"channel:{account.code}", action=f"security.{verb}.mismatch", target=order,
                  data={"reason": reason, "channel_trade_no": result.channel_trade_no or "",
                        "amount": result.amount, "sub_mchid": result.sub_mchid or ""})
        return _mark_unknown(order.pk)


@functools.cache
def record_created_sql(assignments: str) -> str:
    """The create's record on PostgreSQL: the ChannelCall row, and the pay params on the order if it is still pending
    without them.

    The guards on state and pay_params are written so that no index can serve them (``state || ''``): the statement
    is prepared once per connection, and a generic plan made while the table had no statistics picked the index on
    state over the primary key — reading every pending order on every create, so each order cost PostgreSQL more
    than the one before (0.85 → 3.4 ms per order over 12,000 orders; found with pg_stat_user_indexes,
    docs/benchmarks.md). The primary key is the only index this update can use."""
    return (_call_cte() + f"UPDATE {Order._meta.db_table} SET {assignments} WHERE id = %s AND state || '' = %s "
            f"AND pay_params = '{{}}'::jsonb RETURNING id")


def _record_created(order: Order, result: PaymentResult, fields: dict) -> None:
    """Record the create in the trade's timeline and fill the pay params (and the channel's and the wallet's trade
    numbers, when the create answer has them: an Alipay JSAPI order) on the order if it is still pending without
    them. On PostgreSQL in ONE statement (a data-modifying CTE, one commit); elsewhere (the demo's SQLite) in two."""
    changes = {"updated_at": timezone.now()}
    if result.pay_params:
        changes["pay_params"] = result.pay_params
    if result.channel_trade_no:
        changes["channel_trade_no"] = result.channel_trade_no
    if result.wallet_trade_no:
        changes["wallet_trade_no"] = result.wallet_trade_no
    if connection.vendor != "postgresql":
        ChannelCall.objects.create(order_id=order.pk, **fields)
        updated = Order.objects.filter(pk=order.pk, state=OrderState.PENDING, pay_params={}).update(**changes)
    else:
        columns = list(changes)
        assignments = ", ".join(f"{Order._meta.get_field(name).column} = %s" for name in columns)
        params = _call_values(order.pk, fields, changes["updated_at"])
        db = connections[DEFAULT_DB_ALIAS]
        params += [Order._meta.get_field(name).get_db_prep_save(changes[name], db) for name in columns]
        params += [order.pk, OrderState.PENDING]
        sql = record_created_sql(assignments)
        with prepared_cursor(sql) as cursor:
            cursor.execute(sql, params)
            updated = cursor.fetchone() is not None
    if updated:
        for name, value in changes.items():
            setattr(order, name, value)
    else:
        order.refresh_from_db()


def _locked(order_id: str) -> Order:
    # FOR NO KEY UPDATE (here and in every trades service): it serialises writers of the row just as well, but does
    # not block the FOR KEY SHARE that PostgreSQL takes on it when another transaction commits a row referencing it
    # (a ChannelCall, Event or Refund). With FOR UPDATE, a refund callback (refund, then order) and a refund query
    # recording its ChannelCall (foreign keys to both) deadlocked — found by tests/trades/test_products_e2e.py.
    return Order.objects.select_for_update(of=("self",), no_key=True).select_related("merchant", "app", "contract").get(pk=order_id)


def _mark_unknown(order_id: str) -> Order:
    with transaction.atomic():
        order = _locked(order_id)
        if order.state == OrderState.PENDING and order.reverse_requested_at is None:  # a reverse keeps its ladder
            _schedule_query(order, unknown=True)
            order.save()
        return order


def _schedule_query(order: Order, *, unknown: bool = False, since: dt.datetime | None = None) -> None:
    """The next rung of the ladder counted from ``since`` (default: the order's creation; a reverse counts from
    when it was asked), or the manual queue after the last one. A payment code whose next rung is still to come
    keeps it (its barcode_step is queued already)."""
    now = timezone.now()
    barcode = order.channel_product.endswith(".barcode")
    at = next_query_at(created_at=since or ladder_start(created_at=order.created_at, expires_at=order.expires_at,
                                                        now=now, barcode=barcode), now=now, barcode=barcode)
    waiting = (at is not None and _is_barcode(order) and order.next_query_at is not None
               and order.next_query_at > now)
    if at is None:
        order.sync_state = SyncState.MANUAL
        order.next_query_at = None
    else:
        order.sync_state = SyncState.UNKNOWN if (unknown or order.sync_state != SyncState.OK) else order.sync_state
        if not waiting:
            order.next_query_at = at
    if waiting:
        # A rung is already waiting, its barcode_step queued: it asks next. An answer heard in between (the
        # merchant's GET /orders/{no}, a close) queued another chain beside it (bug): a till polling every few
        # seconds for the payer's minute had a score of chains asking the channel about one order.
        return
    if at is not None and order.channel_product.endswith(".barcode") and not _tasks_run_eagerly():
        # Payment codes are followed every 5 s (the payer is at the till); everything else waits for the
        # once-a-minute sweeper (trades.tasks.sync_due_orders), so no long ETAs sit in the broker. Eager Celery
        # (the demo, tests) would run an ETA task at once and recurse: there the in-process beat sweeps instead.
        from trades import tasks

        order_id = order.pk
        transaction.on_commit(lambda: tasks.barcode_step.apply_async((order_id,), eta=at), robust=True)


def _is_barcode(order: Order) -> bool:
    return order.channel_product.endswith(".barcode")


def _tasks_run_eagerly() -> bool:
    """Asked of the Celery app itself (not the Django setting it was configured from), so that whoever points
    the app at a broker — a worker test, a management command — gets the production behaviour."""
    from aggpay.celery import app

    return bool(app.conf.task_always_eager)


def _apply_failure(order_id: str, *, code: str, message: str) -> Order:
    with transaction.atomic():
        order = _locked(order_id)
        if can_proceed(order.fail):
            order.fail()
            order.failure_code, order.failure_message = code[:64], message[:256]
            order.sync_state, order.next_query_at = SyncState.OK, None
            order.save()
            _emit(order, "order.failed")
        return order


def _emit(order: Order, event_type: str) -> None:
    if event_type in ("order.closed", "order.failed") and not Order.late_payment.related.is_cached(order):
        # Just closed or failed, from pending: a late payment is a success that comes after that (_late_payment), so
        # the order has none yet — known without asking the database (the create's and callback's query budgets).
        Order.late_payment.related.set_cached_value(order, None)
    event_emit(merchant=order.merchant, type=event_type, obj_type="order", obj_id=order.pk,
               data=order_as_api(order), app=order.app, notify_url=order.notify_url or None)


class CrossCheckFailed(Exception):
    """The channel's account of the trade does not match ours (design §5 rule 4)."""


def _cross_check(order: Order, result: PaymentResult) -> None:
    """A success is applied only if it names this trade, its amount and (when the order has one) its sub-merchant:
    a field missing is a mismatch, not a pass (design §5 rule 4). Every adapter's success — from a callback, a
    query or a payment-code create — carries them (tests/trades/test_callback_cross_checks.py)."""
    if not result.out_trade_no:
        raise CrossCheckFailed("the channel's success does not name the out_trade_no")
    if result.out_trade_no != order.pk:
        raise CrossCheckFailed(f"out_trade_no {result.out_trade_no} is not {order.pk}")
    if result.amount is None:
        raise CrossCheckFailed(f"the channel's success does not state the amount (the order's is {order.amount})")
    if result.amount != order.amount:
        raise CrossCheckFailed(f"amount {result.amount} differs from the order's {order.amount}")
    if result.currency and result.currency != order.currency:
        raise CrossCheckFailed(f"currency {result.currency} differs from {order.currency}")
    if order.sub_mchid and not result.sub_mchid:
        raise CrossCheckFailed(f"the channel's success does not name the sub-merchant ({order.sub_mchid})")
    if order.sub_mchid and result.sub_mchid != order.sub_mchid:
        raise CrossCheckFailed(f"sub-merchant {result.sub_mchid} is not {order.sub_mchid}")


def order_apply_result(*, order_id: str, result: PaymentResult, source: str, locked: Order | None = None) -> Order:
    """Apply what the channel says about a trade (create, query or callback). Idempotent: the same answer twice
    changes nothing the second time. Raises CrossCheckFailed for a success that does not match the order.

    No savepoint of its own (``savepoint=False``): every caller either commits what this writes or fails as a
    whole, and the saved SAVEPOINT/RELEASE pair keeps create and callback within their query budgets."""
    with transaction.atomic(savepoint=False):
        # ``locked``: the caller already holds this order's row lock in the current transaction (callbacks).
        order = locked if locked is not None and locked.pk == order_id else _locked(order_id)
        state = result.state
        if state == TradeState.SUCCEEDED:
            _cross_check(order, result)
            if order.state == OrderState.PENDING:
                order.succeed()
                order.channel_trade_no = result.channel_trade_no or order.channel_trade_no
                order.wallet_trade_no = result.wallet_trade_no or order.wallet_trade_no
                order.paid_at = result.paid_at or timezone.now()
                if order.reverse_requested_at is None:  # else the reverse's ladder stays: it is still to be settled
                    order.sync_state, order.next_query_at = SyncState.OK, None
                order.save()
                # Collected at the channel: counted against the account's daily cap (design §7 layer 1) with it.
                account_volume_add(account_id=order.channel_account_id, product=order.channel_product or order.product,
                                   amount=order.amount, paid_at=order.paid_at)
                _emit(order, "order.succeeded")
            elif order.state in (OrderState.CLOSED, OrderState.FAILED) and not hasattr(order, "late_payment"):
                _late_payment(order, result)
            elif order.state == OrderState.REVERSED and order.paid_at is None:
                _paid_after_reverse(order, result)
            return order
        if order.state != OrderState.PENDING:
            return order  # a late or out-of-order answer about a settled order changes nothing
        if order.reverse_requested_at is not None and state in (TradeState.PENDING, TradeState.USER_PAYING,
                                                                TradeState.NOT_FOUND):
            return order  # a reverse is in flight: its own ladder decides when the channel is asked next
        if state == TradeState.PENDING:
            if result.pay_params and not order.pay_params:
                order.pay_params = result.pay_params
            if result.channel_trade_no and not order.channel_trade_no:
                order.channel_trade_no = result.channel_trade_no
            if result.wallet_trade_no and not order.wallet_trade_no:
                order.wallet_trade_no = result.wallet_trade_no
            if _is_barcode(order) and source == "query":
                # A payment code the channel holds unpaid is the payer still confirming: Alipay answers the query
                # of a 10003 trade WAIT_BUYER_PAY (channel-protocols.md B.5) where WeChat says USERPAYING. Same
                # flow (issue 5): the next rung in 5 s, and a reverse after the last (order_barcode_step). Bug:
                # the ladder stopped at the first such answer, and the order was closed at expiry, never reversed.
                order.sync_state = SyncState.OK if order.sync_state == SyncState.UNKNOWN else order.sync_state
                _schedule_query(order)
            elif order.sync_state != SyncState.OK:
                order.sync_state, order.next_query_at = SyncState.OK, None
            order.save()
        elif state == TradeState.USER_PAYING:
            _schedule_query(order)
            order.save()
        elif state == TradeState.FAILED:
            order.fail()
            _end_reverse(order)
            order.failure_code = (result.failure_code or "payment_failed")[:64]
            order.failure_message = (result.failure_message or "")[:256]
            order.sync_state, order.next_query_at = SyncState.OK, None
            order.save()
            _emit(order, "order.failed")
        elif state in (TradeState.CLOSED, TradeState.REVERSED):
            getattr(order, "close" if state == TradeState.CLOSED else "reverse")()
            _end_reverse(order)
            _reversal_refunded(order)  # a pending order has no paid_at: nothing went back (the rule kept in one place)
            order.sync_state, order.next_query_at = SyncState.OK, None
            order.save()
            _emit(order, "order.closed" if state == TradeState.CLOSED else "order.reversed")
        elif state == TradeState.NOT_FOUND and source == "query" and _is_barcode(order):
            # A payment code the channel has no trade for: its create had no definite answer (a timeout, a 5xx)
            # and may still reach the channel and charge the payer. Its result is still unclear, so it stays on
            # the ladder and is reversed after the last rung (order_barcode_step), never just closed at expiry:
            # WeChat, when the micropay's result stays unclear, reverses (channel-protocols.md A.11, "if still
            # unclear → reverse"); Alipay's payment code is queried, then cancelled (B.3, 10003 "poll query, then
            # cancel"; B.5 alipay.trade.cancel); the bank's query says ORDER_NOT_EXIST for a create that timed out
            # before reaching it (bank.md §6.4), whose answer was "UNKNOWN — the payer may have been charged"
            # (§6.3), and a code still unpaid after the 60 s of queries is reversed (§6.3, §6.7). Bug: this answer
            # stopped the ladder (sync ok) and the expiry closed the order, never reversed.
            _schedule_query(order, unknown=True)
            order.save()
        elif state == TradeState.NOT_FOUND and source == "query":
            # Not yet created at the channel (e.g. an Alipay precreate QR nobody scanned): still pending.
            if order.sync_state != SyncState.OK:
                order.sync_state, order.next_query_at = SyncState.OK, None
                order.save()
        return order


def _paid_after_reverse(order: Order, result: PaymentResult) -> None:
    """A success, cross-checked above (design §5 rule 4), about an order reversed while we thought it unpaid: the
    payer had confirmed just before the reverse, the channel's reverse refunded the payment, and its answer did not
    say so (Alipay's cancel ``action=refund`` whose query for the payment went unanswered, B.5) — the payment's notice
    tells us now. Not a late payment (design §5 rule 3): the reverse already gave the money back. The payment's facts
    go on the reversed order, as ``_paid_before_reverse`` records them when the reverse's own answer has them, so the
    day's statement and the fee report show the payment and its reversal (trades.services.statements, a reversal is
    a reversed order with ``paid_at``), as the channel's bill does. Bug: the notice was logged "applied" and nothing
    was recorded, so both lines were missing and reconciliation flagged a trade we had heard of. The state stays
    ``reversed`` (no transition leaves it; none is needed: the money's story ends there). Only once: with ``paid_at``
    set, a copy of the notice changes nothing.

    No merchant event. The merchant already has ``order.reversed``; ``order.succeeded`` now would take a higher
    sequence and, ordered by sequence per object (merchant-api.md "Notifications and events"), read as the order's
    latest state — paid — after a reversal that gave the money back: a merchant could hand over the goods. Nor is
    ``order.reversed`` sent again: the state did not change, and the merchant's own record (reversed, no money kept)
    is already right. The payment shows where money is accounted for: the order (``paid_at``, and ``refunded_amount``
    = the amount the reverse gave back, in GET /orders: _reversal_refunded), the statement, and the channel call /
    callback on the trade timeline."""
    order.channel_trade_no = order.channel_trade_no or result.channel_trade_no
    order.wallet_trade_no = order.wallet_trade_no or result.wallet_trade_no
    order.paid_at = result.paid_at or timezone.now()
    _reversal_refunded(order)  # the reverse refunded this payment: the whole amount went back
    order.save(update_fields=["channel_trade_no", "wallet_trade_no", "paid_at", "refunded_amount", "refund_reserved",
                              "refund_state", "updated_at"])
    # Collected all the same: a daily cap counts what the account took in, not what stayed (channels.services.volume).
    account_volume_add(account_id=order.channel_account_id, product=order.channel_product or order.product,
                       amount=order.amount, paid_at=order.paid_at)
    logger.warning("order %s: reversed while unpaid here, but the channel says it was paid (%s): payment recorded",
                   order.pk, result.channel_trade_no)


def _late_payment(order: Order, result: PaymentResult) -> None:
    """Design §5 rule 3: a success after a local close is never lost. The payer now has the wallet's number of the
    payment on their receipt and will quote it: it goes on the (closed) order, as for any paid one, so support finds
    the order by it (trades.workbench.search_orders)."""
    late = LatePayment.objects.create(order=order, channel_trade_no=result.channel_trade_no,
                                      amount=result.amount or order.amount, paid_at=result.paid_at or timezone.now())
    if order.next_query_at is not None:  # a closed payment code's follow-ups (_follow_closed): found, so over
        order.next_query_at = None
        order.save(update_fields=["next_query_at", "updated_at"])
    # Collected, though refunded later (design §5 rule 3): it counts against the account's daily cap as any payment.
    account_volume_add(account_id=order.channel_account_id, product=order.channel_product or order.product,
                       amount=late.amount, paid_at=late.paid_at)
    if result.wallet_trade_no and not order.wallet_trade_no:
        order.wallet_trade_no = result.wallet_trade_no
        order.save(update_fields=["wallet_trade_no", "updated_at"])
    logger.warning("late payment on closed order %s (%s)", order.pk, result.channel_trade_no)
    if getattr(settings, "AGGPAY_LATE_PAYMENT_AUTO_REFUND", True):
        from trades import tasks

        transaction.on_commit(lambda: tasks.refund_late_payment.delay(late.pk), robust=True)


# --- query, close, expire, reverse ------------------------------------------------------------------------------
def order_get(*, merchant, out_trade_no: str) -> Order:
    # Its late payment joined (a LEFT JOIN on a unique key): the answer shows it (representation.order_as_api), and
    # a query of the order stays within its 4 queries (issue 5).
    order = (Order.objects.select_related("merchant", "channel_account", "contract", "late_payment")
             .filter(merchant=merchant, out_trade_no=out_trade_no).first())
    if order is None:
        raise NotFound(f"no order {out_trade_no}", param="out_trade_no")
    return order


def order_sync(*, order_id: str, force: bool = False) -> Order:
    """Ask the channel about a pending order and apply the answer. Rate-limited per order unless ``force``: at most
    one query per QUERY_MIN_INTERVAL, for the merchant's ``GET /orders/{no}`` and the payer page's status poll.

    A payment code this query finds still unpaid (or hears nothing about) after its ladder's minute is reversed
    here, whoever asked (_reverse_unpaid_code); one whose reverse is owed has it sent again once the channel
    answers (_query_for_reverse)."""
    return _order_sync(order_id, force=force, ladder=False)


def _order_sync(order_id: str, *, force: bool, ladder: bool) -> Order:
    """order_sync; ``ladder``: the barcode ladder's own rung (order_barcode_step), which also reverses a code that
    was already in the manual queue when it came."""
    order = Order.objects.select_related("merchant", "channel_account", "contract").get(pk=order_id)
    now = timezone.now()
    if (ladder and order.state == OrderState.CLOSED and order.next_query_at is not None
            and order.next_query_at <= now and order.channel_account is not None):
        return _follow_closed(order)  # the sweeper's follow-up of a code closed on "no such trade"
    if order.state != OrderState.PENDING or order.channel_account is None:
        return order
    if not force and order.last_queried_at and now - order.last_queried_at < QUERY_MIN_INTERVAL:
        return order
    if not force and not _claim_query(order.pk):
        return order  # another request is asking the channel about this order right now, or just did
    if order.reverse_requested_at is not None:
        return _query_for_reverse(order)
    queue_before = order.sync_state
    # The query is counted (last_queried_at, query_attempts) when it is recorded, after the call: see _record_query.
    order = _call_and_apply(order, order.channel_account, verb="query",
                            call=lambda adapter: adapter.query_payment(_trade_ref(order)))
    if ladder or queue_before != SyncState.MANUAL:
        # Not an order a person already has (a reverse refused earlier): asking again on every poll changes nothing.
        order = _reverse_unpaid_code(order)
    return order


def _query_for_reverse(order: Order) -> Order:
    """The query of a pending order whose reverse is owed (``reverse_requested_at``: its reverse went unanswered,
    perhaps until the manual queue), whoever asks — the merchant's ``GET /orders/{no}``, a person's "Sync now", a
    close. A definite answer says the channel is back, so the reverse is sent again at once (_reverse_send, as the
    ladder's rung sends it: a refusal goes to a person, never to the caller): docs/api.md "Orders", the query that
    finds a code still unconfirmed after its minute, yours included, ends in the reverse. The channel saying paid
    does not end the reverse either: a reverse of a paid code refunds it (channel-protocols.md A.8 REVOKED, B.5
    ``action=refund``), and the payment is recorded with it (_paid_before_reverse: ``order.succeeded`` then
    ``order.reversed`` in one commit). A trade the channel closed, reversed or failed ends the order and the reverse
    (order_apply_result). No answer changes nothing: the reverse keeps its ladder, or its person.

    Bug (an on-call fault drill: queries and reverses timed out until the manual queue, then the faults cleared):
    the merchant's GET heard USERPAYING and did nothing (order_apply_result leaves a pending answer to the reverse's
    ladder, which had run out), the next GET heard SUCCESS and made the order ``succeeded`` (``order.succeeded``)
    with its whole amount still held — refundable 0 — until support pressed "Ask the channel again"."""
    account = order.channel_account
    result, started, sent = _ask_channel(order)
    if result is None:
        return Order.objects.select_related("merchant", "channel_account", "contract").get(pk=order.pk)
    if result.state == TradeState.SUCCEEDED:
        try:
            _cross_check(order, result)  # before anything is sent on its word (design §5 rule 4)
        except CrossCheckFailed as exc:
            return _answer_refused(order, account, verb="query", result=result, reason=str(exc), started=started,
                                   sent=sent)
    with transaction.atomic():
        _record_call(order.pk, verb="query", outcome=result.state, started=started, result=result, sent=sent)
        if result.state not in (TradeState.SUCCEEDED, TradeState.PENDING, TradeState.USER_PAYING,
                                TradeState.NOT_FOUND):
            return order_apply_result(order_id=order.pk, result=result, source="query")
    return _reverse_send(order.pk, retry=True, paid=result if result.state == TradeState.SUCCEEDED else None)


def _ask_channel(order: Order) -> tuple[PaymentResult | None, float, list]:
    """Query the channel about ``order`` (no lock held): its answer, when the call started, and the exchanges sent,
    for the caller to record with what it does with the answer. An error or no answer is recorded here as the
    query's call, and the answer is None."""
    started = time.perf_counter()
    try:
        with recording_exchanges() as sent:
            return order.channel_account.adapter().query_payment(_trade_ref(order)), started, sent
    except ChannelError as exc:
        with transaction.atomic():
            _record_call(order.pk, verb="query", outcome="unknown" if isinstance(exc, ChannelUnknown) else "error",
                         started=started, error=exc, sent=sent)
        return None, started, sent


def _follow_closed(order: Order) -> Order:
    """One follow-up query of a payment code closed because its reverse heard "no such trade" while its create's
    outcome was never known (_reverse_send; the schedule and why: ladder.CLOSED_WATCH). A success the slowed create
    made goes through order_apply_result as any success after a close: a late payment (design §5 rule 3), refunded
    automatically or queued for support (_late_payment), which ends the watch. A trade the channel closed, reversed
    or failed can no longer be paid: the watch ends too. Anything else — still no such trade, the payer confirming,
    no answer — waits for the next follow-up, and after the last the watch ends: never an endless query. The order
    stays ``closed`` and ``sync ok`` throughout: a known outcome, not one for support's unknown-outcome queue."""
    account = order.channel_account
    result, started, sent = _ask_channel(order)
    if result is None:
        return _watch_next(order.pk, over=False)
    try:
        with transaction.atomic():
            _record_call(order.pk, verb="query", outcome=result.state, started=started, result=result, sent=sent)
            order_apply_result(order_id=order.pk, result=result, source="query")
            return _watch_next(order.pk, over=result.state in (TradeState.SUCCEEDED, TradeState.CLOSED,
                                                                TradeState.REVERSED, TradeState.FAILED))
    except CrossCheckFailed as exc:
        _answer_refused(order, account, verb="query", result=result, reason=str(exc), started=started, sent=sent)
        return _watch_next(order.pk, over=False)


def _watch_next(order_id: str, *, over: bool) -> Order:
    """The closed payment code's next follow-up (from its close: the reverse that found no trade), or none."""
    with transaction.atomic():
        order = _locked(order_id)
        if order.state == OrderState.CLOSED and order.next_query_at is not None:
            closed_at = (ChannelCall.objects.filter(order_id=order.pk, verb="reverse")
                         .order_by("-created_at", "-pk").values_list("created_at", flat=True).first())
            order.next_query_at = None if over or closed_at is None else next_watch_at(closed_at=closed_at,
                                                                                       now=timezone.now())
            order.save(update_fields=["next_query_at", "updated_at"])
        return order


def _claim_query(order_id: str) -> bool:
    """Claim the order's rate-limited query before asking the channel, in one atomic step (SET NX on Redis, as the
    front door claims a nonce: aggpay.api.authentication). ``last_queried_at`` is written only once the answer is
    recorded, so polls arriving together — a payer's page and its reloads, a merchant's retries — all passed that
    check and each asked the channel. Exactly one caller per QUERY_MIN_INTERVAL gets the claim; it is never released
    early (a query that failed is retried at the next interval, like one that answered)."""
    return cache.add(f"{QUERY_CLAIM_PREFIX}{order_id}", 1, timeout=math.ceil(QUERY_MIN_INTERVAL.total_seconds()))


# A close of a paid order, whenever it was paid — half an hour ago or while the close was being made: "paid
# meanwhile" was untrue for the first. A paid order's money goes back by a refund (or a payment code's reverse).
CLOSE_OF_A_PAID_ORDER = "the order is paid; refund it instead"


def order_close(*, order_id: str, actor_label: str = "", audit: AuditNote | None = None) -> Order:
    """Close a pending order: ask the channel first (design §5 rule 3); if it was paid meanwhile — before the close
    or during it — 409 with the paid order. A channel that does not answer (the query or the close) is not an error
    (merchant-api.md "Errors"): the order is returned still pending and the expiry sweeper carries the close on
    (``_close_later``); the merchant hears ``order.closed`` or ``order.succeeded``. ``audit`` (a staff close):
    written in the transaction that closes the order, or that hands the close to the sweeper."""
    order = order_sync(order_id=order_id, force=True)
    if order.state == OrderState.SUCCEEDED:
        raise InvalidState(CLOSE_OF_A_PAID_ORDER, extra={"order": order_as_api(order)})
    if order.state != OrderState.PENDING:
        raise InvalidState(f"the order {state_words(order.state)}", extra={"order": order_as_api(order)})
    if order.reverse_requested_at is not None:
        raise InvalidState("a reverse of this order is under way", extra={"order": order_as_api(order)})
    if order.sync_state != SyncState.OK:
        return _close_later(order_id, audit=audit, asked_by=actor_label)  # the query went unanswered: whether it was paid is not known
    account = order.channel_account
    if account is not None:  # None: a cashier order nobody opened, so no channel has heard of it
        started = time.perf_counter()
        try:
            with recording_exchanges() as sent:
                account.adapter().close_payment(_trade_ref(order))
        except ChannelError as exc:
            _record_call(order.pk, verb="close", outcome="unknown" if _no_answer(exc) else "error", started=started,
                         error=exc, sent=sent)
            if _no_answer(exc):  # a timeout or 5xx, or "try again later" (WeChat USERPAYING, A.6)
                return _close_later(order_id, audit=audit, close_sent=True, asked_by=actor_label)
            if exc.code == "order_paid":
                order = order_sync(order_id=order_id, force=True)
                if order.state == OrderState.SUCCEEDED:
                    raise InvalidState(CLOSE_OF_A_PAID_ORDER, extra={"order": order_as_api(order)})
                # Paid, says the close; not, says the query: the ladder's next query will tell.
                return _close_later(order_id, audit=audit, close_sent=True, asked_by=actor_label)
            if exc.code not in ("order_closed", "order_not_found"):
                # The order as it stays (pending), as a refused reverse answers it (docs/api.md "Errors").
                raise ChannelRefused(exc.message, channel_code=exc.channel_code, channel_message=exc.channel_message,
                                     extra={"order": order_as_api(order)})
        else:
            _record_call(order.pk, verb="close", outcome="closed", started=started, sent=sent)
    asked, moved = (account.pk if account is not None else None), False
    with transaction.atomic():
        order = _locked(order_id)
        if order.state == OrderState.PENDING and order.channel_account_id != asked:
            # The account asked is no longer the order's: a create failing over (_create_at_channel) or a cashier
            # page routing the order (trades.services.cashier) moved it while the channel was asked, and the account
            # that now holds the trade was not asked whether it was paid nor told to close (design §5 rule 3).
            # Closing here would leave its trade payable: the expiry sweeper asks that account, then closes.
            moved = True
        elif can_proceed(order.close):
            order.close()
            order.sync_state, order.next_query_at = SyncState.OK, None
            order.save()
            _emit(order, "order.closed")
            if audit is not None:
                audit.write(order, to=order.state)
        elif order.state == OrderState.SUCCEEDED:
            # The payment's callback was applied while the channel was being asked to close (bug: this answered
            # 200 with the paid order); merchant-api.md "Orders": 409 carrying the paid order.
            raise InvalidState(CLOSE_OF_A_PAID_ORDER, extra={"order": order_as_api(order)})
        elif order.state != OrderState.CLOSED:
            raise InvalidState(f"the order {state_words(order.state)}", extra={"order": order_as_api(order)})
    if moved:
        return _close_later(order_id, audit=audit, asked_by=actor_label)
    return order


def _no_answer(exc: ChannelError) -> bool:
    """No answer to act on: a timeout, connection error, 5xx or unverifiable answer, or a refusal the channel says
    is temporary (retryable)."""
    return isinstance(exc, ChannelUnknown) or not exc.permanent


def _close_later(order_id: str, *, audit: AuditNote | None = None, close_sent: bool = False,
                 asked_by: str = "") -> Order:
    """Hand a close the channel did not answer to the expiry sweeper (orders_expired → order_expire, which queries
    first and then closes, design §5 rule 3): the order expires now. It stays pending until the channel answers.

    An order in the manual queue (its ladder ran out before the close: the sweeper skips it) goes back on a ladder
    counted from the close — its ``expires_at``, now (ladder.ladder_start) — as a reverse's counts from its ask:
    the close's own unanswered query is a channel timeout like any other, queried on the ladder and then left to a
    person (design §5 rule 2), and the merchant was told "closed in the background — order.closed or
    order.succeeded follows" (merchant-api.md "Errors", the close's API description). Bug: the close stayed in the
    manual queue, which no sweeper reads, and neither event came unless a person happened to act.

    ``close_sent``: the query was answered (not paid) but the close itself was not settled — a timeout or 5xx, a
    "try again later", or "paid" against the query's "not paid". That close is tried again on the ladder counted
    from the order's expiry (ladder.close_retry_waits; the next rung's query comes first, then the expiry sweeper
    closes), and after the last rung it waits in the manual queue for a person (design §5 rule 2). Bug: it stayed
    ``sync ok`` with nothing queued, so every run of the expiry sweeper (once a minute) queried the channel and sent
    the close again, with no end — never reaching the manual queue, where support would have seen it.

    ``asked_by``: a merchant's close through the API (``api:<app_id>``) is recorded as a staff close is (``audit``),
    as ``trades.order.close_requested``, so support's queue and the trade page can say who asked to close the order
    and when (trades.workbench.CLOSE_ASKED). Bug (a support lead's trial, DEMO-0029): nothing recorded it, and the
    order only had an earlier ``expires_at``, which the pages showed as "Expires" equal to "Created"."""
    with transaction.atomic():
        order = _locked(order_id)
        if order.state == OrderState.PENDING:
            now = timezone.now()
            manual = order.sync_state == SyncState.MANUAL and not _is_barcode(order)
            if order.expires_at > now or manual:
                order.expires_at = now
            if manual:
                _schedule_query(order, unknown=True)
            elif close_sent and close_retry_waits(expires_at=order.expires_at, now=now):
                _schedule_query(order, unknown=True, since=order.expires_at)
            order.save()
            if audit is not None:
                audit.write(order, to=order.state, close="left to the expiry sweeper: the channel did not answer")
            elif asked_by.startswith("api:"):
                audit_log(actor=asked_by, action="trades.order.close_requested", target=order,
                          data={"close": "left to the expiry sweeper: the channel did not answer"})
        return order


def order_reverse(*, order_id: str) -> Order:
    """撤销 a payment-code order through the channel: closes it if unpaid, refunds it if paid.

    The intent is recorded first, under the order's lock (design §5 rule 7): ``reverse_requested_at``, and the whole
    amount held in ``refund_reserved`` — a reverse of a paid order refunds all of it, so no refund may be created
    beside it (rule 6; refund_create's reservation then refuses, ``refundable_amount`` is 0). A channel that does
    not answer leaves the order as it was (pending, or succeeded) and the reverse is retried on the barcode ladder
    (WeChat and Alipay ask for a retried reverse when the answer is unclear: channel-protocols.md A.11 ``recall=Y``,
    B.5 ``retry_flag``; bank.md §6.7: reversing again is SUCCESS); after the last rung it waits for a person.

    A reverse sent again once one has ended the order — a till retrying after its call timed out — answers what the
    first one did: the order, ``reversed`` (or ``closed``, when the channel held no trade to reverse). Bug: that
    retry was ``409 invalid_state`` "the order is reversed", though two reverses sent together both answered 200
    (docs/api.md "Orders": sending the reverse again is safe). An order that ended some other way — closed by the
    merchant, failed, refunded — is still ``409`` with the order."""
    order = Order.objects.select_related("channel_account", "contract").get(pk=order_id)
    if not order.channel_product.endswith(".barcode"):
        raise InvalidState("only payment-code orders can be reversed; close or refund this one")
    _reverse_intent(order_id)
    return _reverse_send(order_id, retry=False)


def _ended_by_reverse(order: Order) -> bool:
    """Whether a reverse ended the order: it is ``reversed``, or ``closed`` by a reverse the channel answered "no
    such trade" (``_reverse_send``) — the last close or reverse the order's channel was asked is a reverse."""
    if order.state == OrderState.REVERSED:
        return True
    if order.state != OrderState.CLOSED:
        return False
    last = (ChannelCall.objects.filter(order_id=order.pk, verb__in=("close", "reverse"))
            .order_by("-created_at", "-pk").values_list("verb", flat=True).first())
    return last == "reverse"


def _reverse_intent(order_id: str) -> Order:
    with transaction.atomic():
        order = _locked(order_id)
        if order.state not in (OrderState.PENDING, OrderState.SUCCEEDED):
            if _ended_by_reverse(order):
                return order  # _reverse_send has nothing to send: the retry answers the order as it ended
            raise InvalidState(f"the order {state_words(order.state)}", extra={"order": order_as_api(order)})
        if order.reverse_requested_at is None:
            if order.refund_reserved:
                raise InvalidState("the order has refunds; it can no longer be reversed",
                                   extra={"order": order_as_api(order)})
            order.reverse_requested_at = timezone.now()
            order.refund_reserved = order.amount
            order.save(update_fields=["reverse_requested_at", "refund_reserved", "updated_at"])
        return order


def _end_reverse(order: Order) -> None:
    """The reverse in flight is over (settled by its answer or by the order's own end): release the hold."""
    if order.reverse_requested_at is not None:
        order.reverse_requested_at = None
        order.refund_reserved = max(order.refund_reserved - order.amount, 0)


def _reverse_send(order_id: str, *, retry: bool, paid: PaymentResult | None = None) -> Order:
    """Ask the channel to reverse (no lock held) and apply its answer. ``retry``: from the ladder (the merchant was
    already answered), so a refusal goes to a person instead of raising.

    ``paid``: the success a query just heard (cross-checked) while this reverse was owed (_query_for_reverse). A
    reverse that settles the trade records that payment first, as one whose own answer says paid does
    (_paid_before_reverse); any other outcome records it on its own (_with_payment), so the order says what the
    channel said."""
    order = Order.objects.select_related("channel_account", "contract").get(pk=order_id)
    if order.reverse_requested_at is None or order.state not in (OrderState.PENDING, OrderState.SUCCEEDED):
        if paid is not None:  # settled meanwhile (a rung's reverse, a callback): the payment is still recorded
            with transaction.atomic():
                order = _with_payment(_locked(order_id), paid)
        return order
    started = time.perf_counter()
    try:
        with recording_exchanges() as sent:
            result = order.channel_account.adapter().reverse_payment(_trade_ref(order))
    except ChannelError as exc:
        no_answer = _no_answer(exc)
        with transaction.atomic():
            _record_call(order.pk, verb="reverse", outcome="unknown" if no_answer else "error", started=started,
                         error=exc, sent=sent)
            order = _with_payment(_locked(order_id), paid)
            if order.reverse_requested_at is None:
                return order  # settled meanwhile (a query or callback saw the trade reversed, closed or failed)
            if no_answer:
                _schedule_query(order, unknown=True, since=order.reverse_requested_at)
                order.save()
                return order
            # A definite refusal: no money moved; the hold goes.
            _end_reverse(order)
            if exc.code == "order_not_found" and can_proceed(order.close):
                # The channel holds no trade to reverse: a payment code whose create never reached it (its query
                # said not found, and the ladder reversed it as the channels ask for an unclear result:
                # order_apply_result). Each channel says so in its own words — WeChat 404 ORDER_NOT_EXIST (A.6),
                # Alipay ACQ.TRADE_NOT_EXIST (B.3), the bank ORDER_NOT_EXIST (bank.md §12) — all mapped to
                # order_not_found by the adapters: nothing was charged, so the order is closed, as one whose close
                # the channel answers so is (order_close), and the merchant hears order.closed. Should the create
                # still reach the channel and be paid, that success is a late payment, refunded (design §5 rule 3) —
                # found by the follow-up queries after the close (ladder.CLOSED_WATCH; _follow_closed), since
                # WeChat calls nobody back about a payment code. Bug: nobody asked again, and the payment was never
                # found. The order is known (sync ok): closed, not an unknown outcome for support's queue.
                order.close()
                now = timezone.now()
                order.sync_state, order.next_query_at = SyncState.OK, next_watch_at(closed_at=now, now=now)
                order.save()
                _emit(order, "order.closed")
                return order
            if retry:
                logger.warning("reverse of order %s refused on retry: %s", order.pk, exc.message)
                order.sync_state, order.next_query_at = SyncState.MANUAL, None  # the merchant was told "pending"
            elif order.state == OrderState.SUCCEEDED:
                order.sync_state, order.next_query_at = SyncState.OK, None  # paid, and stays so: nothing to ask
            order.save()
        if retry:
            return order
        raise ChannelRefused(exc.message, channel_code=exc.channel_code, channel_message=exc.channel_message,
                             extra={"order": order_as_api(order)})
    with transaction.atomic():
        _record_call(order.pk, verb="reverse", outcome=result.state, started=started, result=result, sent=sent)
        order = _locked(order_id)
        if order.reverse_requested_at is None:
            return _with_payment(order, paid)
        if result.state not in (TradeState.REVERSED, TradeState.CLOSED):
            order = _with_payment(order, paid)
            _schedule_query(order, unknown=True, since=order.reverse_requested_at)  # not what a reverse answers
            order.save()
            return order
        if order.refund_reserved != order.amount or not can_proceed(order.reverse):
            # Nothing else can reserve beside the hold (the CHECK on refund_reserved ≤ amount): should it ever,
            # the money is both reversed and refunded — for a person, not for a transition.
            logger.error("order %s reversed at the channel but cannot be marked reversed (%s, reserved %s)",
                         order.pk, order.state, order.refund_reserved)
            order.sync_state, order.next_query_at = SyncState.MANUAL, None
            order.save()
            return order
        if order.state == OrderState.PENDING and (result.paid_at is not None or paid is not None):
            # The reverse gave back a payment: its own answer says so (Alipay), or the query that sent it heard it
            # (WeChat's reverse answer has no payment facts, channel-protocols.md A.8).
            order = _paid_before_reverse(order, result if result.paid_at is not None else paid)
        order.reverse()
        _end_reverse(order)
        _reversal_refunded(order)
        order.sync_state, order.next_query_at = SyncState.OK, None
        order.save()
        _emit(order, "order.reversed")
    return order


def _with_payment(order: Order, paid: PaymentResult | None) -> Order:
    """``order`` (locked) with the payment a query heard while its reverse was owed recorded through
    order_apply_result, when the reverse did not settle it (_reverse_send): a pending order becomes ``succeeded``
    (``order.succeeded``; the hold stays while the reverse is still owed), a reversed one gets its ``paid_at``."""
    if paid is None:
        return order
    return order_apply_result(order_id=order.pk, result=paid, source="query", locked=order)


def _reversal_refunded(order: Order) -> None:
    """A paid order the channel reversed gave the whole payment back: it says so in its refund aggregates.

    merchant-api.md "Orders": reverse "closes it if unpaid, refunds it if paid", and the order object's
    ``refunded_amount`` is what went back to the payer; design §4: ``succeeded → reversed`` only through the
    channel's reverse "(which refunds)". So a reversed order with ``paid_at`` has ``refunded_amount`` = its amount,
    ``refund_state`` full, and ``refund_reserved`` = its amount (the reversal's refund did not fail; the CHECK
    refunded ≤ reserved, design §5 rule 6). Bug: the order kept ``refunded_amount`` 0 — the merchant's GET and its
    ``order.reversed`` notification said nothing went back while the statement's reversal line took the whole
    amount off. An order reversed before anyone paid moved no money and keeps 0.

    The fee snapshot is not touched: the order keeps what was charged, and the reversal gives all of it back where
    money is counted — the statement's reversal line and the fee report's reversed columns (trades.services
    .statements.reversals_in; no Refund row, so no ``*_refunded`` shares): those read the snapshot and the
    ``order.reversed`` event, never ``refunded_amount``, so nothing is counted twice."""
    if order.state == OrderState.REVERSED and order.paid_at is not None:
        order.refund_reserved = order.refunded_amount = order.amount
        order.refund_state = RefundState.FULL


def _paid_before_reverse(order: Order, result: PaymentResult) -> Order:
    """The reverse found the trade paid — the payer confirmed after our last query — and gave the money back
    (Alipay cancel ``action=refund``, channel-protocols.md B.5; the adapter read the payment's facts). The payment
    is recorded first, through the order's own transition and cross-check (design §5 rule 4), then reversed: the
    merchant hears ``order.succeeded`` and ``order.reversed``, and the day's statement shows the payment and its
    reversal, as the channel's bill does. Bug: the order went from pending to reversed with no ``paid_at``, so the
    statement had neither line and reconciliation against the bill would have flagged a trade we knew about.
    A payment that fails the cross-check is not recorded (logged as a security event); the reversal stands."""
    try:
        with transaction.atomic():
            order = order_apply_result(order_id=order.pk, result=dataclasses.replace(result, state=TradeState.SUCCEEDED),
                                       source="reverse", locked=order)
    except CrossCheckFailed as exc:
        logger.warning("reverse of order %s: the channel's payment does not match the order: %s", order.pk, exc)
        audit_log(actor=f"channel:{order.channel_account.code}", action="security.reverse.mismatch", target=order,
                  data={"reason": str(exc), "channel_trade_no": result.channel_trade_no or "",
                        "amount": result.amount, "sub_mchid": result.sub_mchid or ""})
        order = _locked(order.pk)
    return order


def orders_due_for_query(*, limit: int = 500) -> list[str]:
    """Pending orders whose next query is due, orders (pending or paid) whose reverse is due for a retry, and
    payment codes closed on a reverse that found no trade whose follow-up query is due (_follow_closed: the only
    closed orders with a ``next_query_at``)."""
    return list(Order.objects.filter(Q(state__in=(OrderState.PENDING, OrderState.CLOSED))
                                     | Q(reverse_requested_at__isnull=False),
                                     next_query_at__lte=timezone.now())
                .order_by("next_query_at").values_list("pk", flat=True)[:limit])


def orders_expired(*, limit: int = 500) -> list[str]:
    """Overdue pending orders to close; not those in the manual queue, nor those being reversed (the reverse's
    ladder has them), nor those whose next rung of the ladder is still to come (``next_query_at`` ahead): the
    ladder asks the channel then, and an answer makes the order due here at once (the sweep queries before it
    expires). Payment codes: the ladder's last rung decides, and reverses an order still unpaid
    (order_barcode_step, issue 5). Bug: a payment code lives as long as its ladder (60 s), so this sweeper often
    came first; its close's query found the payer still confirming, which after the last rung is the manual queue,
    and the order stayed there pending — never reversed, nor closed. Bug: an expired order whose outcome is
    unknown was closed — so queried — by this sweeper every minute for up to 24 h, past the ladder of design §5
    rule 2 (1 min, every 10 min to 1 h, hourly to 24 h)."""
    now = timezone.now()
    return list(Order.objects.filter(state=OrderState.PENDING, expires_at__lte=now,
                                     reverse_requested_at__isnull=True)
                .exclude(sync_state=SyncState.MANUAL)
                .exclude(next_query_at__gt=now)
                .order_by("expires_at").values_list("pk", flat=True)[:limit])


def order_expire(*, order_id: str) -> Order:
    """Expiry = close, which queries the channel first (design §5 rule 3). A close the channel does not answer, or
    refuses, is tried again on the ladder counted from the expiry and then waits in the manual queue for a person
    (design §5 rule 2; _close_later): the sweeper logs a refusal and goes on with the other orders. Bug: a close
    the channel refused for good (WeChat 403 TRADE_ERROR, A.6) was queried and sent again at every run of the
    sweeper — two calls a minute to the channel, for ever — and never reached the queue where support sees it."""
    try:
        return order_close(order_id=order_id, actor_label="system:expiry")
    except InvalidState:
        return Order.objects.get(pk=order_id)
    except ChannelRefused as exc:
        logger.warning("expiry of order %s: the channel refused the close: %s", order_id, exc.message)
        return _close_later(order_id, close_sent=True)


def order_barcode_step(*, order_id: str) -> Order:
    """One rung of the query ladder. For payment codes (issue 5): query; after the last rung, reverse if still
    unpaid, so the payer is never charged for a sale the till gave up on. An order whose reverse is under way has
    the reverse asked again instead (order_reverse)."""
    if Order.objects.filter(pk=order_id, reverse_requested_at__isnull=False).exists():
        return _reverse_send(order_id, retry=True)
    return _order_sync(order_id, force=True, ladder=True)


def _reverse_unpaid_code(order: Order) -> Order:
    """Reverse a payment code still pending once its ladder ran out — the query just made heard it unpaid, or heard
    nothing (design §5 rule 2: unknown, never failed; the channels reverse a result that stays unclear,
    channel-protocols.md A.11, B.5, bank.md §6.3) and so put it in the manual queue (_schedule_query) — so the payer
    is never charged for a sale the till gave up on (issue 5; docs/api.md: "reverses the payment if it is still unpaid
    after a minute"). A query that found it paid applied that payment, and nothing is reversed.

    Whichever query runs the ladder out: the ladder's rung, the merchant's ``GET /orders/{no}``, a close, a person's
    "Sync now". Bug: only the rung reversed. A till polling its order took the last query from it; the order went to
    the manual queue, which no sweeper reads (orders_due_for_query wants a next_query_at, orders_expired skips the
    queue), stayed ``pending`` past its ``expires_at``, and the payer's confirmation at 170 s made it ``succeeded``.
    A reverse the channel refuses leaves the order in the manual queue for a person; one it does not answer goes on
    the reverse's own ladder (order_reverse)."""
    if (order.state != OrderState.PENDING or order.sync_state != SyncState.MANUAL or not _is_barcode(order)
            or order.reverse_requested_at is not None):
        return order
    try:
        return order_reverse(order_id=order.pk)
    except (InvalidState, ChannelRefused):
        return Order.objects.select_related("merchant", "channel_account", "contract").get(pk=order.pk)

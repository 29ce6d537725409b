"""The ``cashier`` product: an order created without a channel, paid on the hosted page ``/cashier/<token>``.

merchant-api.md "Orders" / "Payer-facing pages": the merchant fixes the amount, the payer's wallet decides the
channel product when the page is opened (issue 5 "One-code-pay"). So creation runs the merchant checks and proves
that *some* wallet can take the amount, but routing, risk and the fee snapshot happen in ``order_cashier_pay``,
once the wallet and payer are known — the same pipeline as ``order_create`` (design §2), through its helpers.
"""

from __future__ import annotations

import datetime as dt
import enum

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from aggpay.errors import InvalidRequest, InvalidState, NotFound, ProductNotAvailable
from channels.adapters.base import PaymentRequest
from channels.callbacks import callback_url
from channels.models import ChannelAccount
from channels.routing import choose
from merchants.models import Contract
from trades.models import Order, OrderState
from trades.services.fees import fees_for_payment
from trades.services.orders import (
    DEFAULT_EXPIRE,
    _call_and_apply,
    _locked,
    _payer_id,
    _replay,
    _sub_merchant,
)
from trades.services.representation import state_words

# The channel product each wallet pays a hosted page with (channel-protocols.md §E): JSAPI for WeChat and Alipay;
# for UnionPay the bank's unionpay.qr with a payer id is 银联JS支付 (docs/channels/bank.md §6.2).
WALLET_PRODUCTS = {"wechat": "wechat.jsapi", "alipay": "alipay.jsapi", "unionpay": "unionpay.qr"}
PAYER_KEYS = {"wechat": "openid", "alipay": "buyer_id", "unionpay": "user_id"}
_TOKEN_SALT = "aggpay.trades.cashier"
# The payer pages' OAuth runs under the service provider's app (WeChat: sp_appid, an sp_openid; §E).
OAUTH_PAYER_ID_KIND = "sp"


class CashierRefusal(enum.StrEnum):
    """Why ``order_cashier_pay`` (or the payer page, for someone it will not hand the order to) refuses a payer.

    The payer pages word each reason in Chinese and English; the exceptions keep the merchant API's code, message
    and param, so nothing a merchant reads changes (merchant-api.md "Errors")."""

    NOT_CASHIER = "not_cashier"
    PAID = "paid"
    CLOSED = "closed"  # closed, failed or reversed: it cannot be paid any more
    EXPIRED = "expired"  # past expires_at, not closed yet (the expiry sweep runs every minute)
    OTHER_WALLET = "other_wallet"  # routed to another wallet's product
    OTHER_PAYER = "other_payer"  # routed to this wallet, for another payer id
    WALLET_UNAVAILABLE = "wallet_unavailable"  # no account of this wallet can take it right now


class _Refused:
    """Carries ``reason`` (a CashierRefusal) on one of the domain errors, which the API maps by code as before."""

    def __init__(self, message: str, *, reason: CashierRefusal, **kwargs):
        super().__init__(message, **kwargs)
        self.reason = reason


class CashierStateRefused(_Refused, InvalidState):
    pass


class CashierWalletRefused(_Refused, ProductNotAvailable):
    pass


def refusal_reason(exc: Exception) -> CashierRefusal | None:
    """The reason of a refusal of this module; None for the pipeline's own (risk, routing, the channel)."""
    return exc.reason if isinstance(exc, _Refused) else None


def cashier_closed_reason(order: Order) -> CashierRefusal | None:
    """PAID, CLOSED or EXPIRED if nobody can pay ``order`` any more, else None."""
    if order.state == OrderState.SUCCEEDED:
        return CashierRefusal.PAID
    if order.state != OrderState.PENDING:
        return CashierRefusal.CLOSED
    if order.expires_at <= timezone.now():
        return CashierRefusal.EXPIRED
    return None


def cashier_wallet(order: Order) -> str | None:
    """The wallet a routed cashier order belongs to (None before a payer has opened it in one)."""
    return next((wallet for wallet, product in WALLET_PRODUCTS.items() if product == order.channel_product), None)


def cashier_is_payer(*, order: Order, wallet: str, payer_id: str) -> bool:
    """Whether ``payer_id`` in ``wallet`` is the payer a routed cashier order belongs to: only they may be handed its
    pay parameters (a prepay id or trade no is tied to their openid / buyer id, channel-protocols.md §E)."""
    return (bool(order.channel_account_id) and wallet in WALLET_PRODUCTS and bool(payer_id)
            and order.channel_product == WALLET_PRODUCTS[wallet] and order.payer == {PAYER_KEYS[wallet]: payer_id})


def cashier_token(order_id: str) -> str:
    """The page token: the order id signed with SECRET_KEY (stable, so ``cashier_url`` never changes), so a token
    cannot be forged or guessed."""
    return signing.Signer(salt=_TOKEN_SALT).sign(order_id)


def cashier_order_id(token: str) -> str:
    try:
        return signing.Signer(salt=_TOKEN_SALT).unsign(token)
    except signing.BadSignature:
        raise NotFound("no such cashier page") from None


def cashier_url(order_id: str) -> str:
    return settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/") + reverse("onecode:cashier", args=[cashier_token(order_id)])


def cashier_order_create(*, app, data: dict, print_: str) -> tuple[Order, bool]:
    """Persist a pending ``cashier`` order with ``pay_params.cashier_url`` and no channel call. Called from
    ``order_create`` after the idempotency replay and merchant check."""
    merchant = app.merchant
    if not any(choose(merchant=merchant, product=product, amount=data["amount"]).chosen
               for product in WALLET_PRODUCTS.values()):
        raise ProductNotAvailable(f"no wallet can pay {data['amount']} fen to this merchant by cashier",
                                  param="product")
    if data.get("payer") or data.get("auth_code"):
        raise InvalidRequest("cashier orders learn the payer on the hosted page", param="payer")
    expire = dt.timedelta(seconds=data["expire_seconds"]) if data.get("expire_seconds") else DEFAULT_EXPIRE
    try:
        with transaction.atomic():
            order = Order.objects.create(
                merchant=merchant, app=app, out_trade_no=data["out_trade_no"], amount=data["amount"],
                currency=data.get("currency") or "CNY", product="cashier", subject=data["subject"],
                description=data.get("description") or "", metadata=data.get("metadata") or {},
                notify_url=data.get("notify_url") or app.notify_url, return_url=data.get("return_url") or "",
                client_ip=data.get("client_ip") or None, store_id=data.get("store_id") or "",
                terminal_id=data.get("terminal_id") or "", expires_at=timezone.now() + expire,
                request_fingerprint=print_, routing={"layer": "cashier", "chosen": None, "candidates": []},
            )
            order.pay_params = {"cashier_url": cashier_url(order.pk)}
            order.save(update_fields=["pay_params"])
    except IntegrityError:
        existing = Order.objects.get(merchant=merchant, out_trade_no=data["out_trade_no"])
        return _replay(existing, data), True
    return order, False


def order_cashier_pay(*, order_id: str, wallet: str, payer_id: str, account_id: int, return_url: str = "") -> Order:
    """Route a cashier order to ``wallet``'s JSAPI product for ``payer_id`` and create it at the channel.

    ``account_id`` is the account whose OAuth issued ``payer_id`` (trades.onecode.services.oauth_account): the id is
    only valid there (§E), so the order is routed to that account only (eligibility, limits and rates as usual),
    and the channel is told the id is the provider app's (``payer_id_kind="sp"``).

    Once routed, the order belongs to that wallet and payer: opening the page again returns the same pay
    parameters; another wallet or payer gets InvalidState (one channel trade per order, design §5 rule 5).

    ``return_url``: where a channel's own payment page sends the payer back to (a UnionPay JS payment's bank cashier,
    docs/channels/bank.md §6.2 ``front_url``) — the payer page's result — unless the merchant gave the order its
    own return_url (merchant-api.md "Orders"), which wins. Only the channel is told; the order keeps the merchant's.

    Its refusals carry a CashierRefusal (``refusal_reason``) for the payer page to word.
    """
    if wallet not in WALLET_PRODUCTS:
        raise InvalidRequest(f"unknown wallet {wallet}", param="wallet")
    if not payer_id:
        raise InvalidRequest("the payer id is required", param="payer_id")
    product = WALLET_PRODUCTS[wallet]
    payer = {PAYER_KEYS[wallet]: payer_id}
    order = Order.objects.select_related("merchant").get(pk=order_id)
    if order.product != "cashier":
        raise CashierStateRefused("not a cashier order", reason=CashierRefusal.NOT_CASHIER)
    if reason := cashier_closed_reason(order):
        raise CashierStateRefused(
            f"the order {state_words(order.state) if order.state != OrderState.PENDING else 'has expired'}", reason=reason)
    if order.channel_account_id:
        return _same_payer(order, product, payer)

    from risk.services.pretrade import check_trade

    check_trade(merchant=order.merchant, product=product, amount=order.amount, payer=payer)
    decision = choose(merchant=order.merchant, product=product, amount=order.amount, only_account_id=account_id)
    if decision.chosen is None:
        raise CashierWalletRefused("this order cannot be paid from this wallet right now; try another wallet",
                                   param="wallet", reason=CashierRefusal.WALLET_UNAVAILABLE)
    chosen = decision.chosen
    fees = fees_for_payment(amount=order.amount, merchant_rate=chosen.merchant_rate, cost_rate=chosen.cost_rate,
                            rebate_rate=chosen.rebate_rate)
    with transaction.atomic():
        order = _locked(order_id)
        if order.state != OrderState.PENDING:
            raise CashierStateRefused(f"the order {state_words(order.state)}", reason=cashier_closed_reason(order))
        if order.channel_account_id:  # a concurrent open of the page routed it first
            return _same_payer(order, product, payer)
        order.channel_product, order.payer = product, payer
        order.channel_account_id, order.contract_id = chosen.account_id, chosen.contract_id
        order.sub_mchid, order.routing = chosen.sub_mchid, decision.as_record()
        order.merchant_rate, order.merchant_fee = fees.merchant_rate, fees.merchant_fee
        order.cost_rate, order.channel_cost = fees.cost_rate, fees.channel_cost
        order.rebate_rate, order.rebate, order.profit = fees.rebate_rate, fees.rebate, fees.profit
        # Cleared so order_apply_result stores the wallet's parameters; cashier_url is merged back below.
        order.pay_params = {}
        order.save()

    account = ChannelAccount.objects.get(pk=chosen.account_id)
    contract = Contract.objects.get(pk=chosen.contract_id)
    request = PaymentRequest(
        product=product, sub_merchant=_sub_merchant(contract), out_trade_no=order.id, amount=order.amount,
        subject=order.subject, notify_url=callback_url(account), expires_at=order.expires_at,
        currency=order.currency, client_ip=order.client_ip or "", payer_id=_payer_id(product, payer),
        return_url=order.return_url or return_url, store_id=order.store_id, terminal_id=order.terminal_id,
        payer_id_kind=OAUTH_PAYER_ID_KIND,
    )
    order = _call_and_apply(order, account, verb="create", call=lambda adapter: adapter.create_payment(request))
    with transaction.atomic():
        order = _locked(order_id)
        order.pay_params = {**(order.pay_params or {}), "cashier_url": cashier_url(order.pk)}
        order.save(update_fields=["pay_params", "updated_at"])
    return order


def _same_payer(order: Order, product: str, payer: dict) -> Order:
    if order.channel_product != product or order.payer != payer:
        raise CashierStateRefused(
            "this order is already being paid from another wallet",
            reason=CashierRefusal.OTHER_WALLET if order.channel_product != product else CashierRefusal.OTHER_PAYER)
    return order

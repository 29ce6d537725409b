"""Payer pages (public, no staff login): ``/c/<code>`` (store code) and ``/cashier/<token>`` (one cashier order).

merchant-api.md "Payer-facing pages", channel-protocols.md §E. Nothing here lets one payer see another's order:
store codes and page tokens are unguessable, the OAuth ``state`` is signed and bound to this browser's session,
and the payer id learnt through OAuth lives only in the (server-side) session, keyed by the page it was for.
"""

from __future__ import annotations

import math
import re
import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from aggpay.errors import ApplicationError, ChannelRefused, IdempotencyConflict
from aggpay.money import format_yuan
from channels.adapters.errors import ChannelError
from channels.models import ChannelAccount
from merchants.models import MerchantState
from trades.models import Order, OrderState
from trades.onecode import services
from trades.onecode.wallets import WECOM, detect_wallet
from trades.services.cashier import (
    CashierRefusal,
    cashier_closed_reason,
    cashier_is_payer,
    cashier_order_id,
    cashier_token,
    cashier_wallet,
    order_cashier_pay,
    refusal_reason,
)
from trades.services.orders import order_sync

WALLET_NAMES = {"wechat": "微信 WeChat", "alipay": "支付宝 Alipay", "unionpay": "云闪付 UnionPay"}
_SESSION = "onecode"
# The payer pages ask the status endpoint (which syncs with the channel, at most once per QUERY_MIN_INTERVAL per
# order: asking more often only repeats the last answer) this often, and a bounded number of times — a tab left
# open must not poll for ever — then say the payment is still being processed.
RESULT_POLL_INTERVAL_MS = 3000  # both pages; QUERY_MIN_INTERVAL is 3 s
RESULT_POLLS = 20  # the result page: a minute
# The pay page polls from the wallet's answer (or the page load, without a bridge) for as long as a payer may take to
# confirm in the wallet — five minutes — but not long past the order's expiry: once the expiry sweep has closed it
# (it runs every minute and asks the channel first, design §5 rule 3) the status says closed and the page shows it.
PAY_POLLS = 100  # five minutes at RESULT_POLL_INTERVAL_MS
EXPIRY_SWEEP_MARGIN_MS = 60_000  # trades-sync-due-orders runs every minute (aggpay/celery.py)
# The query parameter of the order page the channel's own payment page sends the payer back to (services.
# RETURNING_WALLETS): its pay page would hand the order to the wallet again — for UnionPay, straight back to the
# bank's page — so it shows the result, asking the status endpoint, with a link to pay if they have not.
BACK_FROM_CHANNEL = "back"


# --- session helpers ------------------------------------------------------------------------------------------
def _nonce(request: HttpRequest) -> str:
    state = request.session.setdefault(_SESSION, {})
    if "nonce" not in state:
        state["nonce"] = secrets.token_urlsafe(16)
        request.session.modified = True
    return state["nonce"]


def _payer(request: HttpRequest, key: str, wallet: str) -> dict | None:
    found = request.session.get(_SESSION, {}).get("payers", {}).get(key)
    return found if found and found.get("w") == wallet else None


def _remember_payer(request: HttpRequest, key: str, *, wallet: str, payer_id: str, account_id: int) -> None:
    state = request.session.setdefault(_SESSION, {})
    state.setdefault("payers", {})[key] = {"w": wallet, "p": payer_id, "a": account_id}
    request.session.modified = True


def _current_payer(request: HttpRequest, store_code, wallet: str, account: ChannelAccount | None) -> dict | None:
    """The payer this session learnt for a store code, if learnt at the account the code logs payers in at now.

    The session outlives contract changes: after the merchant moves to another account (the old one suspended or
    disabled), a payer remembered at the old one could only be refused until the session expired — a regular
    customer turned away while a new one pays. Through the wallet's OAuth again they get an id valid at ``account``.
    """
    payer = _payer(request, "c:" + store_code.code, wallet)
    return payer if payer and account is not None and payer["a"] == account.pk else None


def _not_trading(request: HttpRequest) -> HttpResponse:
    # Frozen (risk) or closed merchants may not take payments (design: merchant states). Said before the wallet's
    # OAuth and the amount, and without the merchant number or why: this page is public.
    return _sorry(request, "该商户暂停收款。This shop is not taking payments right now.", 403)


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _sorry(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "payer/message.html", {"title": "无法支付 Cannot pay", "message": message}, status=status)


def _scan_with(request: HttpRequest, wallet: str | None) -> HttpResponse:
    return render(request, "payer/scan_with.html", {"wecom": wallet == WECOM, "wallets": WALLET_NAMES.values()})


def _start_oauth(request: HttpRequest, *, merchant, wallet: str, account: ChannelAccount, target: str,
                 return_url: str) -> HttpResponse:
    """Send the payer through the OAuth that learns an id valid at ``account`` (the order's): its own, or for a
    bank's WeChat / Alipay payer our app's at that wallet (services.oauth_via, §E). The state names both."""
    via = services.oauth_via(merchant=merchant, account=account, wallet=wallet)
    if via is None:  # oauth_account passes such accounts over; an order already routed there may still land here
        return _sorry(request, f"该商户暂不支持{WALLET_NAMES[wallet]}付款。This shop does not take this wallet yet.")
    state = services.oauth_state(nonce=_nonce(request), target=target, wallet=wallet, account_id=account.pk,
                                 oauth_account_id=via.pk)
    url = via.adapter().oauth_authorize_url(redirect_uri=request.build_absolute_uri(return_url), state=state)
    return redirect(url)


def _finish_oauth(request: HttpRequest, target: str) -> dict:
    """Check the state, exchange the code for the payer id, remember it for ``target``."""
    query = request.GET
    data = services.oauth_state_check(state=query.get("state", ""), nonce=_nonce(request), target=target)
    # WeChat returns ``code``, Alipay ``auth_code``, UnionPay userAuth ``userAuthCode`` (§E).
    code = query.get("code") or query.get("auth_code") or query.get("userAuthCode") or ""
    # A state signed before the OAuth account was named in it ("o") was for the order's account's own OAuth.
    payer_id = services.payer_id_from_code(account_id=data.get("o", data["a"]), code=code)
    _remember_payer(request, target, wallet=data["w"], payer_id=payer_id, account_id=data["a"])
    return data


# --- /c/<code> ------------------------------------------------------------------------------------------------
@require_GET
def scan(request: HttpRequest, code: str) -> HttpResponse:
    try:
        store_code = services.storecode_for_payer(code)
    except ApplicationError:
        return _sorry(request, "这个码牌无效或已停用。This code is not valid.", 404)
    if store_code.merchant.state != MerchantState.ACTIVE:
        return _not_trading(request)
    wallet = detect_wallet(request.headers.get("User-Agent", ""))
    if wallet is None or wallet == WECOM:
        return _scan_with(request, wallet)
    target = "c:" + store_code.code
    account = services.oauth_account(merchant=store_code.merchant, wallet=wallet)
    if account is None or services.payments_app(store_code.merchant) is None:
        return _sorry(request, f"该商户暂不支持{WALLET_NAMES[wallet]}付款。This shop does not take this wallet yet.")
    if _current_payer(request, store_code, wallet, account):
        return redirect("onecode:scan-pay", code=store_code.code)
    return _start_oauth(request, merchant=store_code.merchant, wallet=wallet, account=account, target=target,
                        return_url=reverse("onecode:scan-oauth", args=[store_code.code]))


@require_GET
def scan_oauth(request: HttpRequest, code: str) -> HttpResponse:
    try:
        store_code = services.storecode_for_payer(code)
        _finish_oauth(request, "c:" + store_code.code)
    except (ApplicationError, ChannelError) as exc:
        return _sorry(request, f"授权失败，请重新扫码。Authorisation failed: {exc}")
    return redirect("onecode:scan-pay", code=store_code.code)


@never_cache  # a fresh attempt token (and state) on every load, Back button included
@require_http_methods(["GET", "POST"])
def scan_pay(request: HttpRequest, code: str) -> HttpResponse:
    try:
        store_code = services.storecode_for_payer(code)
    except ApplicationError:
        return _sorry(request, "这个码牌无效或已停用。This code is not valid.", 404)
    if store_code.merchant.state != MerchantState.ACTIVE:
        return _not_trading(request)
    wallet = detect_wallet(request.headers.get("User-Agent", ""))
    payer = _payer(request, "c:" + store_code.code, wallet or "")
    if payer is not None and request.method == "GET":
        # A fresh form pays at the account the code logs payers in at now; a submitted one keeps the account its
        # payer id came from (onecode_pay routes there only, and names its limits if it cannot take the amount).
        account = services.oauth_account(merchant=store_code.merchant, wallet=wallet)
        payer = _current_payer(request, store_code, wallet, account)
    if payer is None:
        return redirect("onecode:scan", code=store_code.code)  # start again through the wallet's OAuth
    nonce = _nonce(request)
    context = {"store": store_code.store, "merchant": store_code.merchant, "wallet": wallet,
               "wallet_name": WALLET_NAMES[wallet], "amount_text": "", "error": ""}
    if request.method == "POST":
        context["amount_text"] = request.POST.get("amount", "")
        try:
            amount = services.parse_amount(context["amount_text"], account_id=payer["a"], wallet=wallet)
            order = services.onecode_pay(store_code=store_code, attempt=request.POST.get("attempt", ""),
                                         nonce=nonce, wallet=wallet, payer_id=payer["p"], amount=amount,
                                         account_id=payer["a"], client_ip=_client_ip(request))
        except ApplicationError as exc:
            context["error"] = payer_text(exc)
            context["attempt"] = _attempt_after(request, store_code, nonce, exc)
            if exc.extra.get("order_id"):  # the form's earlier payment, for a payer who changed the amount
                context["earlier_url"] = reverse("onecode:order", args=[cashier_token(exc.extra["order_id"])])
            return render(request, "payer/amount.html", context, status=422)
        # Post/redirect/get; a repeated submit of this form redirects to the same order (services.onecode_pay).
        return redirect("onecode:order", token=cashier_token(order.pk))
    context["attempt"] = services.attempt_token(store_code=store_code, nonce=nonce)
    return render(request, "payer/amount.html", context)


@require_GET
def scan_return(request: HttpRequest, code: str, ref: str) -> HttpResponse:
    """Where a channel's own payment page sends the payer back to (services.payer_return_url): the order's result."""
    order = services.order_for_return(code=code, ref=ref)
    if order is None:
        return _sorry(request, "订单不存在。No such order.", 404)
    return redirect(_back_from_channel(reverse("onecode:order", args=[cashier_token(order.pk)])))


def _back_from_channel(url: str) -> str:
    """The order page, as the payer sees it coming back from the channel's own payment page (order_page)."""
    return f"{url}?{BACK_FROM_CHANNEL}=1"


def _attempt_after(request: HttpRequest, store_code, nonce: str, exc: ApplicationError) -> str:
    """The form's token after a refused submit: the same one while it is valid and made no order (so a double
    tap that crossed the error still finds one order), a fresh one once it is bad or spent."""
    spent = isinstance(exc, (ChannelRefused, IdempotencyConflict)) or exc.param == "attempt"
    submitted = request.POST.get("attempt", "")
    if not spent:
        try:
            services.attempt_check(token=submitted, store_code=store_code, nonce=nonce)
            return submitted
        except ApplicationError:
            pass
    return services.attempt_token(store_code=store_code, nonce=nonce)


# --- /cashier/<token> -----------------------------------------------------------------------------------------
def _cashier_order(token: str) -> Order | None:
    try:
        order_id = cashier_order_id(token)
    except ApplicationError:
        return None
    return Order.objects.select_related("merchant", "channel_account").filter(pk=order_id, product="cashier").first()


def _is_cashier_payer(request: HttpRequest, order: Order) -> bool:
    """Whether this browser's session learnt (through the wallet's OAuth, at the account the order was routed to)
    the payer a routed cashier order belongs to. The cashier link is the merchant's to share — and its token is
    also the pay page's — so anyone may hold it; only this payer gets the order's hand-off (channel-protocols.md §E:
    a prepay id / trade no is tied to their openid / buyer id) and its result as theirs."""
    wallet = cashier_wallet(order)
    payer = _payer(request, "o:" + order.pk, wallet or "")
    return (payer is not None and payer["a"] == order.channel_account_id
            and cashier_is_payer(order=order, wallet=wallet, payer_id=payer["p"]))


def _routed_cashier(request: HttpRequest, order: Order, token: str, wallet: str | None) -> HttpResponse:
    """Someone opens a cashier order that a payer has already opened in their wallet (so it is routed to that
    wallet, account and payer id, order_cashier_pay): its payer goes on to their hand-off, anyone else is told the
    order is being paid by someone else (or has expired) — never handed another payer's parameters."""
    if wallet != cashier_wallet(order):  # another wallet, WeCom, an ordinary browser: not this order's payer
        return _refused(request, cashier_closed_reason(order) or CashierRefusal.OTHER_WALLET)
    if _is_cashier_payer(request, order):
        return redirect("onecode:order", token=token)
    payer = _payer(request, "o:" + order.pk, wallet)
    if payer is None or payer["a"] != order.channel_account_id:
        # Who is this? Only an id from the account the order was routed to compares with its payer's (an openid is
        # per appid, §E): the wallet's silent OAuth there tells the payer (a new session, another tab) from others.
        return _start_oauth(request, merchant=order.merchant, wallet=wallet, account=order.channel_account,
                            target="o:" + order.pk, return_url=reverse("onecode:cashier-oauth", args=[token]))
    return _refused(request, cashier_closed_reason(order) or CashierRefusal.OTHER_PAYER)


@never_cache  # a fresh attempt token (and state) on every load, Back button included
@require_http_methods(["GET", "POST"])
def cashier(request: HttpRequest, token: str) -> HttpResponse:
    order = _cashier_order(token)
    if order is None:
        return _sorry(request, "订单不存在。No such order.", 404)
    if order.state != OrderState.PENDING:
        return redirect("onecode:order", token=token)  # its result, worded for whoever this is
    wallet = detect_wallet(request.headers.get("User-Agent", ""))
    if order.channel_account_id:
        return _routed_cashier(request, order, token, wallet)
    if order.expires_at <= timezone.now():
        # Not closed yet (the expiry sweep runs every minute) but order_cashier_pay would refuse it: say so now,
        # not after the wallet's OAuth and a Pay button that cannot work.
        return _refused(request, CashierRefusal.EXPIRED)
    if order.merchant.state != MerchantState.ACTIVE:
        return _not_trading(request)
    if wallet is None or wallet == WECOM:
        return _scan_with(request, wallet)
    target = "o:" + order.pk
    payer = _payer(request, target, wallet)
    if payer is not None and request.method == "GET" and not services.account_takes(
            merchant=order.merchant, wallet=wallet, account_id=payer["a"], amount=order.amount):
        # The id the session learnt is only valid at the account it came from (§E); once that account stops taking
        # this order (product or account disabled, contract suspended), order_cashier_pay refused the payer with
        # "try another wallet" for the rest of the session while this wallet could pay at another account. A fresh
        # page logs them in again where the order can go, as a store code's does (_current_payer).
        payer = None
    if payer is None:
        account = services.oauth_account(merchant=order.merchant, wallet=wallet, amount=order.amount)
        if account is None:
            return _sorry(request, f"该订单不支持{WALLET_NAMES[wallet]}付款。This order cannot be paid this way.")
        return _start_oauth(request, merchant=order.merchant, wallet=wallet, account=account, target=target,
                            return_url=reverse("onecode:cashier-oauth", args=[token]))
    context = {"merchant": order.merchant, "subject": order.subject, "amount_yuan": format_yuan(order.amount),
               "wallet": wallet, "wallet_name": WALLET_NAMES[wallet], "error": ""}
    if request.method == "POST":
        try:
            order_cashier_pay(order_id=order.pk, wallet=wallet, payer_id=payer["p"], account_id=payer["a"],
                              return_url=_result_url(token) if wallet in services.RETURNING_WALLETS else "")
        except ApplicationError as exc:
            context["error"] = cashier_refusal(exc)
            return render(request, "payer/amount.html", context, status=422)
        return redirect("onecode:order", token=token)
    return render(request, "payer/amount.html", context)


def _result_url(token: str) -> str:
    """The order's result page on our public host: where the channel's own page sends the payer back to."""
    return _back_from_channel(settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/") + reverse("onecode:order", args=[token]))


_HAS_CHINESE = re.compile(r"[\u4e00-\u9fff]")


def payer_text(exc: ApplicationError) -> str:
    """An error for the payer pages, bilingual like the rest of them: our own payer messages already are; the
    pipeline's (risk, routing, the channel's refusal) are the merchant API's English, so they get a Chinese lead."""
    if _HAS_CHINESE.search(exc.message):
        return exc.message
    return f"付款未能完成。The payment could not be made: {exc.message}"


# What the payer reads for each CashierRefusal: order_cashier_pay's messages are the merchant API's, in English.
CASHIER_REFUSALS = {
    CashierRefusal.NOT_CASHIER: "订单不存在。No such order.",
    CashierRefusal.PAID: "此订单已付款。This order has already been paid.",
    CashierRefusal.CLOSED: "此订单已关闭，无法付款。This order is closed and cannot be paid.",
    CashierRefusal.EXPIRED: "订单已过期，请联系商家重新下单。This order has expired; ask the shop for a new one.",
    CashierRefusal.OTHER_WALLET: "此订单已在其他钱包中发起付款，如需付款请联系商家。"
                                 "This order is already being paid from another wallet; ask the shop if you meant "
                                 "to pay it.",
    CashierRefusal.OTHER_PAYER: "此订单已由他人发起付款，如需付款请联系商家。"
                                "This order is already being paid by someone else; ask the shop if you meant to "
                                "pay it.",
    CashierRefusal.WALLET_UNAVAILABLE: "此订单暂不能用此钱包付款，请换一个钱包。"
                                       "This order cannot be paid from this wallet right now; try another wallet.",
}


def cashier_refusal(exc: ApplicationError) -> str:
    """What the payer reads when order_cashier_pay refuses: its reason's words, or the pipeline's (risk, routing,
    the channel) with a Chinese lead."""
    reason = refusal_reason(exc)
    return CASHIER_REFUSALS[reason] if reason else payer_text(exc)


def _refused(request: HttpRequest, reason: CashierRefusal) -> HttpResponse:
    """The page for someone a cashier order will not be paid by (another payer, another wallet, too late)."""
    status = 410 if reason == CashierRefusal.EXPIRED else 409
    return render(request, "payer/message.html", {"title": "无法支付 Cannot pay", "message": CASHIER_REFUSALS[reason],
                                                  "reason": reason}, status=status)


@require_GET
def cashier_oauth(request: HttpRequest, token: str) -> HttpResponse:
    order = _cashier_order(token)
    if order is None:
        return _sorry(request, "订单不存在。No such order.", 404)
    try:
        _finish_oauth(request, "o:" + order.pk)
    except (ApplicationError, ChannelError) as exc:
        return _sorry(request, f"授权失败，请重试。Authorisation failed: {exc}")
    return redirect("onecode:cashier", token=token)


# --- the order: hand-off to the wallet, then the result -------------------------------------------------------
def _order_for_token(token: str) -> Order | None:
    try:
        order_id = cashier_order_id(token)
    except ApplicationError:
        return None
    return Order.objects.select_related("merchant", "channel_account").filter(pk=order_id).first()


def _bridge(request: HttpRequest, order: Order, token: str) -> dict:
    """What the page's script hands to the wallet's JS bridge (§E), plus the simulator stand-in's target."""
    params = order.pay_params or {}
    wallet = order.channel_product.split(".", 1)[0]
    bridge = {"wallet": wallet, "status_url": reverse("onecode:order-status", args=[token]),
              "standin": bool(getattr(settings, "AGGPAY_PAYER_STANDIN", settings.DEBUG or settings.AGGPAY_SIMULATORS))}
    if wallet == "wechat":
        bridge.update(jsapi=params.get("jsapi") or {}, prepay_id=params.get("prepay_id", ""))
    elif wallet == "alipay":
        bridge.update(trade_no=params.get("trade_no", ""))
    else:
        bridge.update(redirect_url=params.get("redirect_url", ""))
    if bridge["standin"] and order.channel_account is not None:
        # The demo's wallet stand-in pays at the simulator's payer endpoint, as the real app would at the channel.
        bridge["standin_url"] = order.channel_account.base_url.rstrip("/") + "/_payer/pay"
    return bridge


def _poll(token: str, *, max_polls: int, until_ready: bool = False) -> dict:
    """What a payer page's script needs to ask the order's status endpoint a bounded number of times; with
    ``until_ready``, also to reload once the wallet hand-off is there (the page was shown before it was)."""
    return {"status_url": reverse("onecode:order-status", args=[token]), "interval_ms": RESULT_POLL_INTERVAL_MS,
            "max_polls": max_polls, "until_ready": until_ready}


def _hand_off_ready(order: Order) -> bool:
    """Whether the pay page can hand ``order`` to the wallet: pending, routed, with the wallet's parameters. A
    cashier order's pay_params also hold its cashier_url, so after a create whose outcome is unknown (a timeout,
    design §5 rule 2), or while the create is still at the channel, they are not empty but have nothing to pay
    with."""
    wallet_params = {key for key in (order.pay_params or {}) if key != "cashier_url"}
    return bool(order.state == OrderState.PENDING and order.channel_account_id and wallet_params)


def _pay_polls(order: Order) -> int:
    """How many times the pay page polls: PAY_POLLS, or fewer for an order that expires (and is swept) sooner — but
    never fewer than the result page's minute, so an order already past its expiry still shows its close."""
    left_ms = (order.expires_at - timezone.now()).total_seconds() * 1000 + EXPIRY_SWEEP_MARGIN_MS
    return min(PAY_POLLS, max(RESULT_POLLS, math.ceil(left_ms / RESULT_POLL_INTERVAL_MS)))


@never_cache  # a fresh attempt token (and state) on every load, Back button included
@require_GET
def order_page(request: HttpRequest, token: str) -> HttpResponse:
    order = _order_for_token(token)
    if order is None:
        return _sorry(request, "订单不存在。No such order.", 404)
    if order.product == "cashier" and order.channel_account_id and not _is_cashier_payer(request, order):
        if order.state == OrderState.PENDING:
            # The cashier page tells its payer (through the wallet's OAuth if this session does not know them yet)
            # from anyone else holding the link, who is told it is being paid: never the hand-off here.
            return redirect("onecode:cashier", token=token)
        # Paid or closed: said as a fact about the order, not "支付成功" to someone who did not pay it.
        context = {"order": order, "amount_yuan": format_yuan(order.amount), "merchant": order.merchant,
                   "bystander": CASHIER_REFUSALS[cashier_closed_reason(order)]}
        return render(request, "payer/result.html", context)
    if order.state == OrderState.PENDING and order.merchant.state != MerchantState.ACTIVE:
        # Routed and created while the shop could trade, frozen (or closed) since: this page is what hands the wallet
        # the parameters to pay with, so it hands none (design §4: a frozen merchant may not trade). Unfrozen, the
        # same order can be paid again; a payment already made still arrives by callback or sync.
        return _not_trading(request)
    context = {"order": order, "amount_yuan": format_yuan(order.amount), "merchant": order.merchant}
    back_from_channel = request.GET.get(BACK_FROM_CHANNEL) == "1"
    if _hand_off_ready(order) and not back_from_channel:
        context["bridge"] = _bridge(request, order, token)
        context["poll"] = _poll(token, max_polls=_pay_polls(order))
        return render(request, "payer/pay.html", context)
    if order.state == OrderState.PENDING and back_from_channel:
        # Back from the bank's page, paid or not: the result as soon as the channel tells it (the notification often
        # comes a moment after the payer), and the pay page for a payer who left the bank's page without paying.
        context["poll"] = _poll(token, max_polls=RESULT_POLLS)
        context["pay_url"] = reverse("onecode:order", args=[token])
    elif order.state == OrderState.PENDING:
        # Still pending without a wallet hand-off (a create whose outcome is unknown, a cashier order not yet
        # routed): ask the status endpoint, which syncs with the channel, as the pay page does — a bounded number
        # of times, then say so; reloading this page would only wait for the sync job. It may also be the second
        # tap of a double-tapped Pay button, which the browser shows while the first tap's create is still at the
        # channel: the page reloads into the hand-off as soon as that create has answered.
        context["poll"] = _poll(token, max_polls=RESULT_POLLS, until_ready=True)
    return render(request, "payer/result.html", context)


@never_cache  # a fresh attempt token (and state) on every load, Back button included
@require_GET
def order_status(request: HttpRequest, token: str) -> JsonResponse:
    order = _order_for_token(token)
    if order is None:
        return JsonResponse({"error": "not_found"}, status=404)
    if order.state == OrderState.PENDING and order.channel_account_id:
        try:
            order = order_sync(order_id=order.pk)  # rate-limited per order; callbacks usually win the race
        except (ApplicationError, ChannelError):
            pass
    # ``ready``: the pay page can hand the order to the wallet now (a result page shown before it could reloads).
    return JsonResponse({"state": order.state, "amount": order.amount, "ready": _hand_off_ready(order)})

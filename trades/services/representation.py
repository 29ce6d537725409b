"""Orders and refunds as the merchant API returns them (merchant-api.md "Orders", "Refunds"). One function each,
used by the API answers and by the events that notify merchants, so both always agree."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

# Two state names are verbs: "the order is succeeded" does not read. Every message, to a merchant or to staff, that
# names a state after its subject says it through ``state_words``.
_STATE_VERBS = {"succeeded": "has succeeded", "failed": "has failed"}


def state_words(state: str) -> str:
    """An order's, refund's or late payment's ``state`` as it reads after its subject: "has succeeded", "has
    failed", "is pending", "is closed", "is refunding"."""
    return _STATE_VERBS.get(str(state), f"is {state}")


def _time(value):
    return timezone.localtime(value).isoformat() if value else None


def order_as_api(order) -> dict:
    data = {
        "id": order.id, "out_trade_no": order.out_trade_no, "merchant_no": order.merchant.merchant_no,
        "amount": order.amount, "currency": order.currency, "product": order.product, "state": order.state,
        "subject": order.subject, "description": order.description, "metadata": order.metadata or {},
        "pay_params": order.pay_params or {}, "channel_trade_no": order.channel_trade_no or None,
        "paid_at": _time(order.paid_at), "refunded_amount": order.refunded_amount,
        "refundable_amount": order.refundable_amount, "expires_at": _time(order.expires_at),
        "created_at": _time(order.created_at), "updated_at": _time(order.updated_at),
        "late_payment": _late_payment(order),
        "wallet": order_wallet(order), "store_id": order.store_id or None, "terminal_id": order.terminal_id or None,
    }
    if order.state == "failed":
        data["failure"] = {"code": order.failure_code, "message": order.failure_message}
    return data


# The wallets an order can be paid in (merchant-api.md "Orders": every product code starts with one).
WALLETS = ("wechat", "alipay", "unionpay")


def order_wallet(order) -> str | None:
    """The wallet ``order`` is paid in, read from its product codes, no query: the product the channel was asked for
    (``channel_product``: a ``barcode`` order's is the wallet's own, read from the payment code when it was made,
    trades.products.barcode_product), else the product ordered. None when neither names a wallet: a ``cashier``
    order no payer has opened in a wallet yet (trades.services.cashier stores the wallet's product when one does).
    Bug: a ``barcode`` order said only ``product: barcode`` — in the answer, the notifications and the statement —
    so a till could not total a shift per wallet nor print the wallet on the receipt."""
    for code in (order.channel_product, order.product):
        wallet, dot, _ = (code or "").partition(".")
        if dot and wallet in WALLETS:
            return wallet
    return None


# What became of a late payment's money, as the merchant reads it (the order's ``late_payment.state``), from the
# LatePayment's own state (trades.services.late: open / refunding / resolved) and how it was resolved.
LATE_REFUNDING, LATE_REFUNDED, LATE_KEPT, LATE_WITH_SUPPORT = "refunding", "refunded", "kept", "with_support"
LATE_PAYMENT_STATES = (LATE_REFUNDING, LATE_REFUNDED, LATE_KEPT, LATE_WITH_SUPPORT)


# A late payment (design §5 rule 3) hangs only on an order closed or failed before the payer paid
# (trades.services.orders._late_payment): no other order is asked for one, so a pending or paid order costs no query.
LATE_PAYMENT_ORDER_STATES = ("closed", "failed")


def _late_payment(order) -> dict | None:
    """What became of a payment that arrived after ``order`` was closed (docs/api.md "Orders and refunds"), or None.
    Bug: the order said ``closed`` with nothing paid while the statement had a payment line for it, and a till's
    totals were short with nothing on the order to say why. Read through the order's one-to-one: the API's reads
    join it (order_get, the list), so a closed order costs no extra query there either."""
    if order.state not in LATE_PAYMENT_ORDER_STATES:
        return None
    late = getattr(order, "late_payment", None)  # the accessor's DoesNotExist is an AttributeError: none
    if late is None:
        return None
    return {"amount": late.amount, "paid_at": _time(late.paid_at), "channel_trade_no": late.channel_trade_no or None,
            "state": late_payment_money_state(late), "refunded_at": _time(late.refunded_at)}


def late_payment_money_state(late) -> str:
    """``refunded``: the money went back to the payer (``refunded_at`` — the channel's refund succeeded, or a person
    says the channel's back office returned it); ``kept``: resolved with the money left with the merchant (a person
    settled it as kept by the merchant, who delivered the goods: resolved without ``refunded_at``,
    trades.services.late._money_back); ``refunding``: the channel is returning it (``refunding``), or the automatic
    refund is about to ask it to (``open``, never asked, not flagged, AGGPAY_LATE_PAYMENT_AUTO_REFUND on — the
    sweeper starts one whose enqueue was lost: late_payments_never_refunded); ``with_support``: the payer's money is
    held until support acts — the channel refused the refund, a flag holds it for a person, or automatic refunds
    are off (the late-payment queue)."""
    if late.state == "resolved":
        return LATE_REFUNDED if late.refunded_at is not None else LATE_KEPT
    if late.state == "refunding":
        return LATE_REFUNDING
    if (late.refund_attempts == 0 and not late.abnormal
            and getattr(settings, "AGGPAY_LATE_PAYMENT_AUTO_REFUND", True)):
        return LATE_REFUNDING
    return LATE_WITH_SUPPORT


def refund_as_api(refund) -> dict:
    return {
        "id": refund.id, "out_refund_no": refund.out_refund_no, "out_trade_no": refund.order.out_trade_no,
        "amount": refund.amount, "state": refund.state, "reason": refund.reason,
        "channel_refund_no": refund.channel_refund_no or None, "succeeded_at": _time(refund.succeeded_at),
        "failure": ({"code": refund.failure_code, "message": refund.failure_message}
                    if refund.state == "failed" else None),
        "created_at": _time(refund.created_at),
    }

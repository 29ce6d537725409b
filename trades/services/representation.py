"""Orders and refunds as the merchant API returns them (merchant-api.md "Orders", "Refunds"). One function each,
used by the API answers and by the events that notify merchants, so both always agree."""

from __future__ import annotations

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
    }
    if order.state == "failed":
        data["failure"] = {"code": order.failure_code, "message": order.failure_message}
    return data


def refund_as_api(refund) -> dict:
    return {
        "id": refund.id, "out_refund_no": refund.out_refund_no, "out_trade_no": refund.order.out_trade_no,
        "amount": refund.amount, "state": refund.state, "reason": refund.reason,
        "channel_refund_no": refund.channel_refund_no or None, "succeeded_at": _time(refund.succeeded_at),
        "failure": ({"code": refund.failure_code, "message": refund.failure_message}
                    if refund.state == "failed" else None),
        "created_at": _time(refund.created_at),
    }

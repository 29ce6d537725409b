"""Late payments (design §5 rule 3): the payer paid after we closed the order. The money is returned through the
channel's refund, recorded as a refund of the order with a reserved out_refund_no, so it is visible and
idempotent like any other refund."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import ApplicationError
from channels.adapters.base import RefundRequest
from channels.adapters.errors import ChannelError
from channels.callbacks import callback_url
from trades.models import LatePayment
from trades.services.orders import _trade_ref

logger = logging.getLogger(__name__)


def late_payment_refund(*, late_payment_id: int, actor=None) -> LatePayment:
    """Refund a late payment in full at the channel. Unknown outcomes leave it open for support."""
    with transaction.atomic():
        late = LatePayment.objects.select_for_update(of=("self",), no_key=True).select_related("order__channel_account",
                                                                       "order__contract").get(pk=late_payment_id)
        if late.state != "open":
            return late
        late.state = "refunding"
        late.save(update_fields=["state"])
    order = late.order
    request = RefundRequest(trade=_trade_ref(order), out_refund_no=f"late_{order.pk}", amount=late.amount,
                            total_amount=late.amount, reason="paid after the order was closed",
                            notify_url=callback_url(order.channel_account))
    try:
        result = order.channel_account.adapter().refund(request)
        outcome = f"refund {result.state} at the channel ({result.channel_refund_no or 'no number yet'})"
        state = "resolved"
    except (ChannelError, ApplicationError) as exc:
        outcome, state = f"automatic refund failed, needs a person: {exc}", "open"
    with transaction.atomic():
        late = LatePayment.objects.select_for_update(no_key=True).get(pk=late_payment_id)
        late.state = state
        late.resolution = f"{timezone.now():%Y-%m-%d %H:%M} {outcome}"
        late.save(update_fields=["state", "resolution"])
        audit_log(actor=actor, action="trades.late_payment.refund", target=order, data={"outcome": outcome})
    return late

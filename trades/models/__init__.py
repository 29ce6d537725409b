"""trades models — see design.md §2 for what this app owns."""

from trades.models.events import Delivery, DeliveryAttempt, DeliveryState, Event, EventSequence
from trades.models.orders import (
    ChannelCall,
    LatePayment,
    Order,
    OrderState,
    Refund,
    RefundState,
    SyncState,
    new_order_id,
    new_refund_id,
)

__all__ = ["ChannelCall", "Delivery", "DeliveryAttempt", "DeliveryState", "Event", "EventSequence", "LatePayment",
           "Order", "OrderState", "Refund", "RefundState", "SyncState", "new_order_id", "new_refund_id"]
from trades.models.refund_numbers import EarlierRefundNumber  # noqa: E402,F401  earlier attempts' channel numbers
from trades.models.store_codes import StoreCode  # noqa: E402,F401  one-code-pay (trades.onecode)

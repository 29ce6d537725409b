"""The domain error family (design §9): services raise these; the API maps them to the envelope in one place.

Each subclass carries the merchant-API ``code`` and HTTP status of merchant-api.md's error table.
"""

from __future__ import annotations


class ApplicationError(Exception):
    code = "invalid_request"
    status = 400

    def __init__(self, message: str, *, param: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra or {}


class InvalidRequest(ApplicationError):
    code, status = "invalid_request", 400


class Forbidden(ApplicationError):
    code, status = "forbidden", 403


class RiskRejected(ApplicationError):
    code, status = "risk_rejected", 403


class NotFound(ApplicationError):
    code, status = "not_found", 404


class IdempotencyConflict(ApplicationError):
    code, status = "idempotency_conflict", 409


class InvalidState(ApplicationError):
    code, status = "invalid_state", 409


class RefundAmountExceeded(ApplicationError):
    code, status = "refund_amount_exceeded", 422


class ProductNotAvailable(ApplicationError):
    code, status = "product_not_available", 422


class RateLimited(ApplicationError):
    code, status = "rate_limited", 429


class ChannelRefused(ApplicationError):
    """The channel answered with a definite error; its words go to the merchant."""

    code, status = "channel_error", 502

    def __init__(self, message: str, *, channel_code: str | None = None, channel_message: str | None = None, **kw):
        super().__init__(message, **kw)
        self.channel_code = channel_code
        self.channel_message = channel_message

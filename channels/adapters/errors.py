"""The one error type of the adapter layer (design §6; healthchecks' TransportError(permanent)).

``ChannelError`` carries whether retrying can help, the channel's own code and message, and our normalised code.
``ChannelUnknown`` is the special case of design §5 rule 2: the call may or may not have happened at the channel
(timeout, connection reset, 5xx, unparseable or unverifiable answer) — the caller must treat the outcome as
unknown and find out by querying, never mark anything failed.
"""

from __future__ import annotations


class ChannelError(Exception):
    """A definite answer from the channel that the call did not do what was asked.

    ``permanent``: retrying the same request will not help (invalid parameters, merchant limited, order paid).
    ``code``: our normalised code (``CODES`` in each adapter maps channel codes to these), e.g. ``order_paid``.
    ``channel_code`` / ``channel_message``: the channel's own words, shown to merchants and staff.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = True,
        code: str = "channel_error",
        channel_code: str | None = None,
        channel_message: str | None = None,
        http_status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.channel_code = channel_code
        self.channel_message = channel_message
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        return not self.permanent

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.message!r}, code={self.code!r}, channel_code={self.channel_code!r}, "
                f"permanent={self.permanent})")


class ChannelUnknown(ChannelError):
    """No definite answer: timeout, connection error, 5xx, or an answer we could not verify (design §5 rule 2)."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("permanent", False)
        kwargs.setdefault("code", "channel_unknown")
        super().__init__(message, **kwargs)


class SignatureError(ChannelError):
    """A response or callback whose signature (or timestamp window) does not verify. Never trust its content."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("permanent", True)
        kwargs.setdefault("code", "invalid_signature")
        super().__init__(message, **kwargs)


class ParseError(ChannelError):
    """A callback, bill or answer that is malformed (truncated, wrong encoding, missing fields)."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("permanent", True)
        kwargs.setdefault("code", "malformed")
        super().__init__(message, **kwargs)


# Normalised codes every adapter maps its channel's codes to (per-kind tables live in each adapter module).
NORMALISED_CODES = {
    "channel_error": "unclassified definite refusal",
    "channel_unknown": "no definite answer; query later",
    "invalid_signature": "signature did not verify",
    "malformed": "could not parse",
    "invalid_params": "the channel rejected our parameters",
    "merchant_limited": "the sub-merchant is limited or closed by the channel",
    "merchant_not_found": "no such sub-merchant at the channel",
    "order_not_found": "no such order at the channel",
    "order_paid": "the order is already paid",
    "order_closed": "the order is closed or reversed",
    "user_paying": "the payer is confirming (payment code)",
    "insufficient_balance": "the payer's balance is insufficient",
    "auth_code_invalid": "the payment code is invalid or expired",
    "refund_exceeds": "refund amount exceeds what is refundable",
    "refund_not_found": "no such refund at the channel",
    "rate_limited": "the channel asks us to slow down",
    "no_permission": "the product is not enabled for this merchant",
    "risk_rejected": "the channel's risk control refused",
}

"""The channel adapter interface (design §6; pretix's BasePaymentProvider, healthchecks' Transport).

An adapter is built from one channel account's typed config and speaks that channel's wire protocol over HTTP
(``channels.adapters.http.channel_request``). It keeps no state between calls and never touches our database:
callers (services) record intent, call the adapter outside any row lock, then apply the typed result.

Errors: every verb raises only ``ChannelError`` subclasses —
  * ``ChannelUnknown`` — no definite answer (timeout, connection error, 5xx, unverifiable answer). The caller must
    treat the outcome as unknown and query later; never mark anything failed on it (design §5 rule 2).
  * ``SignatureError`` — the answer or callback did not verify; its content must not be used.
  * ``ChannelError(permanent=…)`` — a definite refusal with the channel's code and message.
A verb that a kind does not support raises ``NotImplementedError`` and the kind's ``capabilities`` omits it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

# --- products -----------------------------------------------------------------------------------------------
# Product codes of merchant-api.md ("Orders"). ``barcode`` and ``cashier`` are resolved by trades before an
# adapter sees them (barcode → the wallet's barcode product; cashier → the wallet's jsapi product).
PRODUCTS = (
    "wechat.jsapi", "wechat.mini", "wechat.app", "wechat.h5", "wechat.native", "wechat.barcode",
    "alipay.jsapi", "alipay.app", "alipay.wap", "alipay.qr", "alipay.barcode",
    "unionpay.qr", "unionpay.barcode",
)
BARCODE_PRODUCTS = ("wechat.barcode", "alipay.barcode", "unionpay.barcode")


# --- payment ------------------------------------------------------------------------------------------------
class TradeState:
    """Normalised channel trade states."""

    PENDING = "pending"  # created, not paid (NOTPAY, WAIT_BUYER_PAY, ACQ.TRADE_NOT_EXIST after precreate)
    USER_PAYING = "user_paying"  # payment code: the payer is confirming (USERPAYING)
    SUCCEEDED = "succeeded"  # paid (SUCCESS, TRADE_SUCCESS, TRADE_FINISHED, REFUND)
    FAILED = "failed"  # definite failure (PAYERROR)
    CLOSED = "closed"  # closed before payment (CLOSED, TRADE_CLOSED without payment)
    REVERSED = "reversed"  # reversed (REVOKED)
    NOT_FOUND = "not_found"  # the channel has no such trade (never created, or precreate not scanned)


@dataclass(frozen=True)
class SubMerchant:
    """Who the trade is for at the channel: the contract's sub-merchant identifiers."""

    sub_mchid: str  # WeChat sub_mchid, Alipay smid/merchant pid, bank merchant no
    sub_appid: str = ""  # WeChat sub_appid (to use sub_openid); empty otherwise
    app_auth_token: str = ""  # Alipay ISV token for this merchant (B.6); empty otherwise


@dataclass(frozen=True)
class PaymentRequest:
    product: str  # one of PRODUCTS
    sub_merchant: SubMerchant
    out_trade_no: str  # ours (the aggpay order id sent to the channel), unique per channel account
    amount: int  # fen
    subject: str
    notify_url: str  # our callback URL for this channel account
    expires_at: dt.datetime
    currency: str = "CNY"
    client_ip: str = ""
    payer_id: str = ""  # openid / buyer_id / user_id for JSAPI-like products
    auth_code: str = ""  # payment code for barcode products
    return_url: str = ""  # H5/WAP
    store_id: str = ""
    terminal_id: str = ""
    attach: str = ""  # echoed back by the channel
    # Which app ``payer_id`` was issued for. "" = as the merchant API defines ``payer.openid``: WeChat's sub_openid
    # when the contract has a sub_appid, else sp_openid. "sp" = the service provider's app (sp_appid): what our own
    # one-code-pay OAuth learns (channel-protocols.md §E, A.7). "sub" = the sub-merchant's app (sub_appid).
    payer_id_kind: str = ""


@dataclass
class PaymentResult:
    """What a create (or a query) says about a trade."""

    state: str  # a TradeState value
    pay_params: dict[str, Any] = field(default_factory=dict)  # code_url / jsapi / app / h5_url / wap_url
    channel_trade_no: str = ""  # the number the channel we call knows the trade by (TradeRef.channel_trade_no)
    # The number the payer's wallet shows (WeChat 交易单号 ``transaction_id``, Alipay 交易号 ``trade_no``, UnionPay
    # order id): what a consumer quotes to support. At a direct channel it is ``channel_trade_no``; behind a bank
    # it is not — docs/channels/bank.md §2, §6.5: the bank's ``trade_no`` is ours to call it by, the wallet's number
    # comes as its ``channel_trade_no``. Empty while the channel has not given one (unpaid, most creates).
    wallet_trade_no: str = ""
    amount: int | None = None  # as the channel reports it (cross-checked by trades)
    currency: str = "CNY"
    paid_at: dt.datetime | None = None
    payer_id: str = ""
    sub_mchid: str = ""  # as the channel reports it (cross-checked by trades)
    out_trade_no: str = ""
    failure_code: str = ""
    failure_message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the channel's answer, for the timeline (redacted on display)


def alipay_jsapi_pay_params(trade_no: str) -> dict[str, Any]:
    """merchant-api.md "Orders": jsapi products hand the wallet's JS bridge a ``jsapi`` object; Alipay's is the
    argument of ``AlipayJSBridge.call("tradePay", …)`` (channel-protocols.md §B.5). ``trade_no`` stays beside it,
    as ``prepay_id`` does for WeChat, for callers that only need the number."""
    return {"jsapi": {"tradeNO": trade_no}, "trade_no": trade_no}


@dataclass(frozen=True)
class TradeRef:
    sub_merchant: SubMerchant
    out_trade_no: str
    channel_trade_no: str = ""
    amount: int | None = None  # some channels need the total (e.g. refunds); queries don't


# --- refunds ------------------------------------------------------------------------------------------------
class RefundState:
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"
    ABNORMAL = "abnormal"  # channel could not return the money (card closed); manual queue
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class RefundRequest:
    trade: TradeRef
    out_refund_no: str
    amount: int  # this refund, fen
    total_amount: int  # the original payment, fen
    reason: str = ""
    notify_url: str = ""


@dataclass
class RefundResult:
    state: str  # a RefundState value
    out_refund_no: str = ""
    channel_refund_no: str = ""
    amount: int | None = None
    succeeded_at: dt.datetime | None = None
    failure_code: str = ""
    failure_message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# --- callbacks ----------------------------------------------------------------------------------------------
class CallbackKind:
    PAYMENT = "payment"
    REFUND = "refund"
    ONBOARDING = "onboarding"
    COMPLAINT = "complaint"
    VIOLATION = "violation"


@dataclass
class CallbackEvent:
    """A verified, decrypted callback. ``event_id`` is the channel's id for de-duplication where it has one."""

    kind: str  # a CallbackKind value
    event_id: str
    payment: PaymentResult | None = None
    refund: RefundResult | None = None
    data: dict[str, Any] = field(default_factory=dict)  # onboarding/complaint/violation payloads
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackAck:
    """What to answer the channel: its format for "received" or "failed, retry"."""

    status: int
    body: bytes
    content_type: str


# --- bills --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BillLine:
    kind: str  # "payment" or "refund"
    trade_time: dt.datetime
    out_trade_no: str
    channel_trade_no: str
    sub_mchid: str
    amount: int  # fen, positive for both kinds
    fee: int  # channel fee in fen (rounded half-up from the bill's precision)
    out_refund_no: str = ""
    channel_refund_no: str = ""
    state: str = ""  # as the bill writes it
    raw: Mapping[str, str] = field(default_factory=dict)


# --- onboarding -----------------------------------------------------------------------------------------------
class OnboardingState:
    """Normalised onboarding review states (design §4 contract machine)."""

    SUBMITTED = "submitted"
    AUDITING = "auditing"
    REJECTED = "rejected"
    TO_BE_CONFIRMED = "to_be_confirmed"  # account verification
    TO_BE_SIGNED = "to_be_signed"
    FINISHED = "finished"  # active: sub_mchid usable
    CANCELED = "canceled"


@dataclass
class OnboardingResult:
    state: str  # an OnboardingState value
    application_id: str = ""  # the channel's id of the application
    sub_mchid: str = ""
    sign_url: str = ""
    message: str = ""
    rejections: list[dict[str, str]] = field(default_factory=list)  # [{field, reason}]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class SettlementChangeResult:
    state: str  # "auditing" | "succeeded" | "failed"
    application_no: str = ""
    message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# --- the interface ------------------------------------------------------------------------------------------
class ChannelAdapter:
    """One channel kind. Subclasses set ``kind``, ``products`` and ``capabilities`` and implement the verbs."""

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    products: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # Products this channel cannot create without the contract's ``sub_appid`` (the merchant's own WeChat appid that
    # the payer's openid belongs to): routing does not choose such a contract without one (channels.routing.choose),
    # since the channel would refuse every order of the product (a definite PARAM_ERROR, the order failed).
    needs_sub_appid: ClassVar[frozenset[str]] = frozenset()
    # What the channel's picture upload (``upload_image``) takes of our onboarding documents (merchants/documents.py):
    # content type → the largest file in bytes. None = every document we accept (JPEG, PNG, PDF up to 5 MB). A
    # submission whose documents a channel onboarding the requested products cannot take is refused naming the
    # document (merchants.services.onboarding.unusable_documents): the clerk hears it before risk review, not as
    # the channel's refusal of the contract after approval.
    accepted_documents: ClassVar[Mapping[str, int] | None] = None
    config_class: ClassVar[type] = object

    def __init__(self, config, *, base_url: str):
        self.config = config
        self.base_url = base_url.rstrip("/")

    # payments
    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Create the trade at the channel and return its pay parameters.

        Moves money only for barcode products (the payer's code is charged): the result may then be
        ``succeeded``, ``user_paying`` (query again), or ``failed`` on a definite refusal. Other products return
        ``pending`` with ``pay_params``. Raises ``ChannelUnknown`` when the outcome is not known.
        """
        raise NotImplementedError

    def query_payment(self, ref: TradeRef) -> PaymentResult:
        """Ask the channel for the trade's state. Moves nothing. ``not_found`` when the channel has no trade."""
        raise NotImplementedError

    def close_payment(self, ref: TradeRef) -> None:
        """Close an unpaid trade so it can no longer be paid. Raises ChannelError(code='order_paid') if paid."""
        raise NotImplementedError

    def reverse_payment(self, ref: TradeRef) -> PaymentResult:
        """撤销 a payment-code trade: closes it if unpaid, refunds it if paid. Returns the resulting state."""
        raise NotImplementedError

    # refunds
    def refund(self, request: RefundRequest) -> RefundResult:
        """Ask the channel to refund. Moves money. Same out_refund_no is idempotent at the channel.

        Returns ``processing`` or ``succeeded``; a definite refusal raises ChannelError; no answer raises
        ChannelUnknown (the refund may exist — query it).
        """
        raise NotImplementedError

    def query_refund(self, *, trade: TradeRef, out_refund_no: str) -> RefundResult:
        """Ask the channel for a refund's state. Moves nothing."""
        raise NotImplementedError

    # callbacks
    def parse_callback(self, *, headers: Mapping[str, str], body: bytes, path: str = "") -> CallbackEvent:
        """Verify (signature, timestamp) and decrypt a callback, and parse it into a CallbackEvent.

        Raises SignatureError if it does not verify (including SIGNTEST probes), ParseError if malformed.
        Does not cross-check against our records: that is the caller's job (design §5 rule 4).
        """
        raise NotImplementedError

    def callback_ack(self, *, ok: bool, message: str = "") -> CallbackAck:
        """The answer the channel expects: success (stop retrying) or failure (retry later)."""
        raise NotImplementedError

    # bills
    def download_bill(self, *, bill_date: dt.date, sub_mchid: str = "") -> list[BillLine]:
        """Download and parse the channel's trade bill for a day. Raises ParseError on a malformed file."""
        raise NotImplementedError

    # onboarding
    def onboarding_submit(self, *, application: dict[str, Any]) -> OnboardingResult:
        """Submit a sub-merchant application (A.13 / B.7 / bank). ``application`` is the channel-neutral dict
        built by merchants.services; the adapter maps, encrypts and uploads as its channel requires."""
        raise NotImplementedError

    def onboarding_query(self, *, application_id: str, business_code: str = "") -> OnboardingResult:
        """Ask for an application's review state."""
        raise NotImplementedError

    def settlement_modify(self, *, sub_mchid: str, account: dict[str, Any]) -> SettlementChangeResult:
        """Ask to change a sub-merchant's settlement account (asynchronous at every channel)."""
        raise NotImplementedError

    def settlement_modify_query(self, *, sub_mchid: str, application_no: str) -> SettlementChangeResult:
        raise NotImplementedError

    # complaints
    def complaints_list(self, *, begin: dt.date, end: dt.date, sub_mchid: str = "") -> list[dict[str, Any]]:
        raise NotImplementedError

    def complaint_respond(self, *, complaint_id: str, sub_mchid: str, content: str) -> None:
        raise NotImplementedError

    # one-code-pay OAuth (design §1; protocols §E)
    def oauth_authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """Where to send the payer's wallet browser to learn its payer id silently (snsapi_base/auth_base)."""
        raise NotImplementedError

    def oauth_payer_id(self, *, code: str) -> str:
        """Exchange the OAuth code for the payer id (openid / buyer user id / UnionPay user id)."""
        raise NotImplementedError

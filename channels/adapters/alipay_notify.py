"""Parsing and verifying Alipay's asynchronous notifications (channel-protocols.md B.4, B.7).

Two envelopes, both form-encoded and signed over every param except ``sign`` and ``sign_type`` (B.4):
  * ``notify_type=trade_status_sync`` — payments; a refund shows as the same notify plus ``out_biz_no`` /
    ``refund_fee`` / ``gmt_refund`` (treat it as a hint: confirm with the refund query);
  * 蚂蚁消息 with ``msg_method`` + JSON ``biz_content`` — here the 直付通 review results
    ``ant.merchant.expand.indirect.zft.passed`` / ``.rejected``.
Both are verified (signature, then freshness: design §5 rule 4) before anything in them is read; see
``check_fresh`` for the window. Only ParseError and SignatureError escape (hypothesis-fuzzed in
tests/channels/test_alipay_parsers.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from channels.adapters.alipay_sign import notify_sign_content, rsa2_verify
from channels.adapters.alipay_wire import parse_time, trade_state, yuan_or_none
from channels.adapters.base import (
    CallbackEvent,
    CallbackKind,
    OnboardingState,
    PaymentResult,
    RefundResult,
    RefundState,
)
from channels.adapters.errors import ParseError, SignatureError
from channels.adapters.http import without_nul

MAX_BODY = 64 * 1024

# Freshness (design §5 rule 4: a callback is verified — signature AND timestamp), so that a captured genuine notify
# cannot be replayed forever. How wide the window must be depends on what notify_time means on a retry, and B.4 is
# silent. Alipay's public field table (read through mirrors) calls notify_time "通知的发送时间" — the time the notify
# is sent — and its notes say notify_id stays the same on every retry; whether each RETRY is restamped or carries
# the first send's time is [UNVERIFIED]. So we size the window for the worst case, the first send's time on every
# retry: it must cover Alipay's whole retry schedule — 8 sends within 25 h (4m, 10m, 10m, 1h, 2h, 6h, 15h; B.4) —
# plus an hour for clock skew and Alipay's own queueing, or a genuine late retry would be refused. (WeChat's
# 5 minutes, A.3, would do only if every send were restamped.) 蚂蚁消息 (B.4, B.7) carry ``utc_timestamp``
# (milliseconds since the epoch) instead and have no documented schedule: same window. A stamp further in the
# future than clock skew (A.3's 5 minutes) is refused too. A replay inside the window is a duplicate, which changes
# nothing (design §5 rule 4).
NOTIFY_MAX_AGE = dt.timedelta(hours=26)  # 25 h of retries + 1 h
NOTIFY_MAX_AHEAD = dt.timedelta(minutes=5)
ZFT_MESSAGES = {
    "ant.merchant.expand.indirect.zft.passed": OnboardingState.FINISHED,
    "ant.merchant.expand.indirect.zft.rejected": OnboardingState.REJECTED,
}


def parse_form(body: bytes) -> dict[str, str]:
    """A form-encoded body → dict; duplicate keys, bad percent-escapes or non-UTF-8 text are ParseErrors."""
    if not isinstance(body, bytes | bytearray) or not body:
        raise ParseError("empty notify body")
    if len(body) > MAX_BODY:
        raise ParseError("notify body is too large")
    try:
        text = bytes(body).decode("utf-8")
        # B.4 notifies are charset=utf-8 (we ask for utf-8 in every request); a GBK one would need re-decoding.
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict",
                          max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(f"notify body is not a valid form: {type(exc).__name__}") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ParseError(f"notify repeats the field {key!r}")
        params[key] = value
    return params


def parse_notify(*, body: bytes, headers: Mapping[str, str], app_id: str, alipay_public_key,
                 now: dt.datetime | None = None) -> CallbackEvent:
    params = parse_form(body)
    sign = params.get("sign", "")
    if not sign:
        raise SignatureError("notify is not signed")
    if params.get("sign_type", "RSA2") != "RSA2":
        raise SignatureError(f"notify sign_type {params.get('sign_type')!r} is not RSA2")
    if not rsa2_verify(alipay_public_key, notify_sign_content(params), sign):
        raise SignatureError("notify signature does not verify")
    if params.get("app_id") != app_id:
        raise SignatureError("notify is addressed to another app_id")
    check_fresh(params, now=now)
    params = without_nul(params)  # a %00 in a verified notify's value: stored text holds no NUL
    raw = {k: v for k, v in params.items() if k != "sign"}
    event_id = params.get("notify_id", "")
    if not event_id:
        raise ParseError("notify has no notify_id")
    if params.get("msg_method"):
        return _message_event(params, event_id, raw)
    if params.get("notify_type") != "trade_status_sync":
        raise ParseError(f"unsupported notify_type {params.get('notify_type')!r}")
    return _trade_event(params, event_id, raw)


def check_fresh(params: Mapping[str, str], *, now: dt.datetime | None = None) -> None:
    """Refuse (SignatureError, like a bad signature) a verified notify stamped outside the window above.

    The stamp is inside the signature (B.4 signs every param but ``sign``/``sign_type``), so a captured genuine
    notify cannot shed or change it without failing verification. A signed notify with no stamp at all is not one
    Alipay sends (both envelopes always carry theirs) and has nothing to check here.
    """
    stamp = params.get("utc_timestamp") if params.get("msg_method") else params.get("notify_time")
    if not stamp:
        return
    try:
        if params.get("msg_method"):
            if not stamp.isascii() or not stamp.isdigit():
                raise ValueError(f"{stamp!r} is not milliseconds since the epoch")
            sent = dt.datetime.fromtimestamp(int(stamp) / 1000, dt.UTC)
        else:
            sent = parse_time(stamp)
    except (ValueError, OverflowError, OSError) as exc:
        raise ParseError(f"notify time is malformed: {exc}") from None
    if sent is None:
        return
    now = now or dt.datetime.now(dt.UTC)
    age = now - sent
    name = "utc_timestamp" if params.get("msg_method") else "notify_time"
    if age > NOTIFY_MAX_AGE:
        raise SignatureError(f"notify is stale: {name} {stamp} is {age.total_seconds() / 3600:.1f} h old, "
                             f"beyond the {NOTIFY_MAX_AGE.total_seconds() / 3600:.0f} h Alipay's retries can reach")
    if -age > NOTIFY_MAX_AHEAD:
        raise SignatureError(f"notify is stamped in the future: {name} {stamp} is "
                             f"{-age.total_seconds():.0f} s ahead of our clock")


def _trade_event(params: dict[str, str], event_id: str, raw: dict[str, Any]) -> CallbackEvent:
    for field in ("out_trade_no", "trade_status", "total_amount"):
        if not params.get(field):
            raise ParseError(f"trade notify lacks {field}")
    try:
        paid_at = parse_time(params.get("gmt_payment"))
        state = trade_state(params["trade_status"], paid=paid_at is not None)
        payment = PaymentResult(
            state=state, channel_trade_no=params.get("trade_no", ""), wallet_trade_no=params.get("trade_no", ""),
            amount=yuan_or_none(params["total_amount"]),
            paid_at=paid_at if state != "closed" else None,
            payer_id=params.get("buyer_id") or params.get("buyer_open_id", ""), sub_mchid=params.get("seller_id", ""),
            out_trade_no=params["out_trade_no"], raw=raw,
        )
        if params.get("passback_params"):
            raw["passback_params"] = unquote(params["passback_params"])
        is_refund = bool(params.get("out_biz_no")) and bool(params.get("refund_fee") or params.get("gmt_refund"))
        if not is_refund:
            return CallbackEvent(kind=CallbackKind.PAYMENT, event_id=event_id, payment=payment, raw=raw)
        refund = RefundResult(
            state=RefundState.SUCCEEDED, out_refund_no=params["out_biz_no"],
            succeeded_at=parse_time(params.get("gmt_refund")), raw=raw,
            # refund_fee is the trade's cumulative refunded total, not this refund's amount (B.4).
            amount=None,
        )
        yuan_or_none(params.get("refund_fee"))  # still validate it
    except ValueError as exc:
        raise ParseError(f"malformed trade notify: {exc}") from exc
    return CallbackEvent(kind=CallbackKind.REFUND, event_id=event_id, payment=payment, refund=refund, raw=raw)


def _message_event(params: dict[str, str], event_id: str, raw: dict[str, Any]) -> CallbackEvent:
    state = ZFT_MESSAGES.get(params["msg_method"])
    if state is None:
        raise ParseError(f"unsupported message {params['msg_method']!r}")
    try:
        content = without_nul(json.loads(params.get("biz_content", "")))
    except ValueError as exc:
        raise ParseError("message biz_content is not JSON") from exc
    if not isinstance(content, dict) or not content.get("order_id"):
        raise ParseError("message biz_content lacks order_id")
    if state == OnboardingState.FINISHED and not content.get("smid"):
        # B.7: the passed message names the smid the merchant trades under; without it, it cannot activate anything.
        raise ParseError("zft.passed message biz_content lacks smid")
    reason = str(content.get("reason") or content.get("memo") or "")
    data = {
        "application_id": str(content["order_id"]), "state": state, "sub_mchid": str(content.get("smid") or ""),
        # external_id is our business_code (zft.create), the key that still finds the contract when the order_id
        # we hold is not this notice's (the create timed out, or a resubmission opened a new order).
        "external_id": str(content.get("external_id") or ""), "business_code": str(content.get("external_id") or ""),
        "message": reason,
        "rejections": [{"field": "", "reason": reason}] if state == OnboardingState.REJECTED and reason else [],
    }
    raw["biz_content"] = content
    return CallbackEvent(kind=CallbackKind.ONBOARDING, event_id=event_id, data=data, raw=raw)

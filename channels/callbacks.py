"""Channel callbacks: one URL per channel account — verify first, dispatch by table, answer in the channel's format.

Design §5 rule 4 and style.md §8. The adapter verifies (signature, timestamp) and decrypts; a handler per callback
kind cross-checks against our records and applies the change through a service. Every callback is stored raw
(``ChannelCallback``). A verification or cross-check failure is refused (4xx) and recorded as a security event;
a transient failure on our side answers 5xx so the channel retries; duplicates are acknowledged and change nothing.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable

from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from aggpay.audit import audit_log
from aggpay.errors import ApplicationError
from channels.adapters.base import CallbackAck, CallbackEvent
from channels.adapters.errors import ChannelError, ParseError, SignatureError
from channels.adapters.http import redact
from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback

logger = logging.getLogger(__name__)


class CallbackRejected(Exception):
    """A verified callback that does not match our records (wrong amount, sub-merchant…): refuse and record."""


class CallbackDuplicate(Exception):
    """Already applied: acknowledge, change nothing."""


# kind → "dotted.path" of ``handler(*, account, event) -> str`` (a short note of what happened). Kinds without a
# handler yet are acknowledged and stored as ignored, so the channel stops retrying.
HANDLERS: dict[str, str] = {
    "onboarding": "merchants.services.contracts.contract_apply_callback",
    "payment": "trades.services.callbacks.payment_callback",
    "refund": "trades.services.callbacks.refund_callback",
    "violation": "trades.services.callbacks.violation_callback",
}


# A channel's notice is a few KB (the largest, an Alipay payment notice with its fund bill list, stays under 10 KB).
# What is more is refused unread and kept only in part: a forged body of megabytes (the request limit is
# DATA_UPLOAD_MAX_MEMORY_SIZE, 8 MB, for document uploads) was stored whole, and risk's queue of refused
# callbacks decrypts and scans the bodies of a page of them (channels.refused).
MAX_CALLBACK_BYTES = 256 * 1024
OVERSIZED_KEPT_BYTES = 4096


def handler_for(kind: str) -> Callable | None:
    dotted = HANDLERS.get(kind)
    return import_string(dotted) if dotted else None


def _storable(text: str) -> str:
    """PostgreSQL's text and jsonb columns cannot hold NUL: a forged notice carrying one in a header or past the
    part ``redact`` inspects failed its own security record — a 500, the refused row and its audit row rolled
    back (design §5 rule 4: mismatches are recorded). The encrypted body keeps the bytes as they came."""
    return text.replace("\x00", "\ufffd")


def _store(*, account: ChannelAccount, request, received_at, outcome: str, message: str = "",
           event: CallbackEvent | None = None, body: bytes | None = None) -> ChannelCallback:
    headers = {_storable(k): ("***" if "signature" in k.lower() or k.lower() == "authorization" else _storable(v))
               for k, v in request.headers.items()}
    return ChannelCallback.objects.create(
        received_at=received_at,
        account=account, outcome=outcome, message=_storable(message[:2000]), headers=headers,
        body=(request.body if body is None else body).decode("utf-8", "replace"), kind=event.kind if event else "",
        decoded=json.dumps(event.raw, ensure_ascii=False, default=str) if event is not None and event.raw else "",
        event_id=event.event_id if event else "", remote_addr=request.META.get("REMOTE_ADDR") or None,
    )


def _respond(ack) -> HttpResponse:
    return HttpResponse(ack.body, status=ack.status, content_type=ack.content_type)


@csrf_exempt
def channel_callback(request, account_code: str):
    received_at = timezone.now()  # the notice's row is written after it is handled: keep when it came in
    account = get_object_or_404(ChannelAccount, code=account_code)
    store = functools.partial(_store, account=account, request=request, received_at=received_at)
    if request.method != "POST":
        return HttpResponse(status=405)
    try:
        adapter = account.adapter()
    except Exception as exc:  # noqa: BLE001 - whatever the stored config or the constructor raises: see below
        return _unbuildable(account, store, request, exc)
    if len(request.body) > MAX_CALLBACK_BYTES:
        return _refuse_unverified(
            adapter, account, store, request,
            f"a notice of {len(request.body)} bytes, over the {MAX_CALLBACK_BYTES} any channel sends: refused "
            f"unread, its first {OVERSIZED_KEPT_BYTES} bytes kept", body=request.body[:OVERSIZED_KEPT_BYTES])
    try:
        event = adapter.parse_callback(headers=request.headers, body=request.body, path=request.get_full_path())
    except (SignatureError, ParseError) as exc:
        return _refuse_unverified(adapter, account, store, request, exc.message)
    handler = handler_for(event.kind)
    if handler is None:
        store(outcome=CallbackOutcome.IGNORED, event=event, message=f"no handler for {event.kind} callbacks yet")
        return _respond(adapter.callback_ack(ok=True))
    try:
        note = handler(account=account, event=event)
    except CallbackDuplicate as exc:
        store(outcome=CallbackOutcome.DUPLICATE, event=event, message=str(exc))
        return _respond(adapter.callback_ack(ok=True))
    except CallbackRejected as exc:
        with transaction.atomic():
            record = store(outcome=CallbackOutcome.REJECTED, event=event, message=str(exc))
            audit_log(actor=f"channel:{account.code}", action="security.callback.mismatch", target=record,
                      data={"reason": str(exc), "event_id": event.event_id, "kind": event.kind})
        return _respond(adapter.callback_ack(ok=False, message="does not match our records"))
    except (ApplicationError, ChannelError) as exc:
        store(outcome=CallbackOutcome.ERROR, event=event, message=str(exc))
        logger.warning("callback %s/%s could not be applied now: %s", account.code, event.event_id, exc)
        return _respond(_transient_ack(adapter))
    store(outcome=CallbackOutcome.APPLIED, event=event, message=note or "")
    return _respond(adapter.callback_ack(ok=True))


def _refuse_unverified(adapter, account: ChannelAccount, store, request, reason: str, *,
                       body: bytes | None = None) -> HttpResponse:
    """Refuse a notice that failed verification (or was too large to try) and record it as a security event."""
    text = (request.body if body is None else body).decode("utf-8", "replace")
    with transaction.atomic():
        record = store(outcome=CallbackOutcome.REJECTED, message=reason, body=body)
        audit_log(actor=f"channel:{account.code}", action="security.callback.unverified", target=record,
                  data={"reason": _storable(reason), "body": _storable(redact(text, 500))})
    logger.warning("callback to %s refused: %s", account.code, reason)
    return _respond(adapter.callback_ack(ok=False, message="verification failed"))


def _unbuildable(account: ChannelAccount, store, request, exc: Exception) -> HttpResponse:
    """The account's adapter cannot be built (its stored config no longer loads, its adapter is missing…): the notice
    cannot be verified now, so it is kept as it came (an error row ops can see) and the channel is asked to retry —
    it sends the notice again once the account is fixed (style.md §8: 5xx only for transient failures)."""
    reason = f"adapter of {account.code} cannot be built: {type(exc).__name__}: {exc}"
    body = request.body
    if len(body) > MAX_CALLBACK_BYTES:
        body = body[:OVERSIZED_KEPT_BYTES]
        reason += f" (a notice of {len(request.body)} bytes: its first {OVERSIZED_KEPT_BYTES} bytes kept)"
    store(outcome=CallbackOutcome.ERROR, message=reason, body=body)
    logger.error("callback to %s not handled, the channel is asked to retry: %s", account.code, reason)
    try:
        ack = _transient_ack(_bare_adapter(account))
    except AttributeError:  # an adapter whose answer needs its config after all
        ack = _AnyChannelRetryAck().callback_ack(ok=False)
    return _respond(ack)


class _AnyChannelRetryAck:
    """Used when not even the adapter class loads: a 5xx that is no channel's success answer, which each retries on
    (channel-protocols.md A.4: 4xx/5xx; B.4: a body other than ``success``; bank.md §11.3: other than ``SUCCESS``)."""

    def callback_ack(self, *, ok: bool, message: str = "", transient: bool = False):
        return CallbackAck(status=503, body=b"FAIL", content_type="text/plain; charset=utf-8")


def _bare_adapter(account: ChannelAccount):
    """An adapter instance without config, good only for ``callback_ack``: every adapter builds its answer from
    its arguments alone (the channel's fixed success/failure format), never from the account's credentials."""
    try:
        cls = account.adapter_class
    except ApplicationError:
        return _AnyChannelRetryAck()
    return cls.__new__(cls)


def _transient_ack(adapter):
    try:
        return adapter.callback_ack(ok=False, message="try again", transient=True)
    except TypeError:
        return adapter.callback_ack(ok=False, message="try again")


def callback_url(account: ChannelAccount) -> str:
    """The notify URL we give the channel for this account (no query string: WeChat forbids one, A.7)."""
    from django.conf import settings
    from django.urls import get_script_prefix, get_urlconf

    return settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/") + _callback_path(account.code, get_script_prefix(),
                                                                        get_urlconf())


@functools.lru_cache(maxsize=4096)
def _callback_path(code: str, script_prefix: str, urlconf) -> str:
    # Every order asks for it; resolving the URL pattern each time cost more than the rest of building the request.
    from django.urls import reverse

    return reverse("channel-callback", args=[code], urlconf=urlconf)

"""Channel callbacks: one URL per channel account — verify first, dispatch by table, answer in the channel's format.

Design §5 rule 4 and style.md §8. The adapter verifies (signature, timestamp) and decrypts; a handler per callback
kind cross-checks against our records and applies the change through a service. Every callback is stored raw
(``ChannelCallback``). A verification or cross-check failure is refused (4xx) and recorded as a security event;
a transient failure on our side answers 5xx so the channel retries; duplicates are acknowledged and change nothing.
"""

from __future__ import annotations

import functools
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
from channels.adapters.base import CallbackEvent
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
}


def handler_for(kind: str) -> Callable | None:
    dotted = HANDLERS.get(kind)
    return import_string(dotted) if dotted else None


def _store(*, account: ChannelAccount, request, received_at, outcome: str, message: str = "",
           event: CallbackEvent | None = None) -> ChannelCallback:
    headers = {k: ("***" if "signature" in k.lower() or k.lower() == "authorization" else v)
               for k, v in request.headers.items()}
    return ChannelCallback.objects.create(
        received_at=received_at,
        account=account, outcome=outcome, message=message[:2000], headers=headers,
        body=request.body.decode("utf-8", "replace"), kind=event.kind if event else "",
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
    adapter = account.adapter()
    try:
        event = adapter.parse_callback(headers=request.headers, body=request.body, path=request.get_full_path())
    except (SignatureError, ParseError) as exc:
        with transaction.atomic():
            record = store(outcome=CallbackOutcome.REJECTED, message=exc.message)
            audit_log(actor=f"channel:{account.code}", action="security.callback.unverified", target=record,
                      data={"reason": exc.message, "body": redact(request.body.decode("utf-8", "replace"), 500)})
        logger.warning("callback to %s refused: %s", account.code, exc.message)
        return _respond(adapter.callback_ack(ok=False, message="verification failed"))
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

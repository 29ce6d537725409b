"""The trade timeline's channel part: the fields of one ``ChannelCall`` row for each adapter call, whichever service
made it (orders, refunds, late payments' refunds).

Issue 5 asks the timeline to show "each channel call with request and answer redacted": ``request`` is what we
sent (``METHOD path`` and body of each HTTP exchange the adapter made, collected by
``channels.adapters.http.recording_exchanges``), ``answer`` the channel's parsed answer when there is one, else
what came back on the wire — a refusal's error body, or "no answer" for a timeout — which the parsed answer of a
failed call does not hold. Both are redacted (design §5 rule 10: secrets and PII never reach a staff page).
"""

from __future__ import annotations

import json
import time

from channels.adapters.errors import ChannelError
from channels.adapters.http import Exchange, exchange_answer_text, exchange_request_text, redact

TEXT_LIMIT = 4000


def call_fields(*, verb: str, outcome: str, started: float, result=None, error: ChannelError | None = None,
                sent: list[Exchange] | None = None) -> dict:
    """A ChannelCall's fields (all but its order and refund). ``result``: the adapter's PaymentResult or
    RefundResult; ``error``: what it raised; ``sent``: the exchanges recorded around the call."""
    if result is not None and result.raw:
        answer = redact(json.dumps(result.raw, ensure_ascii=False, default=str), TEXT_LIMIT)
    elif sent:
        answer = exchange_answer_text(sent, TEXT_LIMIT)
    else:
        answer = ""
    return dict(
        verb=verb, outcome=outcome,
        channel_code=(error.channel_code or error.code) if error else ((result.failure_code or "") if result else ""),
        message=(error.message if error else ((result.failure_message or "") if result else ""))[:512],
        request=exchange_request_text(sent, TEXT_LIMIT) if sent else "",
        answer=answer,
        elapsed_ms=int((time.perf_counter() - started) * 1000),
    )

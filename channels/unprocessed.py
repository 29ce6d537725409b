"""Read side of operations' queue of channel callbacks we did not process (未处理的渠道回调): the notices an account
received and dropped, with their counts, filters and a masked excerpt of each (design §5 rule 10). Nothing here
writes: marking them handled is channels.services.callback_handling.

Which outcomes are "not processed" (channels.callbacks, where each is set):

- ``error`` — our side failed, the channel was answered "try again" (style.md §8): the account's adapter could not
  be built from its stored config (the notice was never verified, so it has no kind or event id), or a handler
  failed transiently (an ApplicationError or ChannelError while applying it).
- ``ignored`` — verified, but no handler exists for its kind (complaint, violation…): acknowledged, so the channel
  never sends it again and nothing of ours changed.

``applied`` and ``duplicate`` were processed; ``rejected`` is risk's queue of refused callbacks (channels.refused).
An ``error`` notice the channel sent again and we then applied (a later row of the same account and event id,
applied or duplicate) is shown as "applied on a retry": nothing was lost.

Each one is in one state (``STATES``); the queue opens on the open ones, and its counts and the operations home
tile count only those:

- open — nobody has marked it handled and no retry has applied it: someone should look;
- applied on a retry — it left the open list by itself, without a mark: the channel's retry did what the first
  notice could not, so there is nothing to do, and marking each by hand would be busywork that buries the rest.
  Nothing is written when the retry lands (the callback path does not know this queue; the later row is the
  evidence), so "handled by" stays a person's answer. An ``ignored`` notice is acknowledged and never retried, and
  an ``error`` without an event id (its account's adapter could not be built) cannot be matched to a retry: both
  stay open until someone marks them;
- handled — an operator marked it with a note (who, when and the note are kept on the row and in the audit log).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from aggpay.days import on_days
from aggpay.errors import ApplicationError
from channels.adapters.http import redact
from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback

OUTCOMES = (
    (CallbackOutcome.ERROR.value, "Error — our side failed, the channel was asked to retry"),
    (CallbackOutcome.IGNORED.value, "Ignored — no handler for its kind, acknowledged"),
)
OUTCOME_VALUES = tuple(value for value, _ in OUTCOMES)
OUTCOME_TONES = {CallbackOutcome.ERROR.value: "bad", CallbackOutcome.IGNORED.value: "warn"}
# What a later row of the same notice (account and event id) means it went through after all.
_SETTLED = (CallbackOutcome.APPLIED, CallbackOutcome.DUPLICATE)
STATES = (("open", "Open"), ("settled", "Applied on a retry"), ("handled", "Handled"), ("all", "All"))
DEFAULT_STATE = "open"

# A list shows the start of each stored notice; the whole one stays in the database (it may carry PII).
EXCERPT_CHARS = 240
_SECRET = "***"
_MIN_SECRET = 6  # shorter config values are not searched for: they would mask ordinary words


def _applied_later() -> Exists:
    """A later row of the same notice (account and event id) that was applied: the channel's retry went through."""
    return Exists(ChannelCallback.objects.filter(
        account_id=OuterRef("account_id"), event_id=OuterRef("event_id"), outcome__in=_SETTLED,
        received_at__gte=OuterRef("received_at")).exclude(event_id=""))


def unprocessed() -> QuerySet[ChannelCallback]:
    return (ChannelCallback.objects.filter(outcome__in=OUTCOME_VALUES).select_related("account", "handled_by")
            .annotate(settled=_applied_later()))


def _unhandled() -> QuerySet[ChannelCallback]:
    # Spelled as the condition of the partial index channel_callback_open (ChannelCallback.Meta), so it is used.
    return ChannelCallback.objects.filter(outcome__in=OUTCOME_VALUES, handled_at__isnull=True)


def _open() -> QuerySet[ChannelCallback]:
    return _unhandled().filter(~_applied_later())



def _narrow(callbacks: QuerySet[ChannelCallback], *, account: str = "", outcome: str = "",
            date_from: dt.date | None = None, date_to: dt.date | None = None) -> QuerySet[ChannelCallback]:
    """The queue's filters but its state (the tabs choose that)."""
    if account:
        callbacks = callbacks.filter(account__code=account)
    if outcome:
        callbacks = callbacks.filter(outcome=outcome)
    callbacks = on_days(callbacks, "received_at", date_from=date_from, date_to=date_to)
    return callbacks


def filter_unprocessed(callbacks: QuerySet[ChannelCallback], *, state: str = "",
                       **filters) -> QuerySet[ChannelCallback]:
    if state == "open":
        callbacks = callbacks.filter(handled_at__isnull=True, settled=False)
    elif state == "settled":
        callbacks = callbacks.filter(handled_at__isnull=True, settled=True)
    elif state == "handled":
        callbacks = callbacks.filter(handled_at__isnull=False)
    return _narrow(callbacks, **filters).order_by("-received_at", "-id")


@dataclass(frozen=True)
class AccountTally:
    code: str
    name: str
    error: int
    ignored: int

    @property
    def total(self) -> int:
        return self.error + self.ignored


def counts() -> dict:
    """The open ones: all, the last 24 h, per outcome, and per channel account and outcome (two queries, on the
    open ones' index). The whole queue's, whatever the page's filters: the tabs' numbers are ``state_counts``."""
    open_ = Q(~_applied_later())
    totals = _unhandled().aggregate(
        open=Count("pk", filter=open_),
        last_day=Count("pk", filter=open_ & Q(received_at__gte=timezone.now() - dt.timedelta(hours=24))),
        **{value: Count("pk", filter=open_ & Q(outcome=value)) for value in OUTCOME_VALUES})
    per_outcome = {value: Count("pk", filter=Q(outcome=value)) for value in OUTCOME_VALUES}
    accounts = [AccountTally(row["account__code"], row["account__name"], row["error"], row["ignored"])
                for row in _open().values("account__code", "account__name").annotate(**per_outcome)
                .order_by("account__code")]
    return {
        "all": totals["open"], "last_day": totals["last_day"],
        "outcomes": [{"key": value, "label": label, "n": totals[value]} for value, label in OUTCOMES],
        "accounts": accounts,
    }


def state_counts(*, state: str = "", **filters) -> dict[str, int]:
    """How many each state tab lists with the page's other filters as they are (``state`` is the tab: it plays no
    part), so the number on a tab is what clicking it shows: one query. Its rows are asked for as the two partial
    indexes' slivers (ChannelCallback.Meta: channel_callback_open, channel_callback_handled), so the planner may
    read those rather than the whole table of callbacks ever received."""
    slivers = ChannelCallback.objects.filter(Q(outcome__in=OUTCOME_VALUES, handled_at__isnull=True)
                                             | Q(outcome__in=OUTCOME_VALUES, handled_at__isnull=False))
    applied, unhandled = _applied_later(), Q(handled_at__isnull=True)
    totals = _narrow(slivers, **filters).aggregate(
        open=Count("pk", filter=unhandled & Q(~applied)), settled=Count("pk", filter=unhandled & Q(applied)),
        handled=Count("pk", filter=~unhandled), all=Count("pk"))
    return {key: totals[key] for key, _label in STATES}


def account_count(account: ChannelAccount) -> int:
    """What the channel account's page shows beside its link to the queue: every one it received, handled or not
    (that page says "error or ignored", not "open")."""
    return ChannelCallback.objects.filter(account=account, outcome__in=OUTCOME_VALUES).count()


def queue_url(**params) -> str:
    url = reverse("channels:unprocessed_callbacks")
    return f"{url}?{urlencode(params)}" if params else url


def open_count() -> int:
    """For the operations home tile: the open ones, what the queue opens on. Not only today's: one left open since
    yesterday is still to look at, and marking them handled is what brings the count down."""
    return _open().count()


# --- what a row shows (design §5 rule 10: secrets and PII masked) -------------------------------------------------
def _account_secrets(account: ChannelAccount) -> list[str]:
    """The account's stored secrets, to be masked wherever a message or notice repeats one (an exception raised
    while building a broken account's adapter is stored in the message, and may quote the value it refused). When
    not even the adapter class loads, every stored text value counts as a secret."""
    config = account.config if isinstance(account.config, dict) else {}
    try:
        names = account.adapter_class.CONFIG_SECRET_FIELDS
    except (ApplicationError, AttributeError):
        names = tuple(config)
    values = []
    for name in names:
        value = config.get(name)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                # A PEM block's body lines, each of which is as secret as the whole.
                values += [line.strip() for line in text.splitlines() if len(line.strip()) >= _MIN_SECRET]
    return sorted(set(values), key=len, reverse=True)


def _masked(text: str, secrets: list[str], limit: int) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _SECRET)
    return redact(text, limit)


@dataclass(frozen=True)
class Row:
    callback: ChannelCallback
    outcome_label: str
    tone: str
    cause: str  # why, in a few words
    message: str  # masked
    excerpt: str  # the notice's start, masked
    body_chars: int


def rows(callbacks) -> list[Row]:
    """The page's rows, masked; no query beyond the page's own (the account comes with each callback)."""
    secrets: dict[int, list[str]] = {}
    labels = dict(OUTCOMES)
    result = []
    for callback in callbacks:
        if callback.account_id not in secrets:
            secrets[callback.account_id] = _account_secrets(callback.account)
        hidden = secrets[callback.account_id]
        body = callback.body or ""
        if callback.outcome == CallbackOutcome.IGNORED:
            cause = f"no handler for {callback.kind or 'its'} notices"
        elif not callback.kind:
            cause = "adapter could not be built: not verified"
        else:
            cause = f"{callback.kind} handler failed"
        result.append(Row(
            callback=callback, outcome_label=labels[callback.outcome].split(" — ")[0],
            tone=OUTCOME_TONES[callback.outcome], cause=cause, message=_masked(callback.message or "", hidden, 500),
            excerpt=_masked(body, hidden, EXCERPT_CHARS), body_chars=len(body)))
    return result

"""Read side of risk's queue of channel risk notices (渠道风险通知): the new ones first, their counts by kind and by
channel account, the filters, and what a notice shows (design §5 rule 10: personal data masked). Nothing here
writes; handling is risk.services.channel_notices.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse

from aggpay import masking
from aggpay.days import on_days
from merchants.models import ContractEvent, ContractState, MerchantState
from merchants.services.contract_risk import LIMIT_PERM, limit_event, limited_for, resumes_limited
from merchants.services.merchants import FREEZE_PERM
from merchants.services.settlement import RISK_LIMIT_KEY, RISK_LIMIT_LIFTED
from risk.models import ChannelRiskAction, ChannelRiskNotice, ChannelRiskNoticeKind, ChannelRiskNoticeState
from risk.traffic_preview import TrafficPreview, traffic_preview

STATES = (("new", "New"), ("handled", "Handled"), ("all", "All"))
MATCHES = (("matched", "Matched to a contract"), ("unmatched", "No contract of ours"))


def notices() -> QuerySet[ChannelRiskNotice]:
    return ChannelRiskNotice.objects.select_related("channel_account", "contract", "merchant", "handled_by")



def _narrow(queryset: QuerySet[ChannelRiskNotice], *, kind: str = "", account: str = "", match: str = "",
            q: str = "", date_from: dt.date | None = None,
            date_to: dt.date | None = None) -> QuerySet[ChannelRiskNotice]:
    """The queue's filters but its state (the tabs choose that)."""
    if kind:
        queryset = queryset.filter(kind=kind)
    if account:
        queryset = queryset.filter(channel_account__code=account)
    if match == "matched":
        queryset = queryset.filter(contract__isnull=False)
    elif match == "unmatched":
        queryset = queryset.filter(contract__isnull=True)
    if q:
        queryset = queryset.filter(Q(record_id__iexact=q) | Q(sub_mchid=q) | Q(merchant__merchant_no__iexact=q)
                                   | Q(company_name__icontains=q) | Q(merchant__short_name__icontains=q))
    queryset = on_days(queryset, "received_at", date_from=date_from, date_to=date_to)
    return queryset


def filter_notices(queryset: QuerySet[ChannelRiskNotice], *, state: str = "new",
                   **filters) -> QuerySet[ChannelRiskNotice]:
    """The queue opens on the new notices, newest first; "all" still puts the new ones before the handled."""
    if state in (ChannelRiskNoticeState.NEW, ChannelRiskNoticeState.HANDLED):
        queryset = queryset.filter(state=state)
    new_first = Case(When(state=ChannelRiskNoticeState.NEW, then=Value(0)), default=Value(1),
                     output_field=IntegerField())
    return _narrow(queryset, **filters).order_by(new_first, "-received_at", "-id")


def tab_counts(*, state: str = "", **filters) -> dict[str, int]:
    """How many notices each state tab lists with the page's other filters as they are (``state`` is the tab: it
    plays no part), so the number on a tab is what clicking it shows: one query. The panels above (``counts``)
    stay the whole queue's."""
    return _narrow(ChannelRiskNotice.objects.all(), **filters).aggregate(
        new=Count("pk", filter=Q(state=ChannelRiskNoticeState.NEW)),
        handled=Count("pk", filter=Q(state=ChannelRiskNoticeState.HANDLED)))


@dataclass(frozen=True)
class AccountTally:
    code: str
    name: str
    new: int
    total: int


def counts() -> dict:
    """New notices in all, by kind and by channel account (with each account's total), and the handled ones: two
    queries."""
    base = ChannelRiskNotice.objects.all()
    new = Q(state=ChannelRiskNoticeState.NEW)
    per_kind = {value: Count("pk", filter=new & Q(kind=value)) for value in ChannelRiskNoticeKind.values}
    totals = base.aggregate(new=Count("pk", filter=new), handled=Count("pk", filter=~new),
                            unmatched=Count("pk", filter=new & Q(contract__isnull=True)), **per_kind)
    accounts = [AccountTally(row["channel_account__code"], row["channel_account__name"], row["new"], row["total"])
                for row in base.values("channel_account__code", "channel_account__name")
                .annotate(new=Count("pk", filter=new), total=Count("pk")).order_by("-new", "channel_account__code")]
    return {
        "new": totals["new"], "handled": totals["handled"], "unmatched": totals["unmatched"],
        "kinds": [{"key": value, "label": label, "n": totals[value]} for value, label in ChannelRiskNoticeKind.choices],
        "accounts": accounts,
    }


def new_count() -> int:
    """For the risk officer's home tile: the notices no one has handled yet (what the queue opens on)."""
    return ChannelRiskNotice.objects.filter(state=ChannelRiskNoticeState.NEW).count()


def queue_url(**params) -> str:
    url = reverse("risk:notices")
    return f"{url}?{urlencode(params)}" if params else url


# --- what a notice shows (design §5 rule 10) ----------------------------------------------------------------------
# The channel's descriptions are free text: should one quote a person's ID number, a bank card or a mobile number,
# the page shows it masked as the record pages do (aggpay.masking). Digits not standing alone (a longer number, an
# id inside a word) are left as they are. People write card numbers in groups of four and mobiles as 138-1234-5678,
# 138 1234 5678 or with the country code (+86 / 86): those are found too.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_CARD_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\d{15,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,4})?)(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(?P<cc>\+?86[ -]?)?(?P<number>1[3-9]\d(?:[ -]?\d{4}){2})(?![0-9A-Za-z])")
_NOT_DIGIT = re.compile(r"\D")


def _card(match: re.Match) -> str:
    digits = _NOT_DIGIT.sub("", match.group())
    return masking.mask_bank_account(digits) if 15 <= len(digits) <= 19 else match.group()


def mask_text(text: str) -> str:
    if not text:
        return ""
    text = _ID_NUMBER.sub(lambda m: masking.mask_id_number(m.group()), text)
    text = _CARD_NUMBER.sub(_card, text)
    return _MOBILE.sub(lambda m: (m.group("cc") or "") + masking.mask_phone(_NOT_DIGIT.sub("", m.group("number"))),
                       text)


@dataclass(frozen=True)
class NoticeView:
    notice: ChannelRiskNotice
    punish_plan: str
    punish_description: str
    risk_description: str
    tone: str  # the kind's badge colour


KIND_TONES = {ChannelRiskNoticeKind.PUNISH: "bad", ChannelRiskNoticeKind.INTERCEPT: "warn",
              ChannelRiskNoticeKind.APPEAL: ""}


def view(notice: ChannelRiskNotice) -> NoticeView:
    return NoticeView(notice=notice, punish_plan=mask_text(notice.punish_plan),
                      punish_description=mask_text(notice.punish_description),
                      risk_description=mask_text(notice.risk_description), tone=KIND_TONES.get(notice.kind, ""))


def rows(page) -> list[NoticeView]:
    return [view(notice) for notice in page]


def current_limit(notice: ChannelRiskNotice):
    """The timeline entry that limited the notice's contract, while it is limited or suspended with a limit its
    resume brings back (else None): the page says whose limit it is and for which record."""
    contract = notice.contract
    if contract is None or not (contract.state == ContractState.LIMITED or resumes_limited(contract)):
        return None
    return limit_event(contract)


@dataclass(frozen=True)
class LiftedLimit:
    """A limit of the notice's contract that risk has lifted since, with nothing limiting it now: the entry that set
    it (None if the timeline has none before the lift) and the one that lifted it."""

    limit: ContractEvent | None
    lift: ContractEvent

    @property
    def limited_for(self) -> str:
        return limited_for(self.limit)


def lifted_limit(notice: ChannelRiskNotice, *, limit=None) -> LiftedLimit | None:
    """When the notice's contract was limited and risk's latest decision on it was to lift that limit (``limited →
    active``, or lifted while suspended: settlement ``RISK_LIMIT_KEY``), the two entries; else None — never limited,
    or limited now (``limit``: ``current_limit``, read here when not given). The page says so, and the handle form
    offers to limit it *again* (a limit the officer may not know was there and was lifted, by whom and why). Two
    queries at most, only for a contract not limited now."""
    contract = notice.contract
    if contract is None or contract.state not in (ContractState.ACTIVE, ContractState.SUSPENDED):
        return None
    if (limit if limit is not None else current_limit(notice)) is not None:
        return None
    lift = (contract.events.filter(Q(from_state=ContractState.LIMITED, to_state=ContractState.ACTIVE)
                                   | Q(from_state=ContractState.SUSPENDED, to_state=ContractState.SUSPENDED,
                                       **{f"data__{RISK_LIMIT_KEY}": RISK_LIMIT_LIFTED}))
            .order_by("-created_at", "-id").first())
    if lift is None:
        return None
    limit = limit_event(contract)
    if limit is not None and (limit.created_at, limit.pk) > (lift.created_at, lift.pk):
        return None  # limited again after that lift (a limit since ended otherwise is not risk's to describe)
    return LiftedLimit(limit=limit, lift=lift)


# On a suspended contract the actions say what becomes of the clerk's suspension (contract_risk: it goes on, and the
# resume brings back what risk decided).
LIMIT_SUSPENDED_LABEL = "Limit the contract — it stays suspended; resumed, it comes back limited (no new orders)"
LIFT_SUSPENDED_LABEL = "Lift the contract's limit — it stays suspended; resumed, it comes back active"
# A contract whose limit risk lifted: limiting it is a new decision, and the form says so (the page shows the lift).
LIMIT_AGAIN_LABEL = "Limit the contract again (route its traffic away) — its last limit was lifted"
LIMIT_AGAIN_SUSPENDED_LABEL = ("Limit the contract again — its last limit was lifted; it stays suspended, and resumed "
                               "comes back limited (no new orders)")


def available_actions(notice: ChannelRiskNotice, user, *, limit=None,
                      lifted: LiftedLimit | None | bool = False) -> list[tuple[str, str]]:
    """The actions the handle form offers for ``notice``: those its contract's or merchant's state allows and the
    user may take (the service checks both again under its locks). Lifting only a limit set for this notice's record
    (``limit``: ``current_limit``, read here when not given). A suspended contract may be limited, or its limit
    lifted, as an active or limited one is: it stays suspended (merchants.services.contract_risk). Limiting a
    contract whose limit was lifted reads "again" (``lifted``: ``lifted_limit``, read here when not given)."""
    actions = [(ChannelRiskAction.NONE.value, ChannelRiskAction.NONE.label)]
    contract, merchant = notice.contract, notice.merchant
    may_limit = user.has_perm(LIMIT_PERM)
    if contract is not None and may_limit:
        suspended = contract.state == ContractState.SUSPENDED
        held = suspended and resumes_limited(contract)
        if contract.state == ContractState.ACTIVE or (suspended and not held):
            if lifted is False:
                lifted = lifted_limit(notice)
            labels = ((LIMIT_AGAIN_SUSPENDED_LABEL, LIMIT_AGAIN_LABEL) if lifted
                      else (LIMIT_SUSPENDED_LABEL, ChannelRiskAction.LIMIT.label))
            actions.append((ChannelRiskAction.LIMIT.value, labels[0] if suspended else labels[1]))
        if contract.state == ContractState.LIMITED or held:
            limit = limit if limit is not None else current_limit(notice)
            if limited_for(limit) == notice.record_id:
                actions.append((ChannelRiskAction.LIFT.value,
                                LIFT_SUSPENDED_LABEL if suspended else ChannelRiskAction.LIFT.label))
    if merchant is not None and user.has_perm(FREEZE_PERM) and merchant.state == MerchantState.ACTIVE:
        actions.append((ChannelRiskAction.FREEZE.value, ChannelRiskAction.FREEZE.label))
    return actions


def traffic(notice: ChannelRiskNotice, *, actions: list[tuple[str, str]]) -> TrafficPreview | None:
    """What the "Ours" panel says of the contract's orders (design §7: a preview of what moves): for an active
    contract the handle form offers to limit (``actions``: its choices), what limiting it moves; for a limited one,
    where its orders go now (risk.traffic_preview). None otherwise: nothing to decide on, or nothing routed."""
    contract = notice.contract
    if contract is None:
        return None
    offers_limit = any(value == ChannelRiskAction.LIMIT.value for value, _label in actions)
    if contract.state == ContractState.LIMITED or (contract.state == ContractState.ACTIVE and offers_limit):
        return traffic_preview(contract)
    return None

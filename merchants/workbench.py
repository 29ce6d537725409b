"""Read-side helpers of the onboarding workbenches (issue 4 "Clerk workbench"): queue filters and counts, ages and
SLA badges, and the timelines shown on the merchant page. Nothing here writes; every change goes through services.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from channels.refused import answers_unreviewed_count, unreviewed_count
from merchants.models import (
    ApplicationState,
    Contract,
    ContractState,
    Document,
    DocumentType,
    Merchant,
    MerchantState,
    OnboardingApplication,
    SettlementChange,
    SettlementChangeState,
)
from merchants.services.record import required_documents

# Age buckets of the clerk queue, on the time an application has been in its current state (every transition saves
# the row, so ``updated_at`` is when it last moved or was edited).
AGE_BUCKETS = {
    "lt1d": ("under 1 day", dt.timedelta(0), dt.timedelta(days=1)),
    "1to3d": ("1–3 days", dt.timedelta(days=1), dt.timedelta(days=3)),
    "3to7d": ("3–7 days", dt.timedelta(days=3), dt.timedelta(days=7)),
    "gt7d": ("over 7 days", dt.timedelta(days=7), None),
}

# Risk review service level: a submitted application is decided within one working day. The badge turns amber at
# three quarters of it and red once it is overdue.
REVIEW_SLA = dt.timedelta(hours=24)
REVIEW_SLA_WARN = REVIEW_SLA * 3 / 4

# Contracts a clerk has to act on: the channel refused one (correct and resubmit), or the merchant must verify its
# account or sign (send the sign URL/QR) — issue 4 "Flow".
CONTRACT_ACTION_STATES = (ContractState.REJECTED, ContractState.TO_BE_CONFIRMED, ContractState.TO_BE_SIGNED)
# Contract states the channel is still deciding: "refresh from channel" (contract_poll) makes sense for these.
CONTRACT_FOLLOWED_STATES = (ContractState.SUBMITTED, ContractState.AUDITING, ContractState.TO_BE_CONFIRMED,
                            ContractState.TO_BE_SIGNED)
OPEN_REVIEW_STATES = (ApplicationState.SUBMITTED, ApplicationState.RISK_REVIEW)
# Contracts still on their way to the channel or at it: created and not yet sent, sent, under the channel's review, or
# waiting for the merchant to verify its account or sign. The application completes with its first active contract
# (design §4), but a merchant is still contracting until none of its contracts is here — each of the others active
# or refused. The stage counts (the clerk's home tiles, the batch page) say so.
CONTRACT_IN_FLIGHT_STATES = (ContractState.PENDING, *CONTRACT_FOLLOWED_STATES)


def age_label(delta: dt.timedelta) -> str:
    """A short age a clerk reads at a glance: 45 min, 30 h, 3 d (hours up to two days, where a one-day SLA bites)."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def age_tone(delta: dt.timedelta) -> str:
    if delta >= dt.timedelta(days=7):
        return "bad"
    if delta >= dt.timedelta(days=3):
        return "warn"
    return ""


def sla_tone(delta: dt.timedelta) -> str:
    if delta >= REVIEW_SLA:
        return "bad"
    if delta >= REVIEW_SLA_WARN:
        return "warn"
    return "ok"


def applications_base() -> QuerySet[OnboardingApplication]:
    return OnboardingApplication.objects.select_related("merchant", "reviewer")


def search(queryset: QuerySet, q: str, *, prefix: str = "merchant__") -> QuerySet:
    """Merchant no., legal or short name, licence number (issue 4 "search by merchant no, name, licence number")."""
    q = q.strip()
    if not q:
        return queryset
    return queryset.filter(
        Q(**{f"{prefix}merchant_no__icontains": q}) | Q(**{f"{prefix}legal_name__icontains": q})
        | Q(**{f"{prefix}short_name__icontains": q}) | Q(**{f"{prefix}licence_no__iexact": q.upper()})
    )


# Merchants offered beside the applications when the clerk searches: one without an application (a demo or migrated
# merchant, one created through the partner API before its record) is reached from here too.
MERCHANT_MATCHES = 10


def merchant_matches(q: str) -> list[Merchant]:
    """Merchants matching the queue's search (the same fields), at most MERCHANT_MATCHES, by merchant no."""
    if not (q or "").strip():
        return []
    return list(search(Merchant.objects.order_by("merchant_no"), q, prefix="")[:MERCHANT_MATCHES])


def filter_applications(queryset: QuerySet[OnboardingApplication], *, subject_type: str = "", product: str = "",
                        channel_account: str = "", contract_state: str = "", age: str = "", q: str = "",
                        now: dt.datetime | None = None) -> QuerySet[OnboardingApplication]:
    """Every filter of the clerk queue except the state tab (the tabs' counts are taken after this)."""
    if subject_type:
        queryset = queryset.filter(merchant__subject_type=subject_type)
    if product:
        # The list is stored as JSON text; matching the quoted code matches one whole element, and works on both
        # PostgreSQL and the demo's SQLite (JSON containment is PostgreSQL-only).
        queryset = queryset.filter(merchant__requested_products__icontains=f'"{product}"')
    if channel_account or contract_state:
        # One contract must satisfy both conditions (account and state), hence a single EXISTS.
        contracts = Contract.objects.filter(merchant=OuterRef("merchant"))
        if channel_account:
            contracts = contracts.filter(channel_account__code=channel_account)
        if contract_state:
            contracts = contracts.filter(state=contract_state)
        queryset = queryset.filter(Exists(contracts))
    if age in AGE_BUCKETS:
        now = now or timezone.now()
        _, low, high = AGE_BUCKETS[age]
        queryset = queryset.filter(updated_at__lte=now - low)
        if high is not None:
            queryset = queryset.filter(updated_at__gt=now - high)
    return search(queryset, q)


def counts_by_state(queryset: QuerySet[OnboardingApplication]) -> dict[str, int]:
    rows = queryset.order_by().values("state").annotate(n=Count("id"))
    return {row["state"]: row["n"] for row in rows}


def contracts_in_flight():
    """A subquery: the contracts of the outer row's merchant still in flight (CONTRACT_IN_FLIGHT_STATES)."""
    return Contract.objects.filter(merchant=OuterRef("merchant"), state__in=CONTRACT_IN_FLIGHT_STATES)


def application_stage(state: str, *, contracts_in_flight: bool) -> str:
    """The stage an application is at, as the stage counts say it: a completed application whose merchant still
    has a contract in flight (WeChat waiting for the merchant's signature, say) is still contracting."""
    if state == ApplicationState.COMPLETED and contracts_in_flight:
        return ApplicationState.CONTRACTING
    return state


def counts_by_stage(queryset: QuerySet[OnboardingApplication]) -> dict[str, int]:
    """``counts_by_state`` with ``application_stage``'s reading of contracting and completed, in one query
    whatever the number of applications or contracts."""
    rows = (queryset.order_by().annotate(in_flight=Exists(contracts_in_flight()))
            .values("state", "in_flight").annotate(n=Count("id")))
    counts: dict[str, int] = {}
    for row in rows:
        stage = application_stage(row["state"], contracts_in_flight=row["in_flight"])
        counts[stage] = counts.get(stage, 0) + row["n"]
    return counts


def in_stage(queryset: QuerySet[OnboardingApplication], stage: str) -> QuerySet[OnboardingApplication]:
    """The applications at ``stage`` as ``counts_by_stage`` counts them, so a tile's count is the rows its link
    opens: contracting takes the completed ones whose merchant still has a contract in flight, completed leaves
    them out."""
    if stage not in (ApplicationState.CONTRACTING, ApplicationState.COMPLETED):
        return queryset.filter(state=stage)
    queryset = queryset.annotate(in_flight=Exists(contracts_in_flight()))
    if stage == ApplicationState.COMPLETED:
        return queryset.filter(state=ApplicationState.COMPLETED, in_flight=False)
    return queryset.filter(Q(state=ApplicationState.CONTRACTING) | Q(state=ApplicationState.COMPLETED, in_flight=True))


def needs_action_contracts(*, q: str = "", channel_account: str = "") -> QuerySet[Contract]:
    contracts = (Contract.objects.filter(state__in=CONTRACT_ACTION_STATES)
                 .select_related("merchant", "channel_account").order_by("updated_at", "id"))
    if channel_account:
        contracts = contracts.filter(channel_account__code=channel_account)
    return search(contracts, q)


def returned_applications(*, q: str = "") -> QuerySet[OnboardingApplication]:
    return search(applications_base().filter(state=ApplicationState.RETURNED).order_by("decided_at", "id"), q)


def refused_settlement_changes(*, q: str = "", channel_account: str = "") -> QuerySet[SettlementChange]:
    """Settlement account changes a channel refused that are still its latest: that channel pays to another account
    than the ones that accepted (or than the merchant asked for) until a change is asked of it again and accepted —
    the refusals the merchant page flags (``settlement_by_channel``'s ``refused``). Oldest refusal first."""
    newer = SettlementChange.objects.filter(contract=OuterRef("contract")).filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk")))
    changes = (SettlementChange.objects.filter(state=SettlementChangeState.FAILED).exclude(Exists(newer))
               .select_related("merchant", "contract__channel_account", "new_account").order_by("updated_at", "id"))
    if channel_account:
        changes = changes.filter(contract__channel_account__code=channel_account)
    return search(changes, q)


def needs_action_count(*, q: str = "", channel_account: str = "") -> int:
    """The "Needs action" view's rows: returned applications, contracts waiting on someone, refused settlement
    changes — the one count of the queue's tab and the home page's tile."""
    return (returned_applications(q=q).count()
            + needs_action_contracts(q=q, channel_account=channel_account).count()
            + refused_settlement_changes(q=q, channel_account=channel_account).count())


# --- rows shown in the queues ---------------------------------------------------------------------------------
@dataclass
class QueueRow:
    application: OnboardingApplication
    merchant: Merchant
    contracts: list[Contract]
    age: str
    tone: str
    missing: list[str] = field(default_factory=list)


def queue_rows(applications, *, now: dt.datetime | None = None) -> list[QueueRow]:
    """Rows for one page of the clerk queue, with each merchant's contracts and (for editable ones) missing
    documents computed from one prefetch instead of a query per row."""
    now = now or timezone.now()
    applications = list(applications)
    merchant_ids = [a.merchant_id for a in applications]
    contracts: dict[int, list[Contract]] = {}
    for contract in (Contract.objects.filter(merchant_id__in=merchant_ids).select_related("channel_account")
                     .order_by("channel_account__code")):
        contracts.setdefault(contract.merchant_id, []).append(contract)
    doc_types: dict[int, set[str]] = {}
    for merchant_id, doc_type in Document.objects.filter(merchant_id__in=merchant_ids).values_list(
            "merchant_id", "doc_type"):
        doc_types.setdefault(merchant_id, set()).add(doc_type)
    rows = []
    for application in applications:
        merchant = application.merchant
        missing = []
        if application.state in (ApplicationState.DRAFT, ApplicationState.RETURNED):
            needed = required_documents(subject_type=merchant.subject_type, scenarios=merchant.scenarios or [])
            labels = dict(DocumentType.choices)
            missing = [labels.get(d, d) for d in sorted(needed - doc_types.get(merchant.pk, set()))]
        delta = now - application.updated_at
        rows.append(QueueRow(application=application, merchant=merchant, contracts=contracts.get(merchant.pk, []),
                             age=age_label(delta), tone=age_tone(delta), missing=missing))
    return rows


@dataclass
class ReviewRow:
    application: OnboardingApplication
    merchant: Merchant
    waiting: str
    tone: str
    overdue: bool


def review_rows(applications, *, now: dt.datetime | None = None) -> list[ReviewRow]:
    now = now or timezone.now()
    rows = []
    for application in applications:
        start = application.submitted_at or application.updated_at
        if application.state in OPEN_REVIEW_STATES:
            delta = now - start
            rows.append(ReviewRow(application=application, merchant=application.merchant, waiting=age_label(delta),
                                  tone=sla_tone(delta), overdue=delta >= REVIEW_SLA))
        else:  # decided: how long the decision took
            delta = (application.decided_at or application.updated_at) - start
            rows.append(ReviewRow(application=application, merchant=application.merchant,
                                  waiting="took " + age_label(delta), tone="", overdue=False))
    return rows


# --- timelines ------------------------------------------------------------------------------------------------
APPLICATION_ACTIONS = {
    "merchants.application.drafted": "Drafted",
    "merchants.application.edited": "Record edited",
    "merchants.application.submitted": "Submitted for risk review",
    "merchants.application.review_started": "Taken for review",
    "merchants.application.approved": "Approved",
    "merchants.application.returned": "Returned for correction",
    "merchants.application.rejected": "Rejected",
    "merchants.contracts.created": "Contracts created",
    "merchants.application.completed": "Completed (first contract active)",
    "merchants.document.added": "Document added",
    "merchants.merchant.activate": "Merchant activated",
    "merchants.app.created": "API app issued",
    "merchants.app.secret_revealed": "API secret shown",
    "merchants.settlement.account_switched": "Settlement account on record switched: every channel accepted it",
}

# A settlement account change's steps, per channel (merchants.services.settlement): the audit row names the contract
# (``contract``; ``contracts`` for the request) and, once the channel answered, its ``message`` — the reason of a
# refusal.
SETTLEMENT_STEPS = {
    "merchants.settlement.auditing": ("{channel} is checking the new settlement account", ""),
    "merchants.settlement.succeeded": ("{channel} accepted the new settlement account", "ok"),
    "merchants.settlement.failed": ("{channel} refused the new settlement account: {reason}", "bad"),
}


def _settlement_title(action: str, data: dict, channels: dict[int, str]) -> tuple[str, str] | None:
    """The words and tone of a settlement change's audit row, with its channel(s) and reason; None if not one."""
    def channel(pk) -> str:
        return channels.get(pk, f"contract #{pk}")

    if action == "merchants.settlement.change_requested":
        names = ", ".join(sorted(channel(pk) for pk in data.get("contracts") or []))
        to = f" to {data['bank_name']}" if data.get("bank_name") else ""
        return f"Settlement account change{to} asked of {names or 'the channels'}", ""
    if action in SETTLEMENT_STEPS:
        title, tone = SETTLEMENT_STEPS[action]
        return title.format(channel=channel(data.get("contract")),
                            reason=data.get("message") or "the channel gave no reason"), tone
    return None


@dataclass
class TimelineEntry:
    at: dt.datetime
    actor: str
    title: str
    reason: str = ""
    details: dict = field(default_factory=dict)
    tone: str = ""


def application_timeline(application: OnboardingApplication) -> list[TimelineEntry]:
    """Audit rows of the application and of its merchant (documents, activation), oldest first.

    Audit data never holds PII (the services log merchant numbers, states, document hashes), so it is shown as is.
    """
    merchant = application.merchant
    app_ids = list(merchant.apps.values_list("pk", flat=True))
    rows = AuditLog.objects.filter(
        Q(target_type="merchants.onboardingapplication", target_id=str(application.pk))
        | Q(target_type="merchants.merchant", target_id=str(merchant.pk))
        | Q(target_type="merchants.merchantapp", target_id__in=[str(pk) for pk in app_ids])
    ).order_by("created_at", "id")
    tones = {"merchants.application.approved": "ok", "merchants.application.completed": "ok",
             "merchants.application.returned": "warn", "merchants.application.rejected": "bad",
             "merchants.settlement.account_switched": "ok"}
    labels = dict(DocumentType.choices)
    channels = dict(merchant.contracts.values_list("pk", "channel_account__name"))
    entries: list[TimelineEntry] = []
    for row in rows:
        details = {k: v for k, v in (row.data or {}).items() if k not in ("merchant_no", "sha256")}
        settlement = _settlement_title(row.action, details, channels)
        if settlement is not None:
            entries.append(TimelineEntry(at=row.created_at, actor=row.actor_label, title=settlement[0],
                                         reason=row.reason, details=details, tone=settlement[1]))
            continue
        if row.action == "merchants.document.added":
            label = labels.get(details.get("doc_type", ""), details.get("doc_type", ""))
            last = entries[-1] if entries else None
            # A form saves several documents at once: one line for the batch reads better than six.
            if last is not None and last.details.get("documents") is not None and last.actor == row.actor_label \
                    and row.created_at - last.at < dt.timedelta(minutes=10):
                last.details["documents"].append(label)
                last.title = f"{len(last.details['documents'])} documents added"
                continue
            entries.append(TimelineEntry(at=row.created_at, actor=row.actor_label, title="Document added",
                                         details={"documents": [label]}))
            continue
        title = APPLICATION_ACTIONS.get(row.action, row.action)
        if row.action == "merchants.application.edited" and isinstance(details.get("changes"), dict):
            title, details["changed"] = _edit_title(details["changes"])
        entries.append(TimelineEntry(at=row.created_at, actor=row.actor_label, title=title, reason=row.reason,
                                     details=details, tone=tones.get(row.action, "")))
    return entries


def _edit_title(changes: dict) -> tuple[str, list[str]]:
    """A record edit's line, naming every changed field (merchants.services.onboarding.record_changes), and one line
    per field whose values the row keeps, "old → new" (plain fields only: PII is kept as "(changed)", named only)."""
    if not changes:
        return "Record saved: nothing changed", []
    lines = []
    for name, change in sorted(changes.items()):  # jsonb keeps keys shortest first: sorted reads better
        if isinstance(change, dict) and set(change) == {"old", "new"}:
            lines.append(f"{name}: {_edit_value(change['old'])} → {_edit_value(change['new'])}")
        elif isinstance(change, list):  # stores.removed: the store numbers
            lines.append(f"{name}: {', '.join(map(str, change))}")
    return f"Record edited: {', '.join(sorted(changes))}", lines


def _edit_value(value) -> str:
    if value in (None, "", []):
        return "—"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


@dataclass
class ContractEntry:
    at: dt.datetime
    source: str
    from_state: str
    to_state: str
    message: str
    rejections: list = field(default_factory=list)
    channel_state: str = ""
    ids: dict = field(default_factory=dict)
    actor: str = ""


def _audit_source(row: AuditLog) -> str:
    """Who wrote an audit row, in ContractEvent.source's words: a staff user ("staff"), a partner's or merchant's app
    ("api"), or the back office itself — the poller, a task, a channel's notification — ("system")."""
    if row.actor_id is not None:
        return "staff"
    return "api" if row.actor_label.startswith("api:") else "system"


# Audited contract actions that are state changes, each with its own ContractEvent row (merchants.services.settlement
# and .contract_risk write both): the timeline shows the event, not the audit row again.
STATE_CHANGE_VERBS = ("suspend", "resume", "terminate", "limit", "lift_limit")


def contract_timeline(contract: Contract) -> list[ContractEntry]:
    """Every ContractEvent (state changes and the channel's answers) plus the audited actions on the contract that
    are not themselves state changes — staff's (resubmission requests, rate changes) and the system's (a lost
    submission sent again) — each labelled by who did it, oldest first."""
    from merchants.services.settlement import RISK_LIMIT_KEY, RISK_LIMIT_SET

    entries = []
    for event in contract.events.all():
        data = event.data or {}
        message = event.message
        if data.get(RISK_LIMIT_KEY):
            # Risk's decision on a suspended contract's limit is no move ("suspended (no change)"): say what it was,
            # and what the resume now brings back (merchants.services.contract_risk).
            decision = ("limited while suspended — resuming brings it back limited"
                        if data[RISK_LIMIT_KEY] == RISK_LIMIT_SET
                        else "limit lifted while suspended — resuming brings it back active")
            message = f"{decision}: {message}" if message else decision
        entries.append(ContractEntry(
            at=event.created_at, source=event.source, from_state=event.from_state, to_state=event.to_state,
            message=message, rejections=data.get("rejections") or [], channel_state=data.get("channel_state", ""),
            ids={k: data[k] for k in ("application_id", "sub_mchid") if data.get(k)},
        ))
    state_actions = {f"merchants.contract.{state}" for state in ContractState.values}
    for row in AuditLog.objects.filter(target_type="merchants.contract", target_id=str(contract.pk)):
        if row.action in state_actions or row.action.rsplit(".", 1)[-1] in STATE_CHANGE_VERBS:
            continue  # the ContractEvent row already tells it
        entries.append(ContractEntry(at=row.created_at, source=_audit_source(row), from_state="", to_state="",
                                     message=row.action.rsplit(".", 1)[-1].replace("_", " ") +
                                     (f": {row.reason}" if row.reason else ""), actor=row.actor_label))
    entries.sort(key=lambda e: e.at)
    return entries


# --- the home page's queues -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HomeQueue:
    label: str
    count: int
    url: str
    tone: str = ""


def clerk_home_queues() -> list[HomeQueue]:
    # Contracting and Completed by stage: "Completed" only once no contract of the merchant is in flight.
    counts = counts_by_stage(OnboardingApplication.objects.all())
    base = reverse("staff:onboarding")
    action = needs_action_count()  # what ?view=action lists, unfiltered
    contracting = counts.get(ApplicationState.CONTRACTING, 0)
    return [
        HomeQueue("Needs action", action, f"{base}?{urlencode({'view': 'action'})}", "bad" if action else ""),
        HomeQueue("Drafts", counts.get(ApplicationState.DRAFT, 0), f"{base}?{urlencode({'state': 'draft'})}"),
        # One tile per state tab: each count is exactly what its link opens.
        HomeQueue("Waiting for risk", counts.get(ApplicationState.SUBMITTED, 0),
                  f"{base}?{urlencode({'state': 'submitted'})}"),
        HomeQueue("In risk review", counts.get(ApplicationState.RISK_REVIEW, 0),
                  f"{base}?{urlencode({'state': 'risk_review'})}"),
        HomeQueue("Contracting", contracting,
                  f"{base}?{urlencode({'state': 'contracting'})}", "warn" if contracting else ""),
        HomeQueue("Completed", counts.get(ApplicationState.COMPLETED, 0),
                  f"{base}?{urlencode({'state': 'completed'})}", "ok"),
    ]


def overdue_reviews(queryset: QuerySet[OnboardingApplication]) -> QuerySet[OnboardingApplication]:
    """Open reviews past the SLA, counted from submission."""
    return queryset.filter(state__in=OPEN_REVIEW_STATES, submitted_at__lte=timezone.now() - REVIEW_SLA)


def risk_home_queues() -> list[HomeQueue]:
    waiting = OnboardingApplication.objects.filter(state=ApplicationState.SUBMITTED)
    overdue = overdue_reviews(OnboardingApplication.objects.all()).count()
    base = reverse("staff:risk")
    waiting_count = waiting.count()
    frozen = Merchant.objects.filter(state=MerchantState.FROZEN).count()
    # Refused channel callbacks are security events for risk (issue 5 "Callbacks"); the queue opens on the
    # unreviewed ones, which is what the tile counts.
    refused = unreviewed_count()
    answers = answers_unreviewed_count()  # the same event for our own calls' answers: the queue's second tab
    # Each link opens exactly the rows its count counts: the "Waiting" tab, the overdue filter of the open reviews.
    return [
        HomeQueue("Applications waiting for review", waiting_count, f"{base}?{urlencode({'state': 'submitted'})}",
                  "warn" if waiting_count else ""),
        HomeQueue("Over the review SLA", overdue, f"{base}?{urlencode({'overdue': '1'})}", "bad" if overdue else ""),
        HomeQueue("In review", OnboardingApplication.objects.filter(state=ApplicationState.RISK_REVIEW).count(),
                  f"{base}?{urlencode({'state': 'risk_review'})}"),
        HomeQueue("Frozen merchants", frozen, f"{base}#frozen", "bad" if frozen else ""),
        HomeQueue("Refused channel callbacks to review", refused,
                  f"{reverse('channels:refused_callbacks')}?{urlencode({'review': 'unreviewed'})}",
                  "bad" if refused else ""),
        HomeQueue("Refused channel answers to review", answers,
                  f"{reverse('channels:refused_answers')}?{urlencode({'review': 'unreviewed'})}",
                  "bad" if answers else ""),
    ]


# --- the record as staff read it (masked) ---------------------------------------------------------------------
@dataclass(frozen=True)
class RecordRow:
    label: str
    value: str
    param: str  # the services' name of the field, so a returned reason can point at it


def _date(value) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def record_sections(merchant: Merchant) -> list[tuple[str, list[RecordRow]]]:
    """The onboarding record grouped as on the form, with PII masked (design §5 rule 10): ID numbers, phones,
    e-mail, account numbers and people's names never reach a page in the clear."""
    from aggpay.masking import mask_bank_account, mask_email, mask_id_number, mask_name, mask_phone
    from merchants.models import AccountType

    m = merchant
    business = [
        RecordRow("Subject type", m.get_subject_type_display(), "subject_type"),
        RecordRow("Legal name", m.legal_name, "legal_name"),
        RecordRow("Short name", m.short_name, "short_name"),
        RecordRow("MCC / industry", " · ".join(filter(None, [m.mcc, m.industry])), "mcc"),
        RecordRow("Service phone", m.service_phone, "service_phone"),
        RecordRow("Registered address", m.registered_address, "registered_address"),
    ]
    licence = [
        RecordRow("Licence number", m.licence_no, "licence_no"),
        RecordRow("Valid", f"{_date(m.licence_valid_from)} → {_date(m.licence_valid_until) or 'long-term'}"
                  if m.licence_valid_from else "", "licence_valid_from"),
    ] if m.subject_type != "micro" else [RecordRow("Licence", "none (small/micro merchant)", "licence_no")]
    person = [
        RecordRow("Name", mask_name(m.legal_person_name), "legal_person_name"),
        RecordRow("ID", f"{m.get_legal_person_id_type_display()} {mask_id_number(m.legal_person_id_number)}",
                  "legal_person_id_number"),
        RecordRow("ID valid", f"{_date(m.legal_person_id_valid_from)} → "
                  f"{_date(m.legal_person_id_valid_until) or 'long-term'}", "legal_person_id_valid_from"),
    ]
    contact = [
        RecordRow("Name", mask_name(m.contact_name), "contact_name"),
        RecordRow("Mobile", mask_phone(m.contact_phone), "contact_phone"),
        RecordRow("E-mail", mask_email(m.contact_email), "contact_email"),
    ]
    sections = [("Business 主体信息", business), ("Business licence 营业执照", licence),
                ("Legal person 法人", person), ("Contact 联系人", contact)]
    account = m.settlement_accounts.filter(current=True).first()
    if account is not None:
        holder = (account.account_holder if account.account_type == AccountType.CORPORATE
                  else mask_name(account.account_holder))
        sections.append(("Settlement account 结算账户", [
            RecordRow("Type", account.get_account_type_display(), "settlement_account.account_type"),
            RecordRow("Bank", " · ".join(filter(None, [account.bank_name, account.bank_branch,
                                                       account.bank_branch_code])), "settlement_account.bank_name"),
            RecordRow("Account number", mask_bank_account(account.account_number),
                      "settlement_account.account_number"),
            RecordRow("Holder", holder, "settlement_account.account_holder"),
        ]))
    else:
        sections.append(("Settlement account 结算账户", [RecordRow("Account", "", "settlement_account")]))
    return sections

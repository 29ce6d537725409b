"""Read side of risk's queue of refused channel callbacks (issue 5 "Callbacks": refused and recorded as a security
event visible to risk): the rows with their reason kind, the counts, the trade a refusal is about, and the stored
notice as a person may read it (design §5 rule 10: secrets and PII masked). And the same for the channel answers to
our own calls that the cross-check refused (the queue's second tab; see "refused channel answers" below). Nothing
here writes; marking reviewed is channels.services.callback_reviews.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from django.db.models import CharField, Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from aggpay import masking
from aggpay.days import on_days
from aggpay.models import AuditLog
from aggpay.money import format_yuan
from channels.adapters.http import REDACT_KEYS, redact
from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback

# --- why a callback was refused ---------------------------------------------------------------------------------
UNVERIFIED, MISMATCH, UNKNOWN = "unverified", "mismatch", "unknown"
REASON_KINDS = (
    (UNVERIFIED, "Unverified (signature, decryption or timestamp)"),
    (MISMATCH, "Cross-check mismatch"),
    (UNKNOWN, "Unknown order"),
)
REASON_LABELS = dict(REASON_KINDS)
REASON_TONES = {UNVERIFIED: "bad", MISMATCH: "bad", UNKNOWN: "warn"}

# A verified notice that names nothing of ours: the refusals of trades.services.callbacks and
# merchants.services.contracts that begin so (every other refusal of a verified notice is a mismatch).
UNKNOWN_PREFIXES = ("no order ", "no refund ", "no late payment ", "no contract of ours",
                    "payment callback without out_trade_no", "refund callback without out_refund_no")


def _unknown_q() -> Q:
    q = Q()
    for prefix in UNKNOWN_PREFIXES:
        q |= Q(message__startswith=prefix)
    return q


def reason_q(kind: str) -> Q:
    """The refused callbacks of one reason kind. A notice that failed verification was never parsed, so it has no
    callback kind (channels.callbacks stores it without an event: audit action ``security.callback.unverified``);
    one refused by the cross-check has (``security.callback.mismatch``)."""
    if kind == UNVERIFIED:
        return Q(kind="")
    if kind == UNKNOWN:
        return ~Q(kind="") & _unknown_q()
    if kind == MISMATCH:
        return ~Q(kind="") & ~_unknown_q()
    raise ValueError(f"unknown reason kind {kind!r}")


def reason_kind(callback: ChannelCallback) -> str:
    if not callback.kind:
        return UNVERIFIED
    return UNKNOWN if callback.message.startswith(UNKNOWN_PREFIXES) else MISMATCH


# --- the queue ----------------------------------------------------------------------------------------------------
REVIEW_STATES = (("unreviewed", "Unreviewed"), ("reviewed", "Reviewed"), ("all", "All"))


def refused() -> QuerySet[ChannelCallback]:
    return ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED).select_related("account", "reviewed_by")



def filter_refused(callbacks: QuerySet[ChannelCallback], *, account: str = "", kind: str = "", review: str = "",
                   date_from: dt.date | None = None, date_to: dt.date | None = None,
                   remote_addr: str = "") -> QuerySet[ChannelCallback]:
    """``remote_addr`` is an address, or the start of one ("10.8." — all of a network's senders)."""
    if account:
        callbacks = callbacks.filter(account__code=account)
    if kind:
        callbacks = callbacks.filter(reason_q(kind))
    if review == "unreviewed":
        callbacks = callbacks.filter(reviewed_at__isnull=True)
    elif review == "reviewed":
        callbacks = callbacks.filter(reviewed_at__isnull=False)
    callbacks = on_days(callbacks, "received_at", date_from=date_from, date_to=date_to)
    if remote_addr:
        callbacks = callbacks.filter(remote_addr__startswith=remote_addr)
    return callbacks.order_by("-received_at", "-id")


def unreviewed_count() -> int:
    """What risk's home tile shows: refused callbacks nobody has marked reviewed yet."""
    return ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED, reviewed_at__isnull=True).count()


@dataclass(frozen=True)
class Tally:
    key: str
    label: str
    total: int
    unreviewed: int


def counts() -> dict:
    """Unreviewed, received in the last 24 h, and per channel account and per reason kind (total and unreviewed)."""
    base = ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED)
    open_ = Q(reviewed_at__isnull=True)
    kinds = {}
    for kind, _ in REASON_KINDS:
        kinds[f"{kind}_total"] = Count("pk", filter=reason_q(kind))
        kinds[f"{kind}_open"] = Count("pk", filter=reason_q(kind) & open_)
    totals = base.aggregate(
        unreviewed=Count("pk", filter=open_), reviewed=Count("pk", filter=~open_), all=Count("pk"),
        last_day=Count("pk", filter=Q(received_at__gte=timezone.now() - dt.timedelta(hours=24))), **kinds)
    accounts = [Tally(row["account__code"], row["account__name"], row["total"], row["unreviewed"])
                for row in base.values("account__code", "account__name")
                .annotate(total=Count("pk"), unreviewed=Count("pk", filter=open_)).order_by("account__code")]
    return {
        "unreviewed": totals["unreviewed"], "last_day": totals["last_day"],
        "review": {"unreviewed": totals["unreviewed"], "reviewed": totals["reviewed"], "all": totals["all"]},
        "kinds": [Tally(kind, label, totals[f"{kind}_total"], totals[f"{kind}_open"]) for kind, label in REASON_KINDS],
        "accounts": accounts,
    }


# --- the trade a refusal is about -------------------------------------------------------------------------------
# Our order and refund ids (trades.models.orders.public_id), wherever a refusal's note or the notice names them
# (a late payment's refund number embeds its order's).
_OUR_NUMBER = re.compile(r"(?<![A-Za-z0-9])((?:ord|ref)_[A-Za-z0-9]{22})(?![A-Za-z0-9])")


@dataclass(frozen=True)
class TradeLink:
    order: object  # trades.models.Order
    url: str  # the support trade page, at this callback; "" when the user may not open it
    merchant_url: str  # the merchant's page; "" when the user may not open it


def _numbers(callback: ChannelCallback) -> set[str]:
    return set(_OUR_NUMBER.findall(callback.message or "")) | set(_OUR_NUMBER.findall(callback.body or ""))


def trade_links(callbacks, user) -> dict[int, TradeLink]:
    """callback pk → the trade it is about, when its note or stored notice names one of our orders or refunds on
    its account. Which callbacks belong to a trade is decided by trades.workbench.order_callbacks — the same
    matching that puts them on the trade's timeline — so a link always opens a page that shows the callback."""
    from trades.models import Order, Refund
    from trades.workbench import order_callbacks

    callbacks = list(callbacks)
    numbers = {c.pk: _numbers(c) for c in callbacks}
    wanted = set().union(*numbers.values()) if numbers else set()
    if not wanted:
        return {}
    refund_orders = dict(Refund.objects.filter(pk__in=[n for n in wanted if n.startswith("ref_")])
                         .values_list("pk", "order_id"))
    order_ids = {n for n in wanted if n.startswith("ord_")} | set(refund_orders.values())
    orders = {o.pk: o for o in Order.objects.filter(pk__in=order_ids).select_related("merchant", "channel_account")}
    refunds_of: dict[str, list] = {pk: [] for pk in orders}
    for refund in Refund.objects.filter(order_id__in=orders).order_by("created_at", "pk"):
        refunds_of[refund.order_id].append(refund)
    matched: dict[str, set[int]] = {}
    may_view_trades = user.has_perm("trades.view_order")
    may_view_merchants = user.has_perm("merchants.view_merchant")
    links: dict[int, TradeLink] = {}
    for callback in callbacks:
        candidates = [orders.get(refund_orders.get(n, n)) for n in sorted(numbers[callback.pk])]
        for order in filter(None, candidates):
            if order.channel_account_id != callback.account_id:
                continue
            if order.pk not in matched:
                matched[order.pk] = {c.pk for c in order_callbacks(order, refunds_of[order.pk])}
            if callback.pk in matched[order.pk]:
                links[callback.pk] = TradeLink(
                    order=order,
                    url=(reverse("trades:detail", args=[order.pk]) + f"#callback-{callback.pk}"
                         if may_view_trades else ""),
                    merchant_url=(reverse("merchants:detail", args=[order.merchant.merchant_no])
                                  if may_view_merchants else ""))
                break
    return links


# --- the notice as a person may read it (design §5 rule 10) -----------------------------------------------------
_SECRET = "***"
_PHONE_KEYS = {"phone", "mobile", "mobile_phone", "payer_phone", "contact_phone"}
_NAME_KEYS = {"account_name", "id_card_name", "id_doc_name", "contact_name", "buyer_name", "payer_name"}
_EMAIL_KEYS = {"contact_email", "email"}
_ID_KEYS = {"id_card_number", "id_doc_number", "contact_id_number", "cert_no", "id_no"}
_ACCOUNT_KEYS = {"account_number", "bank_account", "card_no", "account_no"}
# Who paid: kept recognisable (the same payer across refusals), never whole.
_PAYER_KEYS = {"openid", "open_id", "sp_openid", "sub_openid", "buyer_id", "buyer_open_id", "buyer_user_id",
               "buyer_logon_id", "user_id"}
_SECRET_KEYS = ({k.lower() for k in REDACT_KEYS} | {"cookie"}) - _PHONE_KEYS - _NAME_KEYS - _EMAIL_KEYS - _ID_KEYS \
    - _ACCOUNT_KEYS - _PAYER_KEYS


def _mask_value(key: str, value):
    key = key.lower()
    if isinstance(value, (dict, list)):
        return mask(value)
    if key in _SECRET_KEYS or key.endswith("signature"):  # Wechatpay-Signature; not Wechatpay-Signature-Type
        return _SECRET if value not in (None, "") else value
    text = "" if value is None else str(value)
    if key in _PHONE_KEYS:
        return masking.mask_phone(text)
    if key in _NAME_KEYS:
        return masking.mask_name(text)
    if key in _EMAIL_KEYS:
        return masking.mask_email(text)
    if key in _ID_KEYS:
        return masking.mask_id_number(text)
    if key in _ACCOUNT_KEYS:
        return masking.mask_bank_account(text)
    if key in _PAYER_KEYS:
        return masking.mask_middle(text, keep_start=3, keep_end=4)
    return value


def mask(data):
    """A parsed notice (or headers) with every secret, signature and piece of PII masked, at any depth."""
    if isinstance(data, dict):
        return {k: _mask_value(str(k), v) for k, v in data.items()}
    if isinstance(data, list):
        return [mask(item) for item in data]
    return data


@dataclass(frozen=True)
class Notice:
    headers: list[tuple[str, str]]
    body: str
    format: str  # json, form, text, empty
    decrypted: bool  # a WeChat Pay resource shown decrypted
    note: str = ""  # why it is not, when it could have been


def _wechat_resource(callback: ChannelCallback, envelope: dict) -> tuple[dict, bool, str]:
    """The envelope with its resource decrypted with the account's APIv3 key (A.4), or unchanged and why not."""
    from channels.adapters import wechatpay_crypto as wx

    resource = envelope.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("ciphertext"), str):
        return envelope, False, ""
    try:
        key = callback.account.typed_config.apiv3_key
        plain = wx.aes_gcm_decrypt(apiv3_key=key, nonce=str(resource.get("nonce") or ""),
                                   associated_data=str(resource.get("associated_data") or ""),
                                   ciphertext=resource["ciphertext"])
        data = json.loads(plain.decode("utf-8"))
    except Exception:  # noqa: BLE001 - anything that keeps it from reading is shown as "does not decrypt"
        return envelope, False, "the resource does not decrypt with this account's APIv3 key"
    return {**envelope, "resource": data}, True, ""


def notice(callback: ChannelCallback) -> Notice:
    """The stored headers and body (decrypted at rest; a WeChat Pay resource decrypted too), masked."""
    headers = sorted((str(k), str(v)) for k, v in mask(dict(callback.headers or {})).items())
    text = callback.body or ""
    if not text.strip():
        return Notice(headers, "", "empty", False)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, (dict, list)):
        decrypted, note = False, ""
        if isinstance(data, dict) and callback.account.kind == "wechatpay":
            data, decrypted, note = _wechat_resource(callback, data)
        return Notice(headers, json.dumps(mask(data), ensure_ascii=False, indent=2), "json", decrypted, note)
    if "=" in text and not text.lstrip().startswith("<"):
        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        if pairs:
            masked = [(k, _mask_value(k, v)) for k, v in pairs]
            return Notice(headers, "\n".join(f"{k} = {v}" for k, v in masked), "form", False)
    return Notice(headers, redact(text, 20_000), "text", False)


# --- refused channel answers ----------------------------------------------------------------------------------------
# The same cross-check refuses a channel's signed answer to our own call (design §5 rule 4): a query's (an order's
# sync — the merchant's GET, the staff "Sync now", the sweepers' ladder), a payment code's create, or a reverse that
# found the trade paid (its account of the payment, trades.services.orders._paid_before_reverse). There is no
# callback row then: trades.services.orders records it as an audit row on the order
# (``security.<verb>.mismatch``, actor ``channel:<account code>``, data: reason, channel_trade_no, amount,
# sub_mchid). It is the same security event as a refused callback, so it is in risk's queue too (issue 5
# "Callbacks").
#
# Its review is its own audit row, ``security.<verb>.reviewed``, whose target is the mismatch row (audit rows are
# append-only, so the mismatch row itself is never marked): no table and no migration, the review is its own audit
# trail, and the (target_type, target_id) index finds it. Written once: channels.services.callback_reviews locks
# the mismatch row and looks again before writing it.
ANSWER_VERBS = {"security.query.mismatch": "query", "security.create.mismatch": "create",
                "security.reverse.mismatch": "reverse"}
ANSWER_REVIEWED = {verb: f"security.{verb}.reviewed" for verb in ANSWER_VERBS.values()}
ANSWER_VERB_LABELS = {"query": "query", "create": "payment-code create", "reverse": "reverse (撤销)"}
ANSWER_TARGET = AuditLog._meta.label_lower  # the review's target: the mismatch row
CHANNEL_ACTOR = "channel:"

# What did not match, by the words of trades.services.orders._cross_check (a field missing is a mismatch too).
AMOUNT, CURRENCY, SUB_MERCHANT, TRADE_NO, OTHER = "amount", "currency", "sub_merchant", "trade_no", "other"
ANSWER_FIELDS = (
    (AMOUNT, "Amount"),
    (CURRENCY, "Currency"),
    (SUB_MERCHANT, "Sub-merchant"),
    (TRADE_NO, "Trade number"),
    (OTHER, "Other"),
)
ANSWER_FIELD_LABELS = dict(ANSWER_FIELDS)
_FIELD_PREFIXES = {
    AMOUNT: ("amount ", "the channel's success does not state the amount"),
    CURRENCY: ("currency ",),
    SUB_MERCHANT: ("sub-merchant ", "the channel's success does not name the sub-merchant"),
    TRADE_NO: ("out_trade_no ", "the channel's success does not name the out_trade_no"),
}


def _field_q(prefixes) -> Q:
    q = Q()
    for prefix in prefixes:
        q |= Q(data__reason__startswith=prefix)
    return q


def field_q(field: str) -> Q:
    """The refused answers whose ``field`` did not match."""
    if field == OTHER:
        return ~_field_q([p for prefixes in _FIELD_PREFIXES.values() for p in prefixes])
    if field in _FIELD_PREFIXES:
        return _field_q(_FIELD_PREFIXES[field])
    raise ValueError(f"unknown field {field!r}")


def answer_field(row: AuditLog) -> str:
    reason = str((row.data or {}).get("reason") or "")
    return next((f for f, prefixes in _FIELD_PREFIXES.items() if reason.startswith(prefixes)), OTHER)


def _reviews():
    return AuditLog.objects.filter(action__in=ANSWER_REVIEWED.values(), target_type=ANSWER_TARGET,
                                   target_id=Cast(OuterRef("pk"), CharField()))


def refused_answers() -> QuerySet[AuditLog]:
    """Every refused channel answer, each with ``review_id``: its review row, or None while nobody reviewed it."""
    return (AuditLog.objects.filter(action__in=ANSWER_VERBS)
            .annotate(review_id=Subquery(_reviews().order_by("pk").values("pk")[:1])))


def filter_answers(answers: QuerySet[AuditLog], *, account: str = "", field: str = "", verb: str = "",
                   review: str = "", date_from: dt.date | None = None,
                   date_to: dt.date | None = None) -> QuerySet[AuditLog]:
    if account:
        answers = answers.filter(actor_label=CHANNEL_ACTOR + account)
    if field:
        answers = answers.filter(field_q(field))
    if verb:
        answers = answers.filter(action__in=[a for a, v in ANSWER_VERBS.items() if v == verb])
    if review == "unreviewed":
        answers = answers.filter(review_id__isnull=True)
    elif review == "reviewed":
        answers = answers.filter(review_id__isnull=False)
    answers = on_days(answers, "created_at", date_from=date_from, date_to=date_to)
    return answers.order_by("-created_at", "-id")


def answers_unreviewed_count() -> int:
    """Refused channel answers nobody has marked reviewed yet (the queue's tab; a home tile could show it)."""
    return AuditLog.objects.filter(action__in=ANSWER_VERBS).exclude(Exists(_reviews())).count()


def answer_counts() -> dict:
    """As ``counts``: unreviewed, the last 24 h, and per channel account and per field (total and unreviewed)."""
    base = refused_answers()
    open_ = Q(review_id__isnull=True)
    fields = {}
    for field, _ in ANSWER_FIELDS:
        fields[f"{field}_total"] = Count("pk", filter=field_q(field))
        fields[f"{field}_open"] = Count("pk", filter=field_q(field) & open_)
    totals = base.aggregate(
        unreviewed=Count("pk", filter=open_), reviewed=Count("pk", filter=~open_), all=Count("pk"),
        last_day=Count("pk", filter=Q(created_at__gte=timezone.now() - dt.timedelta(hours=24))), **fields)
    accounts = [Tally(row["actor_label"].removeprefix(CHANNEL_ACTOR), "", row["total"], row["unreviewed"])
                for row in base.values("actor_label")
                .annotate(total=Count("pk"), unreviewed=Count("pk", filter=open_)).order_by("actor_label")]
    return {
        "unreviewed": totals["unreviewed"], "last_day": totals["last_day"],
        "review": {"unreviewed": totals["unreviewed"], "reviewed": totals["reviewed"], "all": totals["all"]},
        "fields": [Tally(field, label, totals[f"{field}_total"], totals[f"{field}_open"])
                   for field, label in ANSWER_FIELDS if field != OTHER or totals[f"{field}_total"]],
        "accounts": accounts,
    }


@dataclass(frozen=True)
class RefusedAnswer:
    """One refused answer as risk's pages show it."""

    row: AuditLog  # the security.<verb>.mismatch row
    verb: str
    verb_label: str
    field: str
    field_label: str
    account_code: str
    account: ChannelAccount | None
    order: object | None  # trades.models.Order
    url: str  # the support trade page, at this row of its timeline; "" when the user may not open it
    merchant_url: str  # "" when the user may not open it
    review: AuditLog | None  # the security.<verb>.reviewed row

    @property
    def reason(self) -> str:
        return str((self.row.data or {}).get("reason") or "")

    @property
    def channel_trade_no(self) -> str:
        return str((self.row.data or {}).get("channel_trade_no") or "")

    @property
    def amount_yuan(self) -> str:
        """The amount the channel stated, as people read it ("" when it stated none)."""
        amount = (self.row.data or {}).get("amount")
        return format_yuan(amount) if isinstance(amount, int) and not isinstance(amount, bool) else ""

    @property
    def order_amount_yuan(self) -> str:
        return format_yuan(self.order.amount) if self.order is not None else ""

    @property
    def sub_mchid(self) -> str:
        return str((self.row.data or {}).get("sub_mchid") or "")


def answer_rows(rows, user) -> list[RefusedAnswer]:
    """The rows of ``refused_answers()`` with their account, order, trade links and review, in a few queries."""
    from trades.models import Order

    rows = list(rows)
    codes = {r.actor_label.removeprefix(CHANNEL_ACTOR) for r in rows}
    accounts = {a.code: a for a in ChannelAccount.objects.filter(code__in=codes)}
    orders = {o.pk: o for o in Order.objects.filter(pk__in={r.target_id for r in rows if r.target_type ==
                                                            "trades.order"}).select_related("merchant")}
    reviews = {r.pk: r for r in AuditLog.objects.filter(pk__in={r.review_id for r in rows if r.review_id})
               .select_related("actor")}
    may_view_trades = user.has_perm("trades.view_order")
    may_view_merchants = user.has_perm("merchants.view_merchant")
    answers = []
    for row in rows:
        verb, field, code = ANSWER_VERBS[row.action], answer_field(row), row.actor_label.removeprefix(CHANNEL_ACTOR)
        order = orders.get(row.target_id) if row.target_type == "trades.order" else None
        answers.append(RefusedAnswer(
            row=row, verb=verb, verb_label=ANSWER_VERB_LABELS[verb], field=field,
            field_label=ANSWER_FIELD_LABELS[field], account_code=code, account=accounts.get(code), order=order,
            # The trade timeline shows each audit row of the order at #audit-<pk> (trades.workbench.order_timeline).
            url=reverse("trades:detail", args=[order.pk]) + f"#audit-{row.pk}" if order and may_view_trades else "",
            merchant_url=(reverse("merchants:detail", args=[order.merchant.merchant_no])
                          if order and may_view_merchants else ""),
            review=reviews.get(row.review_id)))
    return answers


@dataclass(frozen=True)
class Answer:
    """The channel's answer as stored with the call (already redacted), masked again as a notice is."""

    body: str
    format: str  # json, text, empty
    call: object | None  # trades.models.ChannelCall


def answer_call(row: AuditLog):
    """The channel call recorded with the mismatch row: _answer_refused writes it just before, in one transaction."""
    from trades.models import ChannelCall

    if row.target_type != "trades.order":
        return None
    # A refused query or create is recorded with outcome "mismatch"; a reverse keeps its own outcome (the reversal
    # stood, only the payment it found was refused): the latest call of the verb up to the row is the one.
    return (ChannelCall.objects.filter(order_id=row.target_id, verb=ANSWER_VERBS[row.action],
                                       created_at__lte=row.created_at).order_by("-created_at", "-id").first())


def answer(row: AuditLog) -> Answer:
    call = answer_call(row)
    text = call.answer if call is not None else ""
    if not text.strip():
        return Answer("", "empty", call)
    try:
        data = json.loads(text)
    except ValueError:  # cut short at 4000 characters when recorded, say
        return Answer(redact(text, 20_000), "text", call)
    return Answer(json.dumps(mask(data), ensure_ascii=False, indent=2), "json", call)

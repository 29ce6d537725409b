"""risk models — see design.md §2 for what this app owns.

Channel risk notices (渠道风险通知): what a channel's own risk system tells us it did to one of our sub-merchants
(design §1 "Risk": the channels limit or shut merchants and say so in notifications; we react — route away,
freeze — and appeal). Today WeChat's merchant violation notices (channel-protocols.md A.15: ``VIOLATION.PUNISH``,
``VIOLATION.INTERCEPT``, ``VIOLATION.APPEAL``) arrive here through the callback handler
(trades.services.callbacks ``violation_callback`` → risk.services.channel_notices).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from aggpay.fields import EncryptedTextField


class ChannelRiskNoticeKind(models.TextChoices):
    PUNISH = "punish", "Punishment 处罚"  # the channel restricted the sub-merchant (punish_plan says how)
    INTERCEPT = "intercept", "Interception 拦截"  # the channel blocked its trades (A.15: >10 a day, ≤1 notice/day)
    APPEAL = "appeal", "Appeal update 申诉"  # an appeal against an earlier punishment changed state


class ChannelRiskNoticeState(models.TextChoices):
    NEW = "new", "New"  # in risk's queue
    HANDLED = "handled", "Handled"  # a risk officer acted (or decided not to) and said why


class ChannelRiskAction(models.TextChoices):
    """What the officer did with a notice (risk.services.channel_notices ``channel_risk_notice_handle``)."""

    NONE = "none", "Noted only"
    LIMIT = "limit", "Limit the contract (route its traffic away)"
    LIFT = "lift", "Lift the contract's limit"
    FREEZE = "freeze", "Freeze the merchant"


# The channel's event type (A.15) → our kind.
VIOLATION_KINDS = {
    "VIOLATION.PUNISH": ChannelRiskNoticeKind.PUNISH,
    "VIOLATION.INTERCEPT": ChannelRiskNoticeKind.INTERCEPT,
    "VIOLATION.APPEAL": ChannelRiskNoticeKind.APPEAL,
}


class ChannelRiskNotice(FSMModelMixin, models.Model):
    """One risk notice of a channel about one of our sub-merchants, kept as the channel said it.

    Matched to our contract by the account and the sub-merchant id when one holds it (a notice about a sub-merchant
    we no longer or never had is kept unmatched: risk still sees it). Idempotent in the schema (style.md §9): the
    channel's ``record_id`` is its dedupe key (A.15), so a notice sent again changes nothing — except that each
    appeal update about a record is a notice of its own (``dedupe_key``).

    The callback it came in is the ``ChannelCallback`` of the same account and ``event_id`` (its row is written by
    channels.callbacks after the handler returns, so it cannot be linked here by key): ``source_callback``.
    """

    channel_account = models.ForeignKey("channels.ChannelAccount", on_delete=models.PROTECT,
                                        related_name="risk_notices")
    contract = models.ForeignKey("merchants.Contract", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="risk_notices")
    merchant = models.ForeignKey("merchants.Merchant", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="channel_risk_notices")
    kind = models.CharField(max_length=16, choices=ChannelRiskNoticeKind.choices)
    record_id = models.CharField(max_length=128, help_text="the channel's id of the record (A.15 dedupe key)")
    # What makes a notice "the same one again" (the unique constraint below): the record id for a punishment or an
    # interception (A.15's dedupe key), the record id and the callback's id for an appeal update — every change of
    # an appeal's state is sent about the same record, and each is news; a retry of one keeps its callback id.
    dedupe_key = models.CharField(max_length=260)
    sub_mchid = models.CharField("sub-merchant id", max_length=64, blank=True)
    company_name = models.CharField(max_length=256, blank=True)
    # The channel's free text, encrypted at rest (design §5 rule 10): WeChat writes it for people, and what it says
    # about a punished merchant (its owner's name, ID or card numbers quoted from a complaint) is PII we cannot
    # pick out. The pages and the audit log mask it (aggpay.masking.mask_text). The company name stays searchable:
    # it is the business's registered name, which the queue's search box looks for.
    punish_plan = EncryptedTextField(blank=True, help_text="free text, not an enum (A.15); encrypted at rest")
    punish_time = models.DateTimeField(null=True, blank=True)
    punish_description = EncryptedTextField(blank=True, help_text="encrypted at rest")
    risk_type = models.CharField(max_length=64, blank=True)
    risk_description = EncryptedTextField(blank=True, help_text="encrypted at rest")
    event_id = models.CharField(max_length=128, blank=True, help_text="the callback's id (A.4 envelope)")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    state = FSMField(default=ChannelRiskNoticeState.NEW, choices=ChannelRiskNoticeState.choices, protected=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    handled_action = models.CharField(max_length=8, choices=ChannelRiskAction.choices, blank=True)
    handled_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel_account", "kind", "dedupe_key"], name="channel_risk_notice_once"),
        ]
        indexes = [
            # Risk's queue opens on the new ones, newest first; the home tile counts them.
            models.Index(fields=["-received_at"], condition=Q(state="new"), name="channel_risk_notice_new"),
        ]
        permissions = [
            ("handle_channelrisknotice", "Can handle channel risk notices"),
            # Limiting a contract is risk's reaction to a channel's risk action (design §4 ``active ⇄ limited``,
            # §8). It lives here, not on merchants.Contract, because the risk app owns channel risk events
            # (merchants.services.contract_risk checks it).
            ("limit_contract", "Can limit a channel contract and lift its limit"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.record_id} ({self.sub_mchid or 'no sub-merchant'})"

    @transition(field=state, source=ChannelRiskNoticeState.NEW, target=ChannelRiskNoticeState.HANDLED)
    def handle(self) -> None:
        """A risk officer acted on the notice; who, when, what and why are set by the service."""

    def source_callback(self):
        """The callback this notice came in (the first processed one of its account and event id), or None."""
        from channels.models import CallbackOutcome, ChannelCallback

        if not self.event_id:
            return None
        return (ChannelCallback.objects.filter(account_id=self.channel_account_id, event_id=self.event_id,
                                               outcome__in=(CallbackOutcome.APPLIED, CallbackOutcome.DUPLICATE))
                .order_by("received_at", "id").first())

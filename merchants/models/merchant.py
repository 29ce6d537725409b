"""Merchants and their API apps. The onboarding issue extends Merchant with the full onboarding record."""

from __future__ import annotations

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from aggpay.crypto import lookup_digest
from aggpay.fields import EncryptedTextField


class MerchantState(models.TextChoices):
    ONBOARDING = "onboarding", "Onboarding"  # application in progress, cannot trade
    ACTIVE = "active", "Active"  # at least one contract active; may trade
    FROZEN = "frozen", "Frozen"  # risk froze it; may not trade, may refund
    CLOSED = "closed", "Closed"  # terminal


class SubjectType(models.TextChoices):
    # channel-protocols.md A.13 subject_type / B.7 merchant_type
    ENTERPRISE = "enterprise", "Enterprise (企业)"
    INDIVIDUAL_BUSINESS = "individual_business", "Individual business (个体工商户)"
    MICRO = "micro", "Small/micro individual (小微)"


class IdDocType(models.TextChoices):
    ID_CARD = "id_card", "Resident ID card"
    PASSPORT = "passport", "Passport"
    HK_MACAO_PERMIT = "hk_macao_permit", "Hong Kong/Macao permit"
    TAIWAN_PERMIT = "taiwan_permit", "Taiwan permit"
    FOREIGN_RESIDENT = "foreign_resident", "Foreign permanent resident ID"


ID_NUMBER_DIGEST_PURPOSE = "merchants.legal_person_id_number"


def id_number_digest(number: str | None) -> str:
    """The lookup digest of a legal person's ID number (normalised: stripped, upper case), or "" for none."""
    normalised = (number or "").strip().upper()
    return lookup_digest(normalised, purpose=ID_NUMBER_DIGEST_PURPOSE) if normalised else ""


class Merchant(FSMModelMixin, models.Model):
    """A merchant (or a partner/agent that onboards merchants, ``is_partner``) and its onboarding record.

    The record holds what the channels' onboarding APIs ask for (channel-protocols.md A.13, B.7). PII — ID numbers,
    phones, e-mail — is encrypted at rest and masked on display (design §5 rule 10).
    """

    merchant_no = models.CharField(max_length=32, unique=True)
    legal_name = models.CharField(max_length=128)
    short_name = models.CharField(max_length=64)
    state = FSMField(default=MerchantState.ONBOARDING, choices=MerchantState.choices, protected=True)
    is_partner = models.BooleanField(default=False, help_text="a partner/agent whose apps may onboard merchants")
    partner = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="sub_merchants",
        help_text="the partner that onboarded this merchant through the API, if any",
    )
    # The partner's own id of the merchant (merchant-api.md "Partner onboarding"): a retried create is recognised
    # by it (design §5 rule 5, like out_trade_no). Blank for merchants onboarded by clerks or without one.
    partner_reference = models.CharField(max_length=64, blank=True, default="",
                                         help_text="the partner's own id of this merchant, unique per partner")
    partner_request_fingerprint = models.CharField(
        max_length=64, blank=True, default="", editable=False,
        help_text="SHA-256 of the partner's create request: a retry with other content is a conflict",
    )
    subject_type = models.CharField(max_length=24, choices=SubjectType.choices, default=SubjectType.ENTERPRISE)
    licence_no = models.CharField("business licence number", max_length=32, blank=True, db_index=True)
    licence_valid_from = models.DateField(null=True, blank=True)
    licence_valid_until = models.DateField(null=True, blank=True, help_text="empty = long-term (长期)")
    registered_address = models.CharField(max_length=256, blank=True)
    legal_person_name = EncryptedTextField(blank=True)
    legal_person_id_type = models.CharField(max_length=20, choices=IdDocType.choices, default=IdDocType.ID_CARD)
    legal_person_id_number = EncryptedTextField(blank=True)
    # A blind index of the ID number (aggpay.crypto.lookup_digest), set by save(): the number itself is encrypted with
    # a fresh IV each time, so this is how a 小微 owner already onboarded is found (merchants.services.record
    # ``check_record_duplicates``). Not unique: a person may come back after a merchant was closed or rejected.
    legal_person_id_digest = models.CharField(max_length=64, blank=True, default="", editable=False, db_index=True,
                                              help_text="keyed HMAC-SHA256 of the normalised ID number, for lookups")
    legal_person_id_valid_from = models.DateField(null=True, blank=True)
    legal_person_id_valid_until = models.DateField(null=True, blank=True, help_text="empty = long-term (长期)")
    contact_name = EncryptedTextField(blank=True)
    contact_phone = EncryptedTextField(blank=True)
    contact_email = EncryptedTextField(blank=True)
    service_phone = models.CharField(max_length=20, blank=True)
    mcc = models.CharField("MCC", max_length=4, blank=True)
    industry = models.CharField(max_length=64, blank=True)
    requested_products = models.JSONField(default=list, blank=True, help_text="product codes of merchant-api.md")
    scenarios = models.JSONField(
        default=list, blank=True,
        help_text="business scenarios: [{type: store|website|app|mini_program|official_account, name, url|appid}]",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "partner_reference"], condition=~models.Q(partner_reference=""),
                                    name="uniq_partner_reference_per_partner"),
        ]
        # Risk's decisions (design §8), held by risk officers (aggpay/roles.py "merchants.freeze_*") and carved out
        # of the clerks' "merchants.*".
        permissions = [("freeze_merchant", "Can freeze a merchant (its payments are refused)"),
                       ("unfreeze_merchant", "Can unfreeze a merchant"),
                       ("designate_partner", "Can make a merchant a partner (its apps may onboard merchants)")]

    def __str__(self) -> str:
        return f"{self.merchant_no} {self.short_name}"

    def save(self, *args, **kwargs) -> None:
        # Every write of the ID number writes its digest too, whichever path (services, admin, factories) saves it.
        update_fields = kwargs.get("update_fields")
        if update_fields is None:
            if "legal_person_id_number" not in self.get_deferred_fields():
                self.legal_person_id_digest = id_number_digest(self.legal_person_id_number)
        elif "legal_person_id_number" in update_fields:
            self.legal_person_id_digest = id_number_digest(self.legal_person_id_number)
            kwargs["update_fields"] = {*update_fields, "legal_person_id_digest"}
        super().save(*args, **kwargs)

    @transition(field=state, source=MerchantState.ONBOARDING, target=MerchantState.ACTIVE)
    def activate(self) -> None:
        """First contract active (design §4)."""

    @transition(field=state, source=MerchantState.ACTIVE, target=MerchantState.FROZEN)
    def freeze(self) -> None:
        """Risk stops trading."""

    @transition(field=state, source=MerchantState.FROZEN, target=MerchantState.ACTIVE)
    def unfreeze(self) -> None:
        """Risk lifts a freeze."""

    @transition(field=state, source=[MerchantState.ONBOARDING, MerchantState.ACTIVE, MerchantState.FROZEN],
                target=MerchantState.CLOSED)
    def close(self) -> None:
        """Terminal."""


class AppScope(models.TextChoices):
    PAYMENTS = "payments", "Payments"
    ONBOARDING = "onboarding", "Partner onboarding"


class SignType(models.TextChoices):
    HMAC = "hmac", "AGGPAY-HMAC-SHA256"
    RSA = "rsa", "AGGPAY-SHA256-RSA2048"


class MerchantApp(models.Model):
    """An API credential of a merchant (or partner): merchant-api.md "Authentication and signing"."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="apps")
    app_id = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=64, default="default")
    scopes = models.JSONField(default=list, help_text="subset of: payments, onboarding")
    sign_type = models.CharField(max_length=8, choices=SignType.choices, default=SignType.HMAC)
    secret = EncryptedTextField(blank=True, help_text="HMAC secret, encrypted at rest; shown once on creation")
    public_key_pem = models.TextField(blank=True, help_text="merchant's RSA public key (RSA apps)")
    notify_url = models.URLField(max_length=512, blank=True)
    active = models.BooleanField(default=True)
    secret_revealed_at = models.DateTimeField(
        null=True, blank=True, help_text="HMAC secrets are shown once to staff, then only rotated")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.app_id

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


class Store(models.Model):
    """A merchant's physical or online store; one-code-pay codes hang off stores."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="stores")
    store_no = models.CharField(max_length=32, help_text="the merchant's own store id")
    name = models.CharField(max_length=64)
    area_code = models.CharField(max_length=6, blank=True, help_text="administrative division code (6 digits)")
    address = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant", "store_no"]
        constraints = [models.UniqueConstraint(fields=["merchant", "store_no"], name="uniq_store_no_per_merchant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.store_no})"


class AccountType(models.TextChoices):
    CORPORATE = "corporate", "Corporate account (对公)"
    PERSONAL = "personal", "Personal account (对私)"


class SettlementAccount(models.Model):
    """Where a merchant is paid out. Changes after activation go through each channel's modify API (issue 4),
    so rows are kept: ``current`` marks the one in force."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="settlement_accounts")
    account_type = models.CharField(max_length=12, choices=AccountType.choices)
    bank_name = models.CharField(max_length=64)
    bank_branch = models.CharField(max_length=128, blank=True)
    bank_branch_code = models.CharField(max_length=16, blank=True, help_text="CNAPS code of the branch")
    account_number = EncryptedTextField()
    account_holder = EncryptedTextField()
    current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant"], condition=models.Q(current=True),
                                    name="one_current_settlement_account"),
        ]

    def __str__(self) -> str:
        from aggpay.masking import mask_bank_account

        return f"{self.bank_name} {mask_bank_account(self.account_number)}"


class DocumentType(models.TextChoices):
    LICENCE = "licence", "Business licence"
    ID_FRONT = "id_front", "ID card (portrait side)"
    ID_BACK = "id_back", "ID card (national emblem side)"
    STORE_FRONT = "store_front", "Store front"
    STORE_INSIDE = "store_inside", "Store inside"
    BANK_CARD = "bank_card", "Bank card / account permit"
    SITE_SCREENSHOT = "site_screenshot", "Website/app screenshot"
    OTHER = "other", "Other"


class Document(models.Model):
    """An uploaded onboarding document. ``sha256`` lets channels' media uploads and duplicates be recognised."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="documents")
    doc_type = models.CharField(max_length=20, choices=DocumentType.choices)
    file = models.FileField(upload_to="documents/%Y/%m/")
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    uploaded_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_doc_type_display()} ({self.size} bytes)"

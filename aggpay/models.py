"""Cross-cutting models: the append-only audit log and the platform signing key."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from aggpay.fields import EncryptedTextField


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs):  # pragma: no cover - tripwire
        raise TypeError("audit rows are append-only")

    def delete(self):  # pragma: no cover - tripwire
        raise TypeError("audit rows are append-only")


class AuditLog(models.Model):
    """Who did what to which object, when and why (design §5 rule 9; pretix's log_action, zulip's RealmAuditLog).

    Written by ``aggpay.audit.audit_log`` inside the same transaction as the change it describes. Never updated
    or deleted.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="user name, 'system', 'api:<app_id>' or a channel")
    action = models.CharField(max_length=100, db_index=True, help_text="namespaced, e.g. merchants.contract.activated")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"])]
        permissions = [("view_audit", "Can read the audit log")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("audit rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit rows are append-only")


class PlatformKey(models.Model):
    """aggpay's own RSA key pair, used to sign responses and notifications to RSA apps (merchant-api.md).

    Generated once per deployment (``aggpay.platform_keys.platform_key``); the private half is encrypted at rest.
    Keeping older rows lets merchants verify during a key rotation; the newest active one signs.
    """

    key_id = models.CharField(max_length=40, unique=True)
    private_key_pem = EncryptedTextField()
    public_key_pem = models.TextField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.key_id

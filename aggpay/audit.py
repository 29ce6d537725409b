"""Writing audit rows (design §5 rule 9). Call inside the transaction that makes the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from aggpay.middleware import current_request_id
from aggpay.models import AuditLog


def actor_label_for(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username()


def audit_log(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one audit row. ``actor`` is a user, None (the system) or a label such as ``api:app_123``.

    Must run inside the caller's transaction so that the row exists if and only if the change does.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_log must be called inside the transaction that makes the change")
    user = actor if (actor is not None and not isinstance(actor, str)) else None
    if user is not None and not getattr(user, "pk", None):
        user = None
    return AuditLog.objects.create(
        actor=user,
        actor_label=actor_label_for(actor)[:150],
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        reason=reason,
        data=data or {},
        request_id=current_request_id() if current_request_id() != "-" else "",
    )


@dataclass(frozen=True)
class AuditNote:
    """An audit row a caller hands to a service, which writes it inside the transaction that makes the change
    (pretix's ``log_action``): a staff refund's row exists if and only if the refund does, even when the channel
    call that follows fails or the process dies."""

    actor: Any
    action: str
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def write(self, target: models.Model, **data: Any) -> AuditLog:
        return audit_log(actor=self.actor, action=self.action, target=target, reason=self.reason,
                         data={**self.data, **data})

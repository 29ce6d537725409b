"""Configuration history of channel accounts: one ``ChannelConfigChange`` and one audit row per change.

Design §5 rule 9 ("history of configuration (rates, routing rules, limits) is kept"); both rows are written in the
caller's transaction so they exist if and only if the change does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aggpay.audit import actor_label_for, audit_log
from channels.models import ChannelAccount, ChannelConfigChange

# What a diff shows instead of a secret's old and new values (issue 3: credentials are write-only).
CHANGED = "(changed)"


class _Unset:
    """Marks a keyword argument the caller did not pass (``None`` is a real value for nullable fields)."""

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def plain(value: Any) -> Any:
    """A JSON-friendly, comparable form of a field value (Decimals as fixed-point strings)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def diff(before: dict[str, Any], after: dict[str, Any], *, secret: frozenset[str] | set[str] = frozenset()) -> dict:
    """``{field: {"old", "new"}}`` for the fields whose value differs; secret fields as ``"(changed)"``."""
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = plain(before.get(key)), plain(after.get(key))
        if old == new:
            continue
        changes[key] = CHANGED if key in secret else {"old": old, "new": new}
    return changes


def record_change(
    *,
    actor,
    account: ChannelAccount,
    target,
    target_type: str,
    action: str,
    changes: dict[str, Any] | None = None,
    reason: str = "",
) -> ChannelConfigChange:
    """Append the history row and the audit row for one change (call inside the change's transaction)."""
    changes = changes or {}
    user = actor if (actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None)) else None
    row = ChannelConfigChange.objects.create(
        actor=user,
        actor_label=actor_label_for(actor)[:150],
        account=account,
        target_type=target_type,
        target_id=str(target.pk),
        target_repr=str(target)[:200],
        action=action,
        changes=changes,
        reason=reason,
    )
    audit_log(actor=actor, action=f"channels.{action}", target=target, reason=reason,
              data={"account": account.code, "changes": changes})
    return row

"""PII masking for pages, logs and API answers (design §5 rule 10). Masks keep enough to recognise a value."""

from __future__ import annotations


def mask_middle(value: str | None, *, keep_start: int, keep_end: int, char: str = "*") -> str:
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return char * len(value)
    return value[:keep_start] + char * (len(value) - keep_start - keep_end) + value[len(value) - keep_end :]


def mask_id_number(value: str | None) -> str:
    """Resident ID: 110101********1234 (first 6 = region, last 4)."""
    return mask_middle(value, keep_start=6 if value and len(value) >= 15 else 1, keep_end=4 if value and len(value) >= 15 else 1)


def mask_bank_account(value: str | None) -> str:
    """Bank account: keep the last 4 digits only."""
    return mask_middle(value, keep_start=0, keep_end=4)


def mask_phone(value: str | None) -> str:
    """Mobile: 138****5678."""
    return mask_middle(value, keep_start=3, keep_end=4)


def mask_name(value: str | None) -> str:
    """Person's name: keep the family name (first character): 张**."""
    if not value:
        return ""
    return value[0] + "*" * (len(value) - 1) if len(value) > 1 else "*"


def mask_email(value: str | None) -> str:
    if not value or "@" not in value:
        return mask_middle(value, keep_start=1, keep_end=0)
    local, _, domain = value.partition("@")
    return mask_middle(local, keep_start=1, keep_end=0) + "@" + domain


def mask_secret(value: str | None) -> str:
    """A stored secret is never shown: only whether one is set."""
    return "•••••• (set)" if value else "(not set)"

"""Permission checks inside services: defence in depth behind the views' checks (design §5 rule 11)."""

from __future__ import annotations

from aggpay.errors import Forbidden


def require_perm(actor, perm: str) -> None:
    """Staff actors must hold ``perm``. System (None) and API-label actors were authorised by their caller."""
    if actor is None or isinstance(actor, str):
        return
    if not actor.has_perm(perm):
        raise Forbidden(f"{actor.get_username()} may not do this (needs {perm})")

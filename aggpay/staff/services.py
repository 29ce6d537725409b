"""Staff user services: creating back-office users with one role (the demo seed creates one per role)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest
from aggpay.roles import ROLES_BY_SLUG, roles_sync


def staff_user_create(*, username: str, password: str, role: str, email: str = "", actor=None):
    """Create an active staff user (``is_staff``, so the Django admin opens too) in the group of ``role``.

    ``role`` is a slug of ``aggpay.roles.ROLES``. Audited as ``aggpay.staff_user.created``; ``actor`` is the
    admin doing it (None for the system, e.g. the demo seed).
    """
    if role not in ROLES_BY_SLUG:
        raise InvalidRequest(f"role must be one of {sorted(ROLES_BY_SLUG)}", param="role")
    User = get_user_model()
    if not username or len(username) > 150:
        raise InvalidRequest("username is required (at most 150 characters)", param="username")
    if User.objects.filter(username=username).exists():
        raise InvalidRequest(f"username {username!r} is taken", param="username")
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidRequest(" ".join(exc.messages), param="password")
    with transaction.atomic():
        group = Group.objects.filter(name=role).first()
        if group is None:  # a database migrated before the role existed: bring the groups up to date
            roles_sync()
            group = Group.objects.get(name=role)
        user = User.objects.create_user(username=username, email=email, password=password, is_staff=True)
        user.groups.add(group)
        audit_log(actor=actor, action="aggpay.staff_user.created", target=user,
                  data={"role": role, "is_staff": True})
    return user

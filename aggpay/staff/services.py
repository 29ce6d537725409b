"""Staff user and group services: who works in the back office and with which role (design §8).

Every change is audited in the transaction that makes it (design §5 rule 9). Only a superuser may touch the
privilege fields: superuser status, a user's individual permissions, a group's permissions, a superuser's
account. Everyone else with the user permissions (the ``admin`` role) manages accounts and hands out the role
groups of ``aggpay.roles.ROLES``, never their own. The Django admin (``aggpay.admin_users``) hides those fields
too; the checks here are what holds if a form ever lets one through.

``actor`` is the user doing it, or None / a label such as ``"system:seed_demo"`` for the system (trusted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from aggpay.audit import audit_log
from aggpay.errors import Forbidden, InvalidRequest, NotFound
from aggpay.roles import ROLES_BY_SLUG, roles_sync

# Account fields anyone who may change users may change (for other users). ``is_superuser`` is the superuser's.
PROFILE_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff")
USER_FIELDS = (*PROFILE_FIELDS, "is_superuser")


def _is_system(actor) -> bool:
    return actor is None or isinstance(actor, str)


def _is_superuser(actor) -> bool:
    return _is_system(actor) or bool(actor.is_active and actor.is_superuser)


def _require(actor, perm: str) -> None:
    if not _is_system(actor) and not actor.has_perm(perm):
        raise Forbidden(f"this needs the {perm} permission")


def _perm_names(permissions) -> list[str]:
    return sorted(f"{app}.{codename}" for app, codename in
                  permissions.values_list("content_type__app_label", "codename"))


def staff_user_snapshot(user) -> dict[str, Any]:
    """What an audit row says about an account: its fields, groups and own permissions (never the password)."""
    return {
        **{name: getattr(user, name) for name in USER_FIELDS},
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "user_permissions": _perm_names(user.user_permissions),
    }


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: {"before": before[key], "after": after[key]} for key in after if before.get(key) != after[key]}


def _check_user_change(*, actor, user_id: int, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Raise Forbidden if ``actor`` may not turn ``before`` into ``after`` (see the module docstring)."""
    if _is_superuser(actor):
        return
    if before["is_superuser"]:
        raise Forbidden("only a superuser may change a superuser's account")
    if after["is_superuser"]:
        raise Forbidden("only a superuser may grant superuser status", param="is_superuser")
    if after["user_permissions"] != before["user_permissions"]:
        raise Forbidden("only a superuser may grant individual permissions; give a role instead",
                        param="user_permissions")
    managed = set(ROLES_BY_SLUG)
    if {g for g in after["groups"] if g not in managed} != {g for g in before["groups"] if g not in managed}:
        raise Forbidden(f"only the role groups may be given or taken: {sorted(managed)}", param="groups")
    if user_id == actor.pk:
        for name in ("groups", "is_staff", "is_active"):
            if after[name] != before[name]:
                raise Forbidden("nobody changes their own roles or status; ask another administrator", param=name)


def _roles_groups(names: Iterable[str]) -> list[Group]:
    names = set(names)
    groups = list(Group.objects.filter(name__in=names))
    if {g.name for g in groups} != names and names <= set(ROLES_BY_SLUG):
        roles_sync()  # a database migrated before the role existed: bring the groups up to date
        groups = list(Group.objects.filter(name__in=names))
    missing = names - {g.name for g in groups}
    if missing:
        raise InvalidRequest(f"no such group: {', '.join(sorted(missing))}", param="groups")
    return groups


def staff_user_create(*, username: str, password: str | None, role: str | None = None, roles: Iterable[str] = (),
                      email: str = "", first_name: str = "", last_name: str = "", actor=None):
    """Create an active staff user (``is_staff``, so the Django admin opens too) in the groups of its roles.

    ``role``/``roles`` are slugs of ``aggpay.roles.ROLES`` (never another group, never superuser status).
    ``password=None`` makes an account that cannot sign in with a password until one is set. Audited as
    ``aggpay.staff_user.created`` with ``{"role": slug}`` for one role, else ``{"roles": [...]}``.
    """
    wanted = sorted({*([role] if role else []), *roles})
    unknown = [slug for slug in wanted if slug not in ROLES_BY_SLUG]
    if unknown:
        raise InvalidRequest(f"role must be one of {sorted(ROLES_BY_SLUG)}", param="role")
    User = get_user_model()
    if not username or len(username) > 150:
        raise InvalidRequest("username is required (at most 150 characters)", param="username")
    if User.objects.filter(username=username).exists():
        raise InvalidRequest(f"username {username!r} is taken", param="username")
    if password is not None:
        try:
            validate_password(password, user=User(username=username, email=email))
        except ValidationError as exc:
            raise InvalidRequest(" ".join(exc.messages), param="password")
    _require(actor, "auth.add_user")
    with transaction.atomic():
        groups = _roles_groups(wanted)
        user = User.objects.create_user(username=username, email=email, password=password, is_staff=True,
                                        first_name=first_name, last_name=last_name)
        user.groups.add(*groups)
        data = {"role": wanted[0]} if len(wanted) == 1 else {"roles": wanted}
        audit_log(actor=actor, action="aggpay.staff_user.created", target=user, data={**data, "is_staff": True})
    return user


@transaction.atomic
def staff_user_update(*, actor, user_id: int, changes: Mapping[str, Any] | None = None,
                      groups: Iterable[str] | None = None, user_permissions: Iterable[Permission] | None = None,
                      reason: str = ""):
    """Change an account's fields (``USER_FIELDS``), its groups (names, the full set) and/or its own permissions.

    Audited as ``aggpay.staff_user.changed`` with ``{"changes": {field: {"before", "after"}}}`` (groups and
    permissions as sorted name lists); nothing is written when nothing changed.
    """
    _require(actor, "auth.change_user")
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(USER_FIELDS))
    if unknown:
        raise InvalidRequest(f"these fields are not changed here: {', '.join(unknown)}", param=unknown[0])
    user = get_user_model().objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise NotFound(f"no user {user_id}", param="user_id")
    username = changes.get("username", user.username)
    if username != user.username and type(user).objects.filter(username=username).exists():
        raise InvalidRequest(f"username {username!r} is taken", param="username")
    before = staff_user_snapshot(user)
    new_groups = _roles_groups(groups) if groups is not None else None
    new_perms = list(user_permissions) if user_permissions is not None else None
    after = {
        **before, **changes,
        "groups": sorted(g.name for g in new_groups) if new_groups is not None else before["groups"],
        "user_permissions": sorted(f"{p.content_type.app_label}.{p.codename}" for p in new_perms)
        if new_perms is not None else before["user_permissions"],
    }
    _check_user_change(actor=actor, user_id=user.pk, before=before, after=after)
    diff = _diff(before, after)
    if not diff:
        return user
    for name, value in changes.items():
        setattr(user, name, value)
    user.save()
    if "groups" in diff:
        user.groups.set(new_groups)
    if "user_permissions" in diff:
        user.user_permissions.set(new_perms)
    audit_log(actor=actor, action="aggpay.staff_user.changed", target=user, reason=reason, data={"changes": diff})
    return user


@transaction.atomic
def staff_user_password_changed(*, actor, user_id: int, reason: str = ""):
    """Record a password set or disabled by Django's admin password form (which did the hashing).

    Runs in that form's transaction: the row exists if and only if the new password does. The data says only
    whether a password is usable now, never anything about it.
    """
    _require(actor, "auth.change_user")
    user = get_user_model().objects.select_for_update().get(pk=user_id)
    if not _is_superuser(actor) and user.is_superuser:
        raise Forbidden("only a superuser may change a superuser's account")
    audit_log(actor=actor, action="aggpay.staff_user.password_changed", target=user, reason=reason,
              data={"usable_password": user.has_usable_password()})
    return user


@transaction.atomic
def staff_user_delete(*, actor, user_id: int, reason: str = "") -> None:
    """Delete an account (deactivating it is usually better: it keeps the history attached). Audited with what the
    account was. Not a superuser's account unless by a superuser; never one's own."""
    _require(actor, "auth.delete_user")
    user = get_user_model().objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise NotFound(f"no user {user_id}", param="user_id")
    if not _is_system(actor) and user.pk == actor.pk:
        raise Forbidden("nobody deletes their own account")
    if not _is_superuser(actor) and user.is_superuser:
        raise Forbidden("only a superuser may delete a superuser")
    audit_log(actor=actor, action="aggpay.staff_user.deleted", target=user, reason=reason,
              data={"account": staff_user_snapshot(user)})
    user.delete()


# --- groups: the role groups are defined in code; other groups are a superuser's ------------------------------


def _check_group_change(*, actor, group: Group | None) -> None:
    if group is not None and group.name in ROLES_BY_SLUG:
        raise Forbidden("role groups are defined in aggpay/roles.py (re-applied after every migrate); "
                        "change the ROLES table instead")
    if not _is_superuser(actor):
        raise Forbidden("only a superuser may create, change or delete groups and their permissions")


@transaction.atomic
def staff_group_save(*, actor, group_id: int | None, name: str, permissions: Iterable[Permission],
                     reason: str = "") -> Group:
    """Create (``group_id=None``) or change a group that is not a role group. Superusers only; audited as
    ``aggpay.staff_group.created`` / ``.changed`` with the permissions before and after."""
    group = None
    if group_id is not None:
        group = Group.objects.select_for_update().filter(pk=group_id).first()
        if group is None:
            raise NotFound(f"no group {group_id}", param="group_id")
    _check_group_change(actor=actor, group=group)
    if not name or (name in ROLES_BY_SLUG and (group is None or group.name != name)):
        raise InvalidRequest("a group name is required and may not be a role's", param="name")
    before = {"name": group.name, "permissions": _perm_names(group.permissions)} if group else None
    group = group or Group()
    group.name = name
    group.save()
    group.permissions.set(list(permissions))
    after = {"name": group.name, "permissions": _perm_names(group.permissions)}
    if before is None:
        audit_log(actor=actor, action="aggpay.staff_group.created", target=group, reason=reason, data=after)
    elif before != after:
        audit_log(actor=actor, action="aggpay.staff_group.changed", target=group, reason=reason,
                  data={"changes": _diff(before, after)})
    return group


@transaction.atomic
def staff_group_delete(*, actor, group_id: int, reason: str = "") -> None:
    """Delete a group that is not a role group. Superusers only; audited with its permissions and members."""
    group = Group.objects.select_for_update().filter(pk=group_id).first()
    if group is None:
        raise NotFound(f"no group {group_id}", param="group_id")
    _check_group_change(actor=actor, group=group)
    audit_log(actor=actor, action="aggpay.staff_group.deleted", target=group, reason=reason,
              data={"permissions": _perm_names(group.permissions),
                    "members": sorted(group.user_set.values_list("username", flat=True))})
    group.delete()

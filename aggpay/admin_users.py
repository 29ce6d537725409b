"""Users and groups in the Django admin, in place of Django's stock ``UserAdmin`` / ``GroupAdmin``.

The ``admin`` role manages accounts and hands out the role groups of ``aggpay.roles.ROLES`` (design §8). It must
not be able to reach anything beyond that, so for anyone but a superuser: superuser status is read-only,
individual permissions are not shown, the group choices are the role groups only, superusers' accounts are
read-only, and one's own roles and status are read-only. The role groups themselves are read-only for everyone:
``roles_sync`` puts their permissions back after every migrate, so an edit here would not stick.

Every add, change and delete goes through ``aggpay.staff.services`` (audited, design §5 rule 9) inside the
admin's own transaction; a ``Forbidden`` from there becomes a 403 and rolls the whole request back.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db import transaction

from aggpay.errors import Forbidden
from aggpay.roles import ROLES_BY_SLUG
from aggpay.staff.services import (
    USER_FIELDS,
    staff_group_delete,
    staff_group_save,
    staff_user_create,
    staff_user_delete,
    staff_user_password_changed,
    staff_user_update,
)


def _sync_saved(obj, saved) -> None:
    """The admin goes on to log and redirect using the form's ``obj``: make it the row the service saved."""
    obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
    obj._state.adding, obj._state.db = False, saved._state.db


class _ForbiddenAs403:
    def _call(self, service, **kwargs):
        try:
            return service(**kwargs)
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from exc


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class StaffUserAdmin(_ForbiddenAs403, UserAdmin):
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "usable_password", "password1", "password2")}),
        ("Roles", {"fields": ("email", "groups")}),
    )
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "is_superuser")

    # --- what a non-superuser sees and may touch ---------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return tuple(
            (name, {**options, "fields": tuple(f for f in options["fields"] if f != "user_permissions")})
            for name, options in fieldsets
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = ["last_login", "date_joined"]
        if not request.user.is_superuser:
            readonly.append("is_superuser")
            if obj is not None and obj.pk == request.user.pk:
                readonly += ["groups", "is_staff", "is_active"]
        return readonly

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        # Creating a user hands out roles only; changing one may keep another group only if a superuser does it.
        changing = getattr(getattr(request, "resolver_match", None), "url_name", "") == "auth_user_change"
        if db_field.name == "groups" and not (request.user.is_superuser and changing):
            kwargs["queryset"] = Group.objects.filter(name__in=ROLES_BY_SLUG).order_by("name")
        return super().formfield_for_manytomany(db_field, request=request, **kwargs)

    def _may_touch(self, request, obj) -> bool:
        return obj is None or request.user.is_superuser or not obj.is_superuser

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_touch(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.pk == request.user.pk:
            return False
        return super().has_delete_permission(request, obj) and self._may_touch(request, obj)

    # --- saving through the services ---------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        pass  # save_related does it in one service call, groups included

    def save_related(self, request, form, formsets, change):
        obj, data = form.instance, form.cleaned_data
        if not change:
            saved = self._call(
                staff_user_create, actor=request.user, username=obj.username, email=obj.email,
                password=data["password1"] if data.get("set_usable_password") else None,
                roles=[group.name for group in data.get("groups", ())],
            )
            _sync_saved(obj, saved)
            return
        groups = None
        if "groups" in data:
            groups = {group.name for group in data["groups"]}
            if not request.user.is_superuser:  # groups other than roles were not offered: keep them
                groups |= set(obj.groups.exclude(name__in=ROLES_BY_SLUG).values_list("name", flat=True))
        saved = self._call(
            staff_user_update, actor=request.user, user_id=obj.pk,
            changes={name: data[name] for name in USER_FIELDS if name in data},
            groups=groups, user_permissions=data.get("user_permissions"),
        )
        _sync_saved(obj, saved)

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            request._aggpay_password_form = True
            return super().user_change_password(request, id, form_url)

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        if getattr(request, "_aggpay_password_form", False):  # Django's password form has just saved
            self._call(staff_user_password_changed, actor=request.user, user_id=obj.pk)
        return entry

    def delete_model(self, request, obj):
        self._call(staff_user_delete, actor=request.user, user_id=obj.pk)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for user in queryset:
                self._call(staff_user_delete, actor=request.user, user_id=user.pk)


@admin.register(Group)
class StaffGroupAdmin(_ForbiddenAs403, GroupAdmin):
    """Role groups are read-only (defined in code); other groups and their permissions are a superuser's."""

    list_display = ("name", "is_role")

    @admin.display(boolean=True, description="role (defined in code)")
    def is_role(self, obj):
        return obj.name in ROLES_BY_SLUG

    def _may_touch(self, request, obj) -> bool:
        return request.user.is_superuser and (obj is None or obj.name not in ROLES_BY_SLUG)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_touch(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_touch(request, obj)

    def save_model(self, request, obj, form, change):
        pass  # save_related does it in one service call, permissions included

    def save_related(self, request, form, formsets, change):
        obj = form.instance
        saved = self._call(staff_group_save, actor=request.user, group_id=obj.pk if change else None,
                           name=form.cleaned_data["name"], permissions=form.cleaned_data["permissions"])
        _sync_saved(obj, saved)

    def delete_model(self, request, obj):
        self._call(staff_group_delete, actor=request.user, group_id=obj.pk)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for group in queryset:
                self._call(staff_group_delete, actor=request.user, group_id=group.pk)

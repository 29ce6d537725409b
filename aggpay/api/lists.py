"""List endpoints' conventions (merchant-api.md "Conventions"): ``?limit=`` 1–100 (default 20), ``?starting_after=
<id>``, ``created_gte`` / ``created_lt``; the answer ``{"data": [...], "has_more": bool}``, newest first.

``ListParamsSerializer`` documents and validates the common parameters (subclass it to add filters) and ``page``
cuts one page out of a queryset already restricted to what the caller may see.
"""

from __future__ import annotations

import re

from django.db.models import Q, QuerySet
from rest_framework import serializers

from aggpay.errors import InvalidRequest

# An offset after a space at the end of a time: "+08:00" whose '+' was sent unescaped in a query string, which
# application/x-www-form-urlencoded reads as a space (docs/api.md "Errors").
_PLUS_AS_SPACE = re.compile(r" [0-9]{2}(?::?[0-9]{2})?$")


class BoundedDateTimeField(serializers.DateTimeField):
    """A time without an offset is read at +08:00 (settings.TIME_ZONE); near year 1 that conversion overflows, and
    DRF lets the OverflowError out as a 500. It is a bad value of the field like any other.

    A time whose offset's '+' arrived as a space is told so. Bug: DRF's "Datetime has wrong format. Use one of
    these formats instead: …[+HH:MM|-HH:MM|Z]" described what the developer believed they had sent."""

    def enforce_timezone(self, value):
        try:
            return super().enforce_timezone(value)
        except OverflowError:
            self.fail("overflow")

    def to_internal_value(self, value):
        try:
            return super().to_internal_value(value)
        except serializers.ValidationError:
            if isinstance(value, str) and _PLUS_AS_SPACE.search(value):
                raise serializers.ValidationError(
                    "has a space where its offset's '+' would be: a '+' in a query string must be sent as %2B "
                    "(2026-11-26T00:00:00%2B08:00), or give the time in UTC with Z") from None
            raise


class ListParamsSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20, help_text="1–100, default 20")
    starting_after = serializers.CharField(required=False, max_length=64,
                                           help_text="the id of the last object of the previous page — any object "
                                                     "of this list, whatever filters it was listed under: the page "
                                                     "after it, narrowed by this request's filters")
    created_gte = BoundedDateTimeField(required=False, help_text="created at or after (RFC 3339)")
    created_lt = BoundedDateTimeField(required=False, help_text="created before (RFC 3339)")


def parse_list_params(serializer_class: type[ListParamsSerializer], query_params) -> dict:
    """The list's parameters, checked (docs/api.md "Errors": one a list does not know is ignored, the values of
    those it knows are checked). A known parameter given empty (``?state=``, ``?limit=``) is refused naming it. Bug:
    DRF reads a query string as an HTML form, where an empty optional field counts as not sent, so ``?wallet=`` or
    ``?type=`` listed everything unfiltered and ``?limit=`` gave 20 — an answer that reads as filtered when it is
    not."""
    for name in serializer_class._declared_fields:  # the class's fields, without building an instance
        if query_params.get(name, None) == "":
            raise InvalidRequest(f"{name}: empty; give a value, or leave the parameter out", param=name)
    params = serializer_class(data=query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data


def page(queryset: QuerySet, *, params: dict, id_field: str, where: dict | None = None) -> tuple[list, bool]:
    """One page, newest first (``created_at`` then primary key, so ties have a stable order).

    ``queryset`` is everything the caller may see in this list; ``where`` the list's own filters (``state``,
    ``type``, …), applied like ``created_gte``/``created_lt``. ``starting_after`` must name an object of
    ``queryset`` by ``id_field`` (its public id) — a position in the caller's list, which the filters then narrow,
    as Stripe's cursors are: the id of an ``order.succeeded`` event pages ``?type=refund.succeeded`` from there.
    Bug: the cursor was looked up among the filtered rows only, so a cursor kept from the unfiltered list (or from
    another filter) was refused with "no object … in this list". An id the caller cannot see is refused like a
    malformed one, so it reveals nothing about other merchants.
    """
    cursor = None
    cursor_id = params.get("starting_after")
    if cursor_id:
        cursor = queryset.filter(**{id_field: cursor_id}).values("pk", "created_at").first()
        if cursor is None:
            raise InvalidRequest(f"starting_after: no object {cursor_id} in this list", param="starting_after")
    if where:
        queryset = queryset.filter(**where)
    queryset = queryset.order_by("-created_at", "-pk")
    if params.get("created_gte") is not None:
        queryset = queryset.filter(created_at__gte=params["created_gte"])
    if params.get("created_lt") is not None:
        queryset = queryset.filter(created_at__lt=params["created_lt"])
    if cursor is not None:
        queryset = queryset.filter(Q(created_at__lt=cursor["created_at"])
                                   | Q(created_at=cursor["created_at"], pk__lt=cursor["pk"]))
    limit = params["limit"]
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit

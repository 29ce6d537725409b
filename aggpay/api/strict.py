"""Input serializers that refuse fields they do not know (design §5 rule 12: bad input gets an error naming the
field). A misspelt optional field — ``notifyurl`` for ``notify_url`` — would otherwise be dropped silently and
the request would go through without it."""

from __future__ import annotations

from rest_framework import serializers

from aggpay.errors import InvalidRequest


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming the first one."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise serializers.ValidationError({str(unknown[0]): ["unknown field"]})
        return super().to_internal_value(data)


def require_no_fields(data, *, operation: str) -> None:
    """The body of an operation that takes none (``POST …/close``, ``…/reverse``: no request body in the schema):
    nothing, or ``{}``. Any field is refused naming it, as StrictSerializer refuses one it does not know — before
    the operation does anything. Bug: ``{"bogus": true}`` to close, or ``{"reason": "x"}`` to reverse, answered 200
    and did the operation, and a merchant who sent a reason believed it was recorded (docs/api.md "Errors": a field
    the operation does not know is refused). ``data`` is ``request.data``: reading it also refuses a body that is not
    JSON, as for any other operation."""
    if isinstance(data, dict):
        if data:
            name = str(next(iter(data)))
            raise serializers.ValidationError({name: [f"unknown field: {operation} takes no body (send none, or {{}})"]})
        return
    raise InvalidRequest(f"{operation} takes no body: send none, or {{}}")

"""Input serializers that refuse fields they do not know (design §5 rule 12: bad input gets an error naming the
field). A misspelt optional field — ``notifyurl`` for ``notify_url`` — would otherwise be dropped silently and
the request would go through without it."""

from __future__ import annotations

import re

from rest_framework import serializers

from aggpay.errors import InvalidRequest


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming the first one."""

    # Before any known field is checked, so an unknown name gets the same answer whatever its value; the OpenAPI
    # document says ``additionalProperties: false`` (aggpay.api.schema.StrictSerializerSchema).
    unknown_message = "unknown field"

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise serializers.ValidationError({str(unknown[0]): [self.unknown_message]})
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


# Characters a text field never needs and that change what a person reads: C0 and C1 controls (newlines and tabs
# included: a subject, a reason or a payer id is one line at the channel and on the staff pages), DEL, the Unicode
# line and paragraph separators, and the bidirectional formatting characters — the marks LRM, RLM and ALM, the
# embeddings and overrides U+202A–U+202E and the isolates U+2066–U+2069 (Unicode TR #9 §2; the "Trojan Source"
# spoof, CVE-2021-42574). Bug: they were accepted and forwarded to the channel, and the staff page showed a subject
# ending "…\u202etxt.exe" as "…exe.txt". The joiners (U+200C, U+200D) stay: emoji and some scripts need them.
HIDDEN_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x061C, 0x061C), (0x200E, 0x200F), (0x2028, 0x2029), (0x202A, 0x202E),
                 (0x2066, 0x2069))
_HIDDEN_CLASS = "".join(f"\\u{low:04x}" + (f"-\\u{high:04x}" if high != low else "") for low, high in HIDDEN_RANGES)
HIDDEN_CHARACTERS = re.compile(f"[{_HIDDEN_CLASS}]")
# The same rule as a JSON Schema ``pattern`` (ECMA-262 and Python read \uXXXX alike): text without any of them. One
# character at least: drf-spectacular offers a blank field's "" as a ``oneOf`` branch of its own, which "" must not
# also match (it would match both, and ``oneOf`` wants exactly one).
TEXT_PATTERN = f"^[^{_HIDDEN_CLASS}]+$"


def refuse_hidden_characters(value: str) -> None:
    """The check of free text and identifiers of the API (subject, description, reason, payer ids, …): a
    control or bidirectional formatting character is ``400 invalid_request`` naming the field, with the code point."""
    found = HIDDEN_CHARACTERS.search(value)
    if found is not None:
        raise serializers.ValidationError(
            f"must not contain control or bidirectional formatting characters (U+{ord(found.group()):04X} at "
            f"position {found.start() + 1})")


class StrictCharField(serializers.CharField):
    """Text fields are JSON strings: DRF would quietly turn 5 into "5" and true into "True"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(StrictCharField):
    """A JSON string without control or bidirectional formatting characters (``refuse_hidden_characters``): for
    what is shown to people or sent to a channel — a subject, a reason, a payer's id. The OpenAPI document says so
    with a ``pattern`` (aggpay.api.schema)."""

    def to_internal_value(self, data):
        # Checked as sent, before DRF trims surrounding whitespace: a trailing "\n" or U+2028 is refused like any
        # other, not quietly cut off.
        if isinstance(data, str):
            refuse_hidden_characters(data)
        return super().to_internal_value(data)

"""Input serializers that refuse fields they do not know (design §5 rule 12: bad input gets an error naming the
field). A misspelt optional field — ``notifyurl`` for ``notify_url`` — would otherwise be dropped silently and
the request would go through without it."""

from __future__ import annotations

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming the first one."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise serializers.ValidationError({str(unknown[0]): ["unknown field"]})
        return super().to_internal_value(data)

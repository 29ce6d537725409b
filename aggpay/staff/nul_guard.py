"""Staff pages refuse a NUL character in any parameter (design §5 rule 12), before a view runs.

PostgreSQL refuses NUL in text, so a reason, note or number carrying one reached the database only to fail there —
with a 500, and sometimes after the action had already reached a channel (the audit row is the last write). Django's
forms refuse it per field; the workbench's small POST forms (reasons, notes, ids) read ``request.POST`` directly, so
one guard in front of all staff pages says which field, instead of a check in every view. A browser cannot type the
character: this is for crafted requests and pasted binary, and it keeps the page from half-doing anything.
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest

STAFF_PREFIX = "/staff/"


def _field_with_nul(request) -> str | None:
    if "\x00" in request.path:
        return "the address"
    for params in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
        for name, values in params.lists():
            if "\x00" in name or any("\x00" in value for value in values if isinstance(value, str)):
                return name.replace("\x00", "\ufffd")
    return None


class StaffNulGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(STAFF_PREFIX):
            field = _field_with_nul(request)
            if field is not None:
                return HttpResponseBadRequest(
                    f"“{field}” contains a NUL character, which aggpay cannot store: nothing was done. Type it again.",
                    content_type="text/plain; charset=utf-8")
        return self.get_response(request)

"""In-process mount of the simulators under /_sim/ (the demo, AGGPAY_SIMULATORS=1).

The request is handed to the simulators' WSGI app as a WSGI environ, so adapters still talk HTTP to them.
"""

from __future__ import annotations

import io
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from channels.simulators.server import CombinedSimulators
from channels.simulators.store import Store


@lru_cache(maxsize=1)
def simulators() -> CombinedSimulators:
    return CombinedSimulators(Store(settings.AGGPAY_SIMULATOR_STATE))


@csrf_exempt
def mount(request, rest: str):
    environ = dict(request.META)
    environ["SCRIPT_NAME"] = "/_sim"
    environ["PATH_INFO"] = "/" + rest
    body = request.body
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = headers

    chunks = simulators()(environ, start_response)
    response = HttpResponse(b"".join(chunks), status=captured["status"])
    for name, value in captured["headers"]:
        if name.lower() != "content-length":
            response[name] = value
    return response


urlpatterns = [re_path(r"^(?P<rest>.*)$", mount, name="simulators")]

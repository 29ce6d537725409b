"""The API's one renderer: JSON, declared as UTF-8 (merchant-api.md "Conventions": ``Content-Type:
application/json; charset=utf-8``), so clients that default JSON to another charset still read names right."""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class UTF8JSONRenderer(JSONRenderer):
    charset = "utf-8"
